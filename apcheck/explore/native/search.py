"""The native core's search, returning the Python explorer's ExploreResult.

States stay packed in the core; the result reads them on demand (`states[i]`
unpacks one into the Python explorer's tuple form), so traces, the deadlock
continuation and the wait-for analysis run through the Python semantics as
with the Python core. Defects are found natively and their messages made by
re-running the failing thread's step in Python.
"""
from __future__ import annotations

import ctypes
import os
import time
import weakref
from typing import Callable

from apcheck.explore.budget import Budget, resident_mb
from apcheck.explore.engine import DECIDED_LIMIT, FIRST_LIMIT, ExecutionCounts, ExploreConfig, ExploreResult, Progress
from apcheck.explore.native.build import NativeUnavailable, build
from apcheck.explore.native.codegen import (DEFECT_KINDS, E_LIMIT, E_NOMEM, ERROR_TEXT, S_DONE, S_ERROR, S_FIRST,
                                            S_MAX_STATES, Layout, Unsupported, generate)
from apcheck.explore.semantics import DEAD, IDLE, Outcome, Semantics
from apcheck.explore.symmetry import symmetric_sorts
from apcheck.explore.system import System
from apcheck.ir.types import MapT
from apcheck.results import exploration_title

BATCH = 4096  # states expanded per call into the core between checks of the limits


class NativeError(Exception):
    """The native search stopped on something the Python explorer would handle (fall back)."""


class Core:
    """One native search: the loaded model and its context, freed with this object."""

    def __init__(self, system: System, config: ExploreConfig):
        self.sys = system
        try:
            source, self.lay = generate(system)
        except Unsupported as why:
            raise NativeUnavailable(f"the native core does not support {why}")
        self.lib, self.built = build(source)
        self.ctx = self.lib.ap_new(config.max_states or 0, -1 if config.max_depth is None else config.max_depth,
                                   int(config.order == "dfs"), int(config.closure_edges), int(config.reduction),
                                   int(config.symmetry), max(1, min(config.threads or os.cpu_count() or 1, 64)),
                                   2 if config.stop_when_decided else int(config.first), _store_budget(config))
        if not self.ctx:
            raise NativeUnavailable("the native core could not allocate its state table")
        self._free = weakref.finalize(self, self.lib.ap_free, self.ctx)
        self.Wide = ctypes.c_int64 * self.lay.nw
        self.is_map = [isinstance(v.type, MapT) for v in system.program.vars]
        self.symmetric = bool(config.symmetry and symmetric_sorts(system.sizes.n)[0])

    def error(self) -> str | None:
        code = self.lib.ap_error(self.ctx)
        return ERROR_TEXT.get(code, f"error {code}") if code else None

    def stats(self) -> list[int]:
        out = (ctypes.c_uint64 * 8)()
        self.lib.ap_stats(self.ctx, out)
        return list(out)

    # ---- the wide state <-> the Python explorer's tuples ------------------------------------

    def to_tuple(self, w) -> tuple:
        lay, s = self.lay, self.sys
        g = []
        for base, size, is_map in zip(lay.goff, lay.gsize, self.is_map):
            g.append(tuple(w[base:base + size]) if is_map else w[base])
        locks = tuple(w[lay.loff:lay.loff + len(s.inst_class)])
        threads = []
        for t in range(len(s.threads)):
            b = lay.thread(t)
            pc = w[b]
            if pc == IDLE:
                threads.append((IDLE, (), ()))
                continue
            nloc = len(s.ops[s.op_of_pc[pc]].local_init) if pc != DEAD else 0
            nh = w[b + 1]
            held = b + 2 + lay.nloc
            threads.append((pc, tuple(w[b + 2:b + 2 + nloc]), tuple(w[held:held + 2 * nh])))
        return (tuple(g), locks, tuple(threads))

    def to_wide(self, state: tuple):
        lay = self.lay
        w = self.Wide()
        g, locks, threads = state
        for base, value in zip(lay.goff, g):
            if isinstance(value, tuple):
                for k, x in enumerate(value):
                    w[base + k] = x
            else:
                w[base] = value
        for k, x in enumerate(locks):
            w[lay.loff + k] = x
        for t, (pc, l, held) in enumerate(threads):
            b = lay.thread(t)
            w[b] = pc
            w[b + 1] = len(held) // 2
            for k, x in enumerate(l):
                w[b + 2 + k] = x
            for k, x in enumerate(held):
                w[b + 2 + lay.nloc + k] = x
        return w

    def state(self, i: int) -> tuple:
        w = self.Wide()
        self.lib.ap_state(self.ctx, i, w)
        return self.to_tuple(w)

    def canon(self, state: tuple) -> tuple[tuple, int]:
        """The stored form of a state and its index (-1: the search did not reach it)."""
        out = self.Wide()
        j = self.lib.ap_canon(self.ctx, self.to_wide(state), out)
        return self.to_tuple(out), j


def _store_budget(config: ExploreConfig) -> int:
    """The bytes the native store may allocate: what the memory budget leaves above the process's
    resident memory now (0: no budget)."""
    if config.max_memory_mb is None:
        return 0
    return max(1, int((config.max_memory_mb - resident_mb()) * 2 ** 20))


class _States:
    """The stored states, unpacked on demand."""

    def __init__(self, core: Core, n: int):
        self.core, self.n = core, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.core.state(i)

    def __iter__(self):
        return (self.core.state(i) for i in range(self.n))


class _Column:
    """A per-state number read from the core (parent, depth, can_move)."""

    def __init__(self, fn: Callable[[int], int], n: int):
        self.fn, self.n = fn, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.fn(i)


class _Index:
    """state -> its index, for states in stored form (as `canon` gives them)."""

    def __init__(self, core: Core):
        self.core = core

    def get(self, state: tuple, default=None):
        j = self.core.canon(state)[1]
        return default if j < 0 else j

    def __contains__(self, state: tuple) -> bool:
        return self.get(state) is not None


def explore_native(system: System, config: ExploreConfig) -> ExploreResult:
    """The search of engine.explore, run by the native core."""
    budget = Budget(config.timeout, config.max_memory_mb)
    core = Core(system, config)
    start = time.monotonic()  # the search's time: the build is reported on its own
    lib, ctx = core.lib, core.ctx
    limit = None
    next_report = start + config.progress_every
    while True:
        status = lib.ap_run(ctx, BATCH)
        if status == S_ERROR:
            code = lib.ap_error(ctx)
            if code == E_LIMIT:
                limit = f"memory limit of {config.max_memory_mb:,.0f} MiB reached"
                break
            if code == E_NOMEM:
                limit = "out of memory (the native core could not allocate more)"
                break
            raise NativeError(core.error() or "unknown error")
        if status == S_MAX_STATES:
            limit = f"max states {config.max_states}"
            break
        if status == S_FIRST:
            limit = DECIDED_LIMIT if config.stop_when_decided else FIRST_LIMIT
            break
        if status == S_DONE:
            break
        reason = budget.exceeded()
        if reason is not None:
            limit = reason
            break
        now = time.monotonic()
        if config.progress and now >= next_report:
            n, transitions, deepest, frontier = core.stats()[:4]
            config.progress(Progress(n, transitions, deepest, frontier, now - start, system.scenario))
            next_report = now + config.progress_every
    n, transitions, deepest, _, depth_limited = core.stats()[:5]
    if limit is None and depth_limited:
        limit = f"max depth {config.max_depth}"
    stuck = (ctypes.c_int64 * 2)()
    if not lib.ap_find_stuck(ctx, stuck):
        raise NativeError(core.error() or "the deadlock analysis failed")
    sem = Semantics(system, merge_private_releases=config.reduction, closure_edges=config.closure_edges)
    states = _States(core, n)
    inv = {prop.name: lib.ap_inv_first(ctx, k) for k, (prop, _, _) in enumerate(system.invariants)}
    cov = {prop.name: lib.ap_cov_first(ctx, k) for k, (prop, _) in enumerate(system.covers)}
    result = ExploreResult(
        states=states, parent=_Column(lambda i: lib.ap_parent(ctx, i), n),
        depth=_Column(lambda i: lib.ap_depth(ctx, i), n), transitions=transitions, complete=limit is None,
        limit=limit, seconds=time.monotonic() - start,
        invariant_violations={k: v for k, v in inv.items() if v >= 0},
        covers_reached={k: v for k, v in cov.items() if v >= 0},
        defects={}, deadlock=(stuck[0], stuck[1]) if stuck[0] >= 0 else None, edges=_edges(core),
        semantics=sem, canon=(lambda s: core.canon(s)[0]) if core.symmetric else None,
        max_depth_reached=deepest, notes=(symmetric_sorts(system.sizes.n)[1] if config.symmetry else [])
        + ([f"native core built for {exploration_title(system.scenario)} in {core.built:.1f} s (then cached)"]
           if core.built else []),
        index=_Index(core), can_move=_Column(lambda i: lib.ap_can_move(ctx, i), n), core="native")
    cycle = lib.ap_cycle_state(ctx)
    if cycle >= 0:  # a wait-for cycle found during the search (--first): the deadlock reported
        result.deadlock = (cycle, sem.waits_forever(states[cycle]))
        result.deadlock_at_once = True
    result.store = core  # the states live in the core: it lives as long as the result
    result.coverage = _coverage(core)
    result.defects = _defects(core, sem, states)
    result.completions = _completions(core, sem, states, len(system.ops))
    return result


def _coverage(core: Core) -> ExecutionCounts:
    ncode, nops = len(core.sys.code), len(core.sys.ops)
    return ExecutionCounts.from_flat(coverage_counts(core.lib, core.ctx, ncode, nops), ncode, nops)


def coverage_counts(lib, ctx, ncode: int, nops: int) -> list[int]:
    """The core's coverage counters, flat (core.c: ap_coverage)."""
    out = (ctypes.c_uint64 * (ncode + 2 * nops))()
    lib.ap_coverage(ctx, out)
    return list(out)


def _edges(core: Core) -> dict[tuple[int, int], tuple[int, int, int]]:
    return {(a, b): (site_a, site_b, origin) for a, b, site_a, site_b, origin in edge_rows(core.lib, core.ctx,
                                                                                          len(core.sys.locks))}


def edge_rows(lib, ctx, nlocks: int) -> list[tuple[int, int, int, int, int]]:
    """The lock-order edges in the order found: (class a, class b, site a, site b, origin state)."""
    out = (ctypes.c_int64 * (5 * max(nlocks * nlocks, 1)))()
    count = lib.ap_edges(ctx, out)
    return [tuple(out[5 * k:5 * k + 5]) for k in range(count)]


def _defects(core: Core, sem: Semantics, states: _States) -> dict[str, tuple[int, Outcome]]:
    """The first defect of each property: the state and thread the core found, the step (with its
    message) from the Python semantics."""
    out = {}
    for prop, name in ((0, "deadlock"), (1, "defects")):
        found = (ctypes.c_int64 * 3)()
        core.lib.ap_defect(core.ctx, prop, found)
        i, t, kind = found
        if i >= 0:
            out[name] = (i, defect_step(sem, states[i], i, t, kind))
    return out


def defect_step(sem: Semantics, state: tuple, i: int, t: int, kind: int) -> Outcome:
    """The step of thread t in state i that hits the defect `kind` (a DEFECT_KINDS code), from the
    Python semantics (which makes its message)."""
    steps: list[Outcome] = []
    sem.thread_steps(state, t, steps)
    for o in steps:
        if o.defect is not None and o.defect.kind == DEFECT_KINDS[kind]:
            return o
    raise NativeError(f"the Python semantics does not reproduce the {DEFECT_KINDS[kind]} defect "
                      f"the native core found in state {i}")


def _completions(core: Core, sem: Semantics, states: _States, n_ops: int) -> dict[int, tuple[int, Outcome]]:
    """Each operation's first successful return: the state and thread the core found, the step
    from the Python semantics."""
    out = {}
    for op in range(n_ops):
        found = (ctypes.c_int64 * 2)()
        core.lib.ap_completion(core.ctx, op, found)
        i, t = found
        if i >= 0:
            out[op] = (i, completion_step(sem, states[i], i, t, op))
    return out


def completion_step(sem: Semantics, state: tuple, i: int, t: int, op: int) -> Outcome:
    """The step of thread t in state i that returns successfully from operation op."""
    steps: list[Outcome] = []
    sem.thread_steps(state, t, steps)
    for o in steps:
        if o.op == op and o.succeeded:
            return o
    raise NativeError(f"the Python semantics does not reproduce the return from operation {op} "
                      f"the native core found in state {i}")
