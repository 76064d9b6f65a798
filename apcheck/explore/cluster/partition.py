"""One partition of the distributed search: the native core's store of the states whose hash
falls to it (native/partition.c), behind plain Python calls.

A worker process (a Ray actor, or the caller itself in tests) holds one `Partition`. The search
(cluster/search.py) drives every partition level by level: `expand` fills one outbox per
partition, the outboxes go to their partitions' `insert`. Values crossing processes are ints,
lists and bytes only, so any transport can carry them.
"""
from __future__ import annotations

import ctypes
import os
import socket
import weakref

from apcheck.explore.native.build import build
from apcheck.explore.native.codegen import ERROR_TEXT
from apcheck.explore.native.search import coverage_counts, edge_rows

MAX_STORE = 2 ** 32 - 2  # states one partition can index (core.c: 32-bit indices)


class PartitionError(Exception):
    """The partition's core stopped: `code` is the core's error code (codegen.ERRORS)."""

    def __init__(self, code: int, where: str):
        super().__init__(f"{where}: {ERROR_TEXT.get(code, f'error {code}')}")
        self.code = code


class Partition:
    """Partition `me` of `nparts`: the model built from `source` (native/codegen.py), an empty store."""

    def __init__(self, source: str, nw: int, n_ops: int, n_code: int, me: int, nparts: int, *,
                 closure_edges: bool, reduction: bool, symmetry: bool, first: int, max_bytes: int):
        self.lib, self.built = build(source)
        self.me, self.nparts, self.nw, self.n_ops, self.n_code = me, nparts, nw, n_ops, n_code
        self.ctx = self.lib.ap_part_new(me, nparts, int(closure_edges), int(reduction), int(symmetry), first,
                                        max_bytes)
        if not self.ctx:
            raise MemoryError("the native core could not allocate a partition")
        self._free = weakref.finalize(self, self.lib.ap_free, self.ctx)
        self.Wide = ctypes.c_int64 * nw
        self.sent = {"search": 0, "stuck": 0}   # bytes sent to other partitions, per phase
        self._check("creating the partition")

    def _check(self, where: str, ok: bool = True) -> None:
        code = self.lib.ap_error(self.ctx)
        if code or not ok:
            raise PartitionError(code, f"partition {self.me}, {where}")

    def _outboxes(self, phase: str) -> list[bytes]:
        out = []
        ptr = ctypes.POINTER(ctypes.c_uint64)()
        for p in range(self.nparts):
            if p == self.me:   # what a partition sends itself stays in its core (insert: None)
                out.append(b"")
                continue
            words = self.lib.ap_part_outbox(self.ctx, p, ctypes.byref(ptr))
            out.append(ctypes.string_at(ptr, words * 8) if words else b"")
            self.sent[phase] += words * 8
        return out

    def stats(self) -> list[int]:
        """states, transitions, deepest, -, -, bytes allocated"""
        out = (ctypes.c_uint64 * 8)()
        self.lib.ap_stats(self.ctx, out)
        return list(out)

    # ---- the search, level by level ---------------------------------------------------------

    def initial(self) -> list[bytes]:
        """Partition 0 sends the initial state to its owner; the others send nothing."""
        self.lib.ap_part_clear(self.ctx)
        if self.me == 0:
            self._check("the initial state", bool(self.lib.ap_part_initial(self.ctx)))
        return self._outboxes("search")

    def expand(self, lo: int, hi: int) -> list[bytes]:
        """Expand the states [lo, hi) (one BFS level): the successors, an outbox per partition."""
        self.lib.ap_part_clear(self.ctx)
        self._check(f"expanding states {lo}..{hi}", bool(self.lib.ap_part_expand(self.ctx, lo, hi)))
        return self._outboxes("search")

    def insert(self, depth: int, *batches: bytes) -> dict:
        """Store what each partition sent (batches[p] from partition p) at `depth`: what the
        level added, and what stopping early needs to know."""
        before = self.stats()[0]
        for p, batch in enumerate(_unwrap(batches)):
            if batch or p == self.me:
                added = self.lib.ap_part_insert(self.ctx, None if p == self.me else batch, len(batch) // 8, p, depth)
                self._check(f"inserting the states of depth {depth}", added >= 0)
        st = self.stats()
        props, flags = self.found()
        return {"lo": before, "hi": st[0], "props": props, "flags": flags, "transitions": st[1],
                "bytes": st[5], "rss": _rss(), "pid": os.getpid()}

    def found(self) -> tuple[int, int]:
        """Bit k: invariant k violated here, bit 32 + k: cover k reached; and bit 0: a defect found
        here, bit 1: a wait-for cycle (native/partition.c: ap_part_found)."""
        out = (ctypes.c_uint64 * 2)()
        self.lib.ap_part_found(self.ctx, out)
        return out[0], out[1]

    # ---- the stuck-thread analysis ----------------------------------------------------------

    def stuck_init(self, any_dead: bool) -> None:
        self._check("the stuck-thread analysis", bool(self.lib.ap_part_stuck_init(self.ctx, int(any_dead))))

    def stuck_round(self) -> list[bytes]:
        """One round: the masks for the other partitions, an outbox each (its own stays empty)."""
        self._check("the stuck-thread analysis", self.lib.ap_part_stuck_round(self.ctx) >= 0)
        return self._outboxes("stuck")

    def stuck_apply(self, *batches: bytes) -> int:
        """Apply the masks the others sent; the words received."""
        batches = _unwrap(batches)
        for batch in batches:
            if batch:
                self.lib.ap_part_stuck_apply(self.ctx, batch, len(batch) // 8)
        return sum(len(b) // 8 for b in batches)

    # ---- results ------------------------------------------------------------------------------

    def summary(self, n_inv: int, n_cov: int, n_locks: int) -> dict:
        """This partition's firsts (local indices, each with its depth), counts and coverage."""
        lib, ctx = self.lib, self.ctx

        def at(i: int) -> tuple[int, int] | None:
            return None if i < 0 else (lib.ap_depth(ctx, i), i)

        defects = []
        for prop in (0, 1):
            out = (ctypes.c_int64 * 3)()
            lib.ap_defect(ctx, prop, out)
            defects.append(None if out[0] < 0 else (lib.ap_depth(ctx, out[0]), out[0], out[1], out[2]))
        done = []
        for op in range(self.n_ops):
            out = (ctypes.c_int64 * 2)()
            lib.ap_completion(ctx, op, out)
            done.append(None if out[0] < 0 else (lib.ap_depth(ctx, out[0]), out[0], out[1]))
        edges = [row + (lib.ap_depth(ctx, row[4]),) for row in edge_rows(lib, ctx, n_locks)]
        stuck = (ctypes.c_int64 * 2)()
        lib.ap_part_stuck_first(ctx, stuck)
        st = self.stats()
        return {"n": st[0], "transitions": st[1], "deepest": st[2], "bytes": st[5], "sent": dict(self.sent),
                "inv": [at(lib.ap_inv_first(ctx, k)) for k in range(n_inv)],
                "cov": [at(lib.ap_cov_first(ctx, k)) for k in range(n_cov)],
                "defects": defects, "done": done, "edges": edges,
                "cycle": at(lib.ap_cycle_state(ctx)),
                "stuck": None if stuck[0] < 0 else (lib.ap_depth(ctx, stuck[0]), stuck[0], stuck[1]),
                "coverage": coverage_counts(lib, ctx, self.n_code, self.n_ops)}

    def state(self, i: int) -> list[int]:
        w = self.Wide()
        self.lib.ap_state(self.ctx, i, w)
        return list(w)

    def parent(self, i: int) -> tuple[int, int]:
        """(partition, index) of state i's parent; index -1 for the initial state."""
        part = ctypes.c_int()
        j = self.lib.ap_part_parent(self.ctx, i, ctypes.byref(part))
        return part.value, j

    def depth(self, i: int) -> int:
        return self.lib.ap_depth(self.ctx, i)

    def can_move(self, i: int) -> int:
        return self.lib.ap_can_move(self.ctx, i)

    def index(self, wide: list[int]) -> int:
        """The index of this canonical state here (-1: not stored)."""
        w, out = self.Wide(*wide), self.Wide()
        return self.lib.ap_canon(self.ctx, w, out)

    def info(self) -> dict:
        """Where this partition runs and what it holds."""
        st = self.stats()
        return {"pid": os.getpid(), "host": socket.gethostname(), "states": st[0], "bytes": st[5], "rss": _rss()}


def _unwrap(batches: tuple) -> tuple | list:
    """The outboxes one by one: Ray hands a single partition its producer's list whole (a task
    with one return value returns the list)."""
    return batches[0] if len(batches) == 1 and isinstance(batches[0], list) else batches


def _rss() -> int:
    """This process's resident bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
