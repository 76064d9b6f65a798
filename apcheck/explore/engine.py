"""The search loop: every reachable state within the bounds, breadth-first by default.

Returns raw data (state indices, parents, first violations); `apcheck.commands`
turns it into verdicts and replayed traces.
"""
from __future__ import annotations

import gc
import time
from array import array
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable

from apcheck.diagnostics import UsageError
from apcheck.explore.budget import Budget, LimitReached
from apcheck.explore.semantics import IDLE, Outcome, Semantics
from apcheck.explore.symmetry import canonicalizer, symmetric_sorts
from apcheck.explore.system import System


@dataclass(frozen=True, kw_only=True)
class ExploreConfig:
    max_states: int | None = None
    max_depth: int | None = None
    timeout: float | None = None
    max_memory_mb: float | None = None   # this process's resident memory
    symmetry: bool = True
    reduction: bool = True  # private releases and uncontended leading acquires merged (Semantics)
    closure_edges: bool = False  # lock-order edges from every held lock, not lockdep's rule (Semantics)
    order: str = "bfs"  # bfs | dfs
    engine: str = "auto"  # auto | native | python (see explore)
    first: bool = False   # stop after the expansion that finds the first violation, defect or wait-for cycle
    stop_when_decided: bool = False  # stop after the expansion that violates every invariant and reaches
                                     # every cover (a run for those properties only)
    threads: int = 0      # native core: threads expanding the states of one search (0: one per core); any
                          # number gives the same states, verdicts and traces
    progress: Callable[["Progress"], None] | None = None
    progress_every: float = 2.0
    cluster: str | None = None   # a distributed search (cluster/): "auto" (a local Ray instance) or a Ray
                                 # cluster's address; the same states, counts and verdicts
    workers: int = 0             # with `cluster`: the partitions, one worker each (0: one per CPU it offers)


@dataclass(frozen=True)
class Progress:
    states: int
    transitions: int
    depth: int
    frontier: int
    seconds: float
    scenario: str = ""
    workers: tuple = ()   # a distributed search: each worker's load (cluster/search.py: WorkerLoad)


@dataclass
class ExploreResult:
    states: list[tuple]
    parent: array
    depth: array
    transitions: int
    complete: bool
    limit: str | None                      # why the search stopped early
    seconds: float
    invariant_violations: dict[str, int]   # property -> first violating state
    covers_reached: dict[str, int]
    defects: dict[str, tuple[int, Outcome]]  # property (deadlock|defects) -> (state, failing step)
    deadlock: tuple[int, int] | None       # (state, mask of stuck threads)
    edges: dict[tuple[int, int], tuple[int, int, int]]
    semantics: Semantics
    canon: Callable[[tuple], tuple] | None
    max_depth_reached: int = 0
    notes: list[str] = field(default_factory=list)   # what the reader of the verdicts should know
    index: dict[tuple, int] = field(default_factory=dict)   # stored state -> its index
    can_move: list[int] | None = None      # per state: the threads that can move there or later (find_stuck)
    deadlock_at_once: bool = False         # `deadlock` is a wait-for cycle found during the search (--first):
                                           # every thread of it is blocked there already
    core: str = "python"                   # the explorer core that ran the search: python | native
    store: object = None                   # the native core holding the states (kept alive with the result)
    coverage: ExecutionCounts | None = None   # what the search executed
    completions: dict[int, tuple[int, Outcome]] = field(default_factory=dict)  # operation -> (state, step)
                                           # of its first successful return (search order)
    worker_memory_mb: float = 0.0          # a distributed search: its workers' resident memory at the end,
                                           # together (this process's own is measured by the caller)


@dataclass(frozen=True)
class ExecutionCounts:
    """What the search executed (semantics.py): per instruction the times a step executed it, per
    operation the returns and the successful ones (a result that is not an error code)."""

    executed: tuple[int, ...]
    returned: tuple[int, ...]
    succeeded: tuple[int, ...]

    @classmethod
    def from_flat(cls, values: list[int], ncode: int, nops: int) -> "ExecutionCounts":
        """From the native core's layout: per instruction, then per operation the returns, then
        the successful returns."""
        return cls(tuple(values[:ncode]), tuple(values[ncode:ncode + nops]), tuple(values[ncode + nops:]))


FIRST_LIMIT = "stopped at the first violation (--first)"
DECIDED_LIMIT = "stopped once every property of the run was decided"
AUTO_PYTHON_STATES = 20_000  # engine "auto": a search this small stays in Python (no build)


def explore(system: System, config: ExploreConfig = ExploreConfig()) -> ExploreResult:
    """Search every reachable state, in Python or with the native core (`config.engine`): "auto"
    runs the Python explorer up to AUTO_PYTHON_STATES states, and a search that needs more again
    with the native core (where it cannot build, in Python, with a note saying why). Both cores give
    the same states in the same order, so the verdicts and traces do not depend on the choice. The
    cyclic garbage collector is paused meanwhile: states are acyclic tuples, and its passes over
    millions of them would dominate the run."""
    if config.cluster:
        return _explore_cluster(system, config)
    if config.engine == "python":
        return _explore_python(system, config)
    if config.engine == "auto":
        small = config.max_states is not None and config.max_states <= AUTO_PYTHON_STATES
        trial = _explore_python(system, config if small else replace(config, max_states=AUTO_PYTHON_STATES,
                                                                         progress=None))
        if small or trial.complete or (trial.limit and not trial.limit.startswith("max states")):
            return trial
    from apcheck.explore.native.build import NativeUnavailable
    from apcheck.explore.native.search import NativeError, explore_native
    try:
        return explore_native(system, config)
    except (NativeUnavailable, NativeError) as why:
        if config.engine == "native":
            raise UsageError(f"--engine native: {why}")
        result = _explore_python(system, config)
        result.notes.append(f"the Python explorer ran this search: {why}")
        return result


def _explore_cluster(system: System, config: ExploreConfig) -> ExploreResult:
    """The distributed search (cluster/search.py) on the cluster `config.cluster` names; it needs
    the native core, so a model it cannot build is a usage error."""
    from apcheck.explore.cluster.search import explore_cluster
    from apcheck.explore.cluster.workers import ClusterUnavailable, connect
    from apcheck.explore.native.build import NativeUnavailable
    try:
        cpus = connect(config.cluster)
        return explore_cluster(system, config, config.workers or cpus)
    except (ClusterUnavailable, NativeUnavailable) as why:
        raise UsageError(f"--cluster: {why}")


def _explore_python(system: System, config: ExploreConfig) -> ExploreResult:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _explore(system, config)
    finally:
        if enabled:
            gc.enable()


def _explore(system: System, config: ExploreConfig) -> ExploreResult:
    sem = Semantics(system, merge_private_releases=config.reduction, closure_edges=config.closure_edges)
    canon = canonicalizer(system) if config.symmetry else None
    notes = symmetric_sorts(system.sizes.n)[1] if config.symmetry else []
    budget = Budget(config.timeout, config.max_memory_mb)
    sem.limit_check = budget.check
    start = budget.start
    init = sem.initial()
    if canon:
        init = canon(init)
    states: list[tuple] = [init]
    index: dict[tuple, int] = {init: 0}
    parent = array("i", [-1])
    depth = array("i", [0])
    src, dst, mover = array("i"), array("i"), array("b")
    invariants = system.invariants
    covers = system.covers
    scratch = [0] * max(system.scratch, 1)
    inv_bad: dict[str, int] = {}
    cov_hit: dict[str, int] = {}
    defects: dict[str, tuple[int, Outcome]] = {}
    expanded = bytearray(1)  # one flag per state, grown as states are added
    prop_cache: dict[tuple, tuple] = {}
    inst_class = system.inst_class
    check_props(init, 0, invariants, covers, scratch, inv_bad, cov_hit, prop_cache, inst_class)

    cycle = None  # (state, threads) of the first wait-for cycle (--first)
    frontier: deque[int] = deque([0])
    pop = frontier.popleft if config.order == "bfs" else frontier.pop
    transitions = 0
    limit = None
    next_report = start + config.progress_every
    max_states = config.max_states
    max_depth = config.max_depth
    deepest = 0
    checks = 0
    while frontier:
        i = pop()
        s = states[i]
        d = depth[i]
        if max_depth is not None and d >= max_depth:
            limit = limit or f"max depth {max_depth}"
            continue
        expanded[i] = 1
        sem.origin = i
        try:
            outcomes = sem.successors(s)
        except LimitReached as hit:  # in the middle of the expansion: the state stays unexpanded
            expanded[i] = 0
            limit = hit.reason
            break
        for o in outcomes:
            transitions += 1
            if o.defect is not None:  # reported; the thread is dead in o.state, the others go on
                prop = o.defect.property
                if prop not in defects:
                    defects[prop] = (i, o)
            nxt = canon(o.state) if canon else o.state
            j = index.get(nxt)
            if j is None:
                j = len(states)
                states.append(nxt)
                index[nxt] = j
                parent.append(i)
                depth.append(d + 1)
                expanded.append(0)
                if d + 1 > deepest:
                    deepest = d + 1
                if invariants or covers:
                    check_props(nxt, j, invariants, covers, scratch, inv_bad, cov_hit, prop_cache, inst_class)
                if config.first and cycle is None:
                    stuck = sem.waits_forever(nxt)
                    if stuck:
                        cycle = (j, stuck)
                frontier.append(j)
            src.append(i)
            dst.append(j)
            mover.append(o.thread)
        if max_states is not None and len(states) >= max_states and frontier:
            limit = f"max states {max_states}"
            break
        if config.first and (inv_bad or defects or cycle) and frontier:
            limit = FIRST_LIMIT
            break
        if config.stop_when_decided and (invariants or covers) and len(inv_bad) == len(invariants) \
                and len(cov_hit) == len(covers) and frontier:
            limit = DECIDED_LIMIT
            break
        checks += 1
        if checks & 31 == 0:
            reason = budget.exceeded()
            if reason is not None and frontier:
                limit = reason
                break
            now = time.monotonic()
            if config.progress and now >= next_report:
                config.progress(Progress(len(states), transitions, deepest, len(frontier), now - start,
                                         system.scenario))
                next_report = now + config.progress_every
    complete = limit is None
    # After a limit the analysis of the partial graph (no false deadlock there, maybe a real one) gets
    # one more second at most: a limit is honoured within about a second.
    grace = time.monotonic() + 1.0
    bound = sem.defect_bound if defects else None  # no defect: no dead thread in any state
    deadlock, can_move = find_stuck(states, src, dst, mover, expanded, len(system.threads), bound,
                                    (lambda: time.monotonic() > grace) if limit is not None else None)
    coverage = ExecutionCounts(tuple(sem.executed), tuple(sem.returned), tuple(sem.succeeded))
    # a state whose expansion a limit interrupted stays unexpanded: what it began is not a completion
    return ExploreResult(states, parent, depth, transitions, complete, limit, time.monotonic() - start,
                         inv_bad, cov_hit, defects, cycle or deadlock, sem.edges, sem, canon, deepest, notes, index,
                         can_move, deadlock_at_once=cycle is not None, coverage=coverage,
                         completions={op: c for op, c in sem.completed.items() if expanded[c[0]]})


def check_props(state, j, invariants, covers, scratch, inv_bad, cov_hit, cache, inst_class) -> None:
    """Record the first state violating each invariant or reaching each cover.

    Properties read only the state variables, so their values are cached per
    valuation. An invariant with unlocked(...) counts a violation only where no
    thread holds every lock guarding those variables (an update in progress
    inside its critical section is invisible to the other threads); one
    `between operations`, only where every thread is idle."""
    g = state[0]
    vals = cache.get(g)
    if vals is None:
        vals = cache[g] = (tuple(fn(g, scratch) for _, fn, _ in invariants),
                           tuple(fn(g, scratch) for _, fn in covers))
    inv_vals, cov_vals = vals
    for k, (prop, _, guards) in enumerate(invariants):
        if not inv_vals[k] and prop.name not in inv_bad and (not guards or _unlocked(state, guards, inst_class)) \
                and (not prop.between or all(th[0] == IDLE for th in state[2])):
            inv_bad[prop.name] = j
    for k, (prop, _) in enumerate(covers):
        if cov_vals[k] and prop.name not in cov_hit:
            cov_hit[prop.name] = j


def _unlocked(state, guards, inst_class) -> bool:
    for _, _, held in state[2]:
        if held:
            classes = {inst_class[held[i]] for i in range(0, len(held), 2)}
            if any(g <= classes for g in guards):
                return False
    return True


def find_stuck(states, src, dst, mover, expanded, n_threads, defect_bound: Callable[[tuple], int] | None,
               out_of_time: Callable[[], bool] | None = None
               ) -> tuple[tuple[int, int] | None, list[int] | None]:
    """The first state (in search order) with a busy thread that can never move again, with the mask
    of those threads, and per state the threads that can move there or later; (None, None) when
    `out_of_time` says the time is up before the analysis ends.

    mask[s] = threads that can take a step in s or in some state reachable
    from s; unexpanded states (limits) count as "every thread can move", so a
    truncated search never reports a false deadlock. A dead thread, and one
    that waits behind it (defect_bound; None where the search found no
    defect), counts as moving: a defect, reported on its own, is why it never
    moves again, not a deadlock.
    """
    n = len(states)
    full = (1 << n_threads) - 1
    mask = [0] * n
    for k in range(len(src)):
        mask[src[k]] |= 1 << mover[k]
    for i in range(n):
        if not expanded[i]:
            mask[i] = full
        elif defect_bound is not None:
            mask[i] |= defect_bound(states[i])
    # reverse adjacency (CSR)
    count = [0] * (n + 1)
    for k in range(len(dst)):
        count[dst[k] + 1] += 1
    for i in range(n):
        count[i + 1] += count[i]
    fill = count[:]
    preds = array("i", bytes(4 * len(dst)))
    for k in range(len(dst)):
        t = dst[k]
        preds[fill[t]] = src[k]
        fill[t] += 1
    work = deque(range(n))
    queued = bytearray(b"\1" * n)
    rounds = 0
    while work:
        rounds += 1
        if out_of_time is not None and rounds & 0xFFFF == 0 and out_of_time():
            return None, None
        s = work.popleft()
        queued[s] = 0
        ms = mask[s]
        for k in range(count[s], count[s + 1]):
            p = preds[k]
            if mask[p] | ms != mask[p]:
                mask[p] |= ms
                if not queued[p]:
                    queued[p] = 1
                    work.append(p)
    for i, s in enumerate(states):
        busy = 0
        for t, (pc, _, _) in enumerate(s[2]):
            if pc >= 0:
                busy |= 1 << t
        stuck = busy & ~mask[i]
        if stuck:
            return (i, stuck), mask
    return None, mask
