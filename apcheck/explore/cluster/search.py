"""The search of engine.explore, hash-partitioned over workers (Stern and Dill's scheme).

Each worker holds one partition: the states whose hash falls to it (native/partition.c). The
search runs breadth-first, one level at a time: every partition expands its states of the level
with the native core's successor function, sends each successor to the partition that owns it,
and inserts what it receives; a level ends when every partition has inserted (a barrier), so a
state's depth is its distance from the initial state and every trace is a shortest one. The search
ends when no partition has a state left to expand.

Afterwards the stuck-thread analysis runs where the states are: each partition knows the
transitions into its states, and the masks of the threads that can still move flow backwards in
rounds of messages until no partition changes anything. The partitions' firsts (violations,
covers, defects, returns, lock-order edges, stuck states) are combined by least depth, so every
trace stays shortest; the traces are rebuilt across partitions (a state's parent is a partition
and an index) and replayed through the Python semantics, as for the single-machine core.

The state and transition counts, and the verdicts, are the single-machine core's: both expand
every reachable state once with the same successor function. A lost worker ends the search with
nothing decided: its states are gone, so no verdict may rest on the rest.
"""
from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, replace
from apcheck.explore.budget import Budget, LimitReached
from apcheck.explore.cluster.partition import Partition, PartitionError
from apcheck.explore.cluster.workers import ClusterUnavailable, InProcessWorkers, RayWorkers, WorkerLost, Workers
from apcheck.explore.engine import DECIDED_LIMIT, FIRST_LIMIT, ExecutionCounts, ExploreConfig, ExploreResult, Progress
from apcheck.explore.native.codegen import E_LIMIT, E_NOMEM, generate
from apcheck.explore.native.search import Core, completion_step, defect_step
from apcheck.explore.semantics import Semantics
from apcheck.explore.symmetry import symmetric_sorts
from apcheck.explore.system import System

LOST = "worker lost"   # how a limit that decides nothing begins (commands read it)


@dataclass(frozen=True)
class WorkerLoad:
    """One worker after a level: its process, its states, what its store allocated, its resident bytes."""

    pid: int
    states: int
    bytes: int
    rss: int


def explore_cluster(system: System, config: ExploreConfig, nparts: int,
                    backend: str = "ray") -> ExploreResult:
    """Search every reachable state over `nparts` partitions: on Ray actors ("ray", the cluster
    `workers.connect` joined) or in this process ("in-process", for tests)."""
    local = Core(system, replace(config, threads=1))   # the driver's own build: unpacking, canonical forms
    source, lay = generate(system)                     # (Core says so where the native core cannot run it)
    max_bytes = int(config.max_memory_mb * 2 ** 20 / nparts) if config.max_memory_mb else 0   # an equal share each
    first = 2 if config.stop_when_decided else int(config.first)
    kwargs = dict(closure_edges=config.closure_edges, reduction=config.reduction,
                  symmetry=config.symmetry, first=first, max_bytes=max_bytes)

    def args(p: int) -> tuple[tuple, dict]:
        return (source, lay.nw, len(system.ops), len(system.code), p, nparts), kwargs

    if backend == "in-process":
        workers: Workers = InProcessWorkers(nparts, lambda p: Partition(*args(p)[0], **args(p)[1]))
    else:
        try:
            workers = RayWorkers(nparts, args)
        except WorkerLost as err:
            raise ClusterUnavailable(f"the workers did not start: {err}")
    return _Run(system, config, workers, local).run()


class _Run:
    def __init__(self, system: System, config: ExploreConfig, workers: Workers, local: Core):
        self.sys, self.config, self.w, self.local = system, config, workers, local
        self.budget = Budget(config.timeout, None)   # memory: each worker's store has its own limit
        self.w.check = self._check
        self.limit: str | None = None
        self.loads: list[WorkerLoad] = []
        self.levels, self.search_seconds = 0, 0.0

    def _check(self) -> None:
        reason = self.budget.exceeded()
        if reason is not None:
            raise LimitReached(reason)

    def run(self) -> ExploreResult:
        start = time.monotonic()
        P, config = self.w.n, self.config
        depth, transitions, states, lost = 0, 0, 0, None
        next_report = start + config.progress_every
        decided_all = (1 << len(self.sys.invariants)) - 1 | ((1 << len(self.sys.covers)) - 1) << 32
        try:
            inserted = self.w.exchange("initial", [()] * P, "insert", [(0,)] * P)
            while True:
                frontier = [(r["lo"], r["hi"]) for r in inserted]
                states = sum(r["hi"] for r in inserted)
                transitions = sum(r["transitions"] for r in inserted)
                self.loads = [WorkerLoad(r["pid"], r["hi"], r["bytes"], r["rss"]) for r in inserted]
                left = sum(hi - lo for lo, hi in frontier)
                props = flags = 0
                for r in inserted:
                    props |= r["props"]
                    flags |= r["flags"]
                now = time.monotonic()
                if config.progress and (now >= next_report or not left):
                    config.progress(Progress(states, transitions, depth if left else max(depth - 1, 0), left,
                                             now - start, self.sys.scenario, workers=tuple(self.loads)))
                    next_report = now + config.progress_every
                if not left:
                    break
                if config.max_depth is not None and depth >= config.max_depth:
                    self.limit = f"max depth {config.max_depth}"
                    break
                if config.first and (props & 0xFFFFFFFF or flags):
                    self.limit = FIRST_LIMIT
                    break
                if config.stop_when_decided and decided_all and props & decided_all == decided_all:
                    self.limit = DECIDED_LIMIT
                    break
                if config.max_states and states >= config.max_states:
                    self.limit = f"max states {config.max_states}"
                    break
                self._check()
                inserted = self.w.exchange("expand", frontier, "insert", [(depth + 1,)] * P)
                depth += 1
                self.levels = depth
        except LimitReached as stop:
            self.limit = stop.reason
        except PartitionError as err:
            self.limit = self._partition_limit(err)
        except WorkerLost as err:
            lost = f"{LOST}: {err}"
        self.search_seconds = time.monotonic() - start
        if lost is None:
            try:
                return self._result(start)
            except WorkerLost as err:
                lost = f"{LOST}: {err}"
        self.w.close()
        return self._nothing_decided(lost, states, transitions, start)

    def _partition_limit(self, err: PartitionError) -> str:
        if err.code == E_LIMIT:
            share = self.config.max_memory_mb / self.w.n
            return f"memory limit of {self.config.max_memory_mb:,.0f} MiB reached ({share:,.0f} MiB per worker; {err})"
        if err.code == E_NOMEM:
            return f"out of memory in a worker ({err})"
        return f"the native core stopped in a worker ({err})"

    def _stuck(self, any_dead: bool) -> str:
        """The stuck-thread analysis: masks flow backwards until no partition changes anything.
        What it cost, for the notes."""
        P, start, rounds, words = self.w.n, time.monotonic(), 0, 0
        self.w.each("stuck_init", [(any_dead,)] * P)
        while True:
            received = self.w.exchange("stuck_round", [()] * P, "stuck_apply", [()] * P)
            rounds += 1
            words += sum(received)
            if not any(received):
                per = 1 if len(self.sys.threads) <= 32 else 2   # words per message (native/partition.c: MSG_WORDS)
                return (f"deadlock analysis: {rounds} rounds, {words // per:,} masks exchanged, "
                        f"{time.monotonic() - start:.1f} s")

    def _result(self, start: float) -> ExploreResult:
        sys, config, P = self.sys, self.config, self.w.n
        n_inv, n_cov = len(sys.invariants), len(sys.covers)
        analysed = self.limit is None or not self.limit.startswith(("memory limit", "out of memory", "the native"))
        stuck_note = "the deadlock analysis did not run: a worker's store stopped"
        self.w.check = lambda: None   # the analysis is finite, and the search's verdicts wait for it
        if analysed:   # a partition whose core stopped cannot run it: the deadlock is then not decided
            try:
                stuck_note = self._stuck(any(flags & 1 for _, flags in self.w.each("found")))
            except PartitionError as err:   # no verdict may then say "no deadlock"
                analysed = False
                stuck_note = f"the deadlock analysis stopped: {err}"
                self.limit = self.limit or f"{self._partition_limit(err)}, in the deadlock analysis"
        summaries = self.w.each("summary", [(n_inv, n_cov, len(sys.locks))] * P)
        ids = _Ids([s["n"] for s in summaries])

        def least(items):   # (depth, partition, index, ...) -> the least by depth, then partition
            items = [x for x in items if x is not None]
            return min(items) if items else None

        def firsts(key: str, k: int):
            best = least([(s[key][k][0], p, *s[key][k][1:]) if s[key][k] else None for p, s in enumerate(summaries)])
            return None if best is None else (ids.gid(best[1], best[2]), *best[3:])

        sem = Semantics(sys, merge_private_releases=config.reduction, closure_edges=config.closure_edges)
        states = _States(self, ids)
        inv = {prop.name: firsts("inv", k) for k, (prop, _, _) in enumerate(sys.invariants)}
        cov = {prop.name: firsts("cov", k) for k, (prop, _) in enumerate(sys.covers)}
        defects = {}
        for prop, name in ((0, "deadlock"), (1, "defects")):
            found = firsts("defects", prop)
            if found is not None:
                i, t, kind = found
                defects[name] = (i, defect_step(sem, states[i], i, t, kind))
        completions = {}
        for op in range(len(sys.ops)):
            found = firsts("done", op)
            if found is not None:
                i, t = found
                completions[op] = (i, completion_step(sem, states[i], i, t, op))
        edges: dict[tuple[int, int], tuple[int, int, int, int, int]] = {}
        for p, s in enumerate(summaries):
            for a, b, site_a, site_b, origin, d in s["edges"]:
                key = (d, p, origin)
                if (a, b) not in edges or key < edges[(a, b)][:3]:
                    edges[(a, b)] = (*key, site_a, site_b)
        ordered = sorted(edges.items(), key=lambda kv: kv[1][:3])
        stuck = least([(s["stuck"][0], p, *s["stuck"][1:]) if analysed and s["stuck"] else None
                       for p, s in enumerate(summaries)])
        coverage = [sum(col) for col in zip(*(s["coverage"] for s in summaries))]
        sent = {phase: sum(s["sent"][phase] for s in summaries) for phase in ("search", "stuck")}
        result = ExploreResult(
            states=states, parent=_Column(self, ids, "parent"), depth=_Column(self, ids, "depth"),
            transitions=sum(s["transitions"] for s in summaries), complete=self.limit is None, limit=self.limit,
            seconds=time.monotonic() - start,
            invariant_violations={k: v[0] for k, v in inv.items() if v is not None},
            covers_reached={k: v[0] for k, v in cov.items() if v is not None},
            defects=defects, deadlock=(ids.gid(stuck[1], stuck[2]), stuck[3]) if stuck else None,
            edges={ab: (v[3], v[4], ids.gid(v[1], v[2])) for ab, v in ordered}, semantics=sem,
            canon=(lambda s: self.local.canon(s)[0]) if self.local.symmetric else None,
            max_depth_reached=max(s["deepest"] for s in summaries),
            notes=(symmetric_sorts(sys.sizes.n)[1] if config.symmetry else [])
            + [f"distributed over {P} workers: " + ", ".join(f"{s['n']:,} states ({w.rss / 2 ** 20:,.0f} MiB)"
                                                             for s, w in zip(summaries, self.loads))]
            + [f"search: {self.levels} levels, {self.search_seconds:.1f} s, {_mib(sent['search'])} sent between "
               f"workers; {stuck_note}, {_mib(sent['stuck'])}"],
            index=_Index(self, ids), can_move=_Column(self, ids, "can_move") if analysed else None, core="native")
        cycle = least([(s["cycle"][0], p, s["cycle"][1]) if s["cycle"] else None for p, s in enumerate(summaries)])
        if cycle is not None:   # a wait-for cycle found during the search (--first)
            gid = ids.gid(cycle[1], cycle[2])
            result.deadlock = (gid, sem.waits_forever(states[gid]))
            result.deadlock_at_once = True
        result.store = self   # the workers hold the states: they live as long as the result
        result.coverage = ExecutionCounts.from_flat(coverage, len(sys.code), len(sys.ops))
        result.completions = completions
        result.worker_memory_mb = sum(w.rss for w in self.loads) / 2 ** 20
        return result

    def _nothing_decided(self, reason: str, states: int, transitions: int, start: float) -> ExploreResult:
        """A run that lost a worker: the counts so far, no verdict, no trace."""
        sem = Semantics(self.sys, merge_private_releases=self.config.reduction,
                        closure_edges=self.config.closure_edges)
        return ExploreResult(states=_Lost(states), parent=_Lost(states), depth=_Lost(states), transitions=transitions,
                             complete=False, limit=reason, seconds=time.monotonic() - start,
                             invariant_violations={}, covers_reached={}, defects={}, deadlock=None, edges={},
                             semantics=sem, canon=None, notes=[f"{reason}: its states are gone, so nothing is decided"],
                             core="native")

    def __del__(self):
        try:
            self.w.close()
        except Exception:  # noqa: BLE001 - at interpreter exit Ray may be gone already
            pass


def _mib(n: int) -> str:
    return f"{n / 2 ** 20:,.1f} MiB"


class _Ids:
    """Global state numbers: partition p's states follow those of partitions 0..p-1."""

    def __init__(self, sizes: list[int]):
        self.offsets = [0]
        for n in sizes:
            self.offsets.append(self.offsets[-1] + n)

    @property
    def n(self) -> int:
        return self.offsets[-1]

    def gid(self, p: int, i: int) -> int:
        return self.offsets[p] + i

    def locate(self, gid: int) -> tuple[int, int]:
        if not 0 <= gid < self.n:
            raise IndexError(gid)
        p = bisect.bisect_right(self.offsets, gid) - 1
        return p, gid - self.offsets[p]


class _States:
    def __init__(self, run: _Run, ids: _Ids):
        self.run, self.ids = run, ids

    def __len__(self) -> int:
        return self.ids.n

    def __getitem__(self, gid: int) -> tuple:
        p, i = self.ids.locate(gid)
        return self.run.local.to_tuple(self.run.w.one(p, "state", i))

    def __iter__(self):
        return (self[g] for g in range(self.ids.n))


class _Column:
    """parent, depth or can_move of a state, asked of its partition."""

    def __init__(self, run: _Run, ids: _Ids, what: str):
        self.run, self.ids, self.what = run, ids, what

    def __len__(self) -> int:
        return self.ids.n

    def __getitem__(self, gid: int) -> int:
        p, i = self.ids.locate(gid)
        value = self.run.w.one(p, self.what, i)
        if self.what == "parent":
            part, j = value
            return -1 if j < 0 else self.ids.gid(part, j)
        return value


class _Index:
    """state -> its global number: its canonical form and owner from the driver's build, its index
    from the owner."""

    def __init__(self, run: _Run, ids: _Ids):
        self.run, self.ids = run, ids

    def get(self, state: tuple, default=None):
        core = self.run.local
        out = core.Wide()
        p = core.lib.ap_part_owner(core.ctx, core.to_wide(state), out, self.run.w.n)
        j = self.run.w.one(p, "index", list(out))
        return default if j < 0 else self.ids.gid(p, j)

    def __contains__(self, state: tuple) -> bool:
        return self.get(state) is not None


class _Lost:
    """The columns of a run that lost a worker: its size only."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        raise LookupError("a worker was lost: the states are gone")

