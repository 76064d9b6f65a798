"""One scenario's exploration and the verdicts it gives, as plain data.

`run_scenario` instantiates the lowered program with one scenario's threads
(or the whole system's), explores it, replays the counterexamples and returns
a ScenarioRun.
"""
from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field, replace

from apcheck.commands.model import VerifyConfig
from apcheck.diagnostics import InternalError
from apcheck.explore.engine import ExploreResult, explore
from apcheck.explore.trace import Describer, concrete_completion, concrete_failure, final_state, replay
from apcheck.explore.waitfor import continuation, stuck_threads, wait_for
from apcheck.explore.slicing import slice_for
from apcheck.explore.system import bounds_of, scenario_system
from apcheck.ir import program as P
from apcheck.ir.lowered import JUMP, RETURN, Lowered
from apcheck.results import (Coverage, Kind, Method, OpCoverage, PropertyResult, Site, StatementCoverage, Stats,
                             Verdict, exploration_title)
from apcheck.smt.bmc import bmc
from apcheck.smt.symbolic import NotTranslatable


@dataclass(kw_only=True)
class ScenarioRun:
    scenario: str
    threads: list[str]
    method: Method
    results: dict[str, PropertyResult]            # invariants, covers, deadlock, defects
    edges: dict[tuple[int, int], tuple[Site, Site]]  # reached lock-order edges and their sites
    states: int
    transitions: int
    seconds: float
    max_depth: int
    complete: bool
    limit: str | None
    deadlock_found: bool
    peak_memory_mb: float = 0.0
    notes: dict[str, list[str]] = field(default_factory=dict)   # property -> notes of this scenario
    run_notes: list[str] = field(default_factory=list)           # notes on the exploration itself
    core: str = "python"                                          # the explorer core that ran it
    coverage: Coverage | None = None                              # what the search executed


def explore_scenarios(lowered: Lowered, config: VerifyConfig, scenarios: list[P.Scenario]
                      ) -> tuple[list[ScenarioRun], float]:
    """Run the scenarios one after the other (a search uses every core through the native core's
    threads); the runs and the wall time they took."""
    start = time.monotonic()
    if config.max_memory_mb is not None:  # the run's memory budget bounds each search
        config = replace(config, explore=replace(config.explore, max_memory_mb=config.max_memory_mb))
    return [run_scenario(lowered, config, sc) for sc in scenarios], time.monotonic() - start


def stats_of(runs: list[ScenarioRun], wall: float, config: VerifyConfig) -> Stats:
    """The statistics of a run of these explorations: `seconds` is the wall time, `search_seconds`
    the time the searches took."""
    states = sum(r.states for r in runs)
    limits = [r.limit for r in runs if r.limit]
    memory = max([r.peak_memory_mb for r in runs] + [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0])
    search = sum(r.seconds for r in runs)
    return Stats(states=states, transitions=sum(r.transitions for r in runs), depth=max(r.max_depth for r in runs),
                 seconds=wall, search_seconds=search, states_per_second=states / max(search, 1e-9),
                 peak_memory_mb=memory, complete=not limits, limit=limits[0] if limits else None,
                 symmetry=config.explore.symmetry, reduction=config.explore.reduction,
                 notes=list(dict.fromkeys(n for r in runs for n in r.run_notes)),
                 cores=sorted({r.core for r in runs}))


def method_over(runs: list[ScenarioRun]) -> Method:
    """The explorer's method of one run per scenario, as one method over all of them."""
    return replace(runs[0].method, scenarios=tuple(r.scenario for r in runs))


def run_scenario(lowered: Lowered, config: VerifyConfig, scenario: P.Scenario) -> ScenarioRun:
    """Explore one scenario and assemble its verdicts. With `config.locks_only`, the properties are
    not evaluated: the run gives the reached lock-order edges and whether a deadlock was found."""
    program = lowered.program
    system = scenario_system(lowered, bounds_of(program, config.bounds), scenario)
    sliced = None
    if config.locks_only:
        system = replace(system, invariants=[], covers=[])
    elif config.properties is not None:
        chosen = [p for p in program.properties if p.name in config.properties]
        system, dropped = slice_for(system, chosen)
        system = replace(system, invariants=[i for i in system.invariants if i[0].name in config.properties],
                         covers=[c for c in system.covers if c[0].name in config.properties])
        sliced = (f"{', '.join(p.name for p in chosen)}: explored on the slice of {exploration_title(scenario.name)} "
                  f"that can affect {'them' if len(chosen) > 1 else 'it'}"
                  + (f" (left out, as they write nothing it reads: {', '.join(dropped)})" if dropped else ""))
    result = explore(system, config.explore)
    a = _Assembler(program, system, result, config)
    results = {}
    if not config.locks_only:
        for prop in program.properties:
            if config.properties is not None and prop.name not in config.properties:
                continue
            if prop.kind == Kind.INVARIANT:
                results[prop.name] = a.invariant(prop)
            elif prop.kind == Kind.COVER:
                results[prop.name] = a.cover(prop)
        if config.properties is None:
            results["deadlock"] = a.deadlock()
            results["defects"] = a.defects()
    edges = {key: (a.d.site(sa), a.d.site(sb)) for key, (sa, sb, _) in result.edges.items()}
    run = ScenarioRun(scenario=system.scenario, threads=[t.name for t in system.threads], method=a.method,
                      results=results, edges=edges, states=len(result.states), transitions=result.transitions,
                      seconds=result.seconds, max_depth=result.max_depth_reached, complete=result.complete,
                      limit=result.limit, deadlock_found=result.deadlock is not None or "deadlock" in result.defects,
                      peak_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
                      + result.worker_memory_mb,
                      run_notes=list(result.notes) + ([sliced] if sliced else []), core=result.core,
                      coverage=a.coverage)
    if config.bmc_depth > 0:
        run.notes = cross_check(system, result, config)
    return run


def coverage_of(system, result: ExploreResult, completion=lambda op: (None, None)) -> Coverage | None:
    """The report's coverage of a search: the operations the threads run (with `completion(op)`: the
    steps to its first successful return and that trace), and their statements (an inlined
    procedure's statement counted at every call site together)."""
    cov = result.coverage
    if cov is None:
        return None
    ran = sorted({op for th in system.threads for op in th.ops})
    ops = [OpCoverage(op=system.ops[o].name, started=cov.executed[system.ops[o].entry],
                      returned=cov.returned[o], succeeded=cov.succeeded[o]) for o in ran]
    for o, out in zip(ran, ops):
        out.completes, out.trace = completion(o)
    statements: dict[tuple, StatementCoverage] = {}
    sources = system.program.sources
    ran_set = set(ran)
    for pc, ins in enumerate(system.code):
        if system.op_of_pc[pc] not in ran_set or ins.kind == JUMP:  # a loop's jump back is no statement
            continue
        text = sources.snippet(ins.span)
        if ins.kind == RETURN and ins.span.end_line != ins.span.line:  # falling off the end: no statement
            if not cov.executed[pc]:
                continue
            text = f"}} (the end of {system.lowered.code[pc].chain[-1].function})"
        key = (ins.span.file, ins.span.line, ins.span.col)
        st = statements.get(key)
        if st is None:
            st = statements[key] = StatementCoverage(span=ins.span, text=text, executed=0)
        st.executed += cov.executed[pc]
    return Coverage(scenario=system.scenario, bounds=dict(system.sizes.n), complete=result.complete,
                    operations=ops, statements=[statements[k] for k in sorted(statements)])


def cross_check(system, result: ExploreResult, config: VerifyConfig) -> dict[str, list[str]]:
    """BMC of the scenario's system: a note per invariant and cover; a disagreement with a complete
    search is an internal error (depths compare only without the reduction, which merges steps)."""
    props = [p for p in system.program.properties if p.kind in ("invariant", "cover")]
    where = f"{exploration_title(system.scenario)}: "
    try:
        found = bmc(system, config.bmc_depth, config.smt_timeout)
    except NotTranslatable as err:
        return {p.name: [f"BMC cross-check: {where}{err}"] for p in props}
    if found.unknown:
        return {p.name: [f"BMC cross-check: {where}{found.unknown}"] for p in props}
    depth = {**{k: result.depth[v] for k, v in result.invariant_violations.items()},
             **{k: result.depth[v] for k, v in result.covers_reached.items()}}
    # depths compare only without the reduction (it merges steps), and where no defect was found:
    # BMC ends a path at a defect, the explorer goes on with the other threads
    exact = not config.explore.reduction and not result.defects
    notes = {}
    for prop in props:
        name = prop.name
        hit = found.violations.get(name, found.reached.get(name))
        word = "violated" if prop.kind == "invariant" else "reached"
        notes[name] = [f"BMC cross-check (Z3, every interleaving): {where}"
                       + (f"{word} at depth {hit}" if hit is not None else f"none up to depth {found.depth}")]
        mine = depth.get(name)
        if hit is not None and mine is None and result.complete:
            raise InternalError(f"BMC finds {name} {word} at depth {hit}, the complete search does not")
        if exact and mine is not None and mine <= found.depth and hit != mine:
            raise InternalError(f"BMC and the explorer disagree on {name}: depth {hit} vs {mine}")
    return notes




class _Assembler:
    """Verdicts of one scenario's exploration."""

    def __init__(self, program, system, result: ExploreResult, config: VerifyConfig):
        self.p = program
        self.sys = system
        self.r = result
        self.d = Describer(system)
        self.method = Method(engine="explicit-state", bounds=tuple(system.sizes.n.items()),
                             scenarios=(system.scenario,), symmetry=result.canon is not None,
                             reduction=config.explore.reduction)
        self.coverage = coverage_of(system, result, self.completion)
        self.where = exploration_title(system.scenario)
        if config.properties is not None:  # a slice (explore/slicing.py)
            self.where = f"the slice of {self.where} that can affect it"

    def completion(self, op: int):
        """The automatic cover "OP completes": the steps to the operation's first successful return,
        and the trace that ends with it; (None, None) where the search never saw one."""
        if op not in self.r.completions:
            return None, None
        idx, rec = self.r.completions[op]
        steps = replay(self.r, idx)
        state = final_state(self.r, steps)
        last = concrete_completion(self.r, state, rec)
        return len(steps) + 1, self.d.trace(steps + [(state, last)])

    def triviality(self, prop: P.Property) -> str | None:
        """Why a holds or unreachable of this property is trivial here: the bounds it needs."""
        short = {s: n for s, n in prop.needs.items() if self.sys.sizes.n.get(s, 0) < n}
        if not short:
            return None
        return (f"needs {', '.join(f'{s}={n}' for s, n in short.items())}, explored at "
                f"{', '.join(f'{s}={self.sys.sizes.n.get(s, 0)}' for s in short)}")

    def vacuity(self, prop: P.Property) -> str | None:
        """Why a holds of this invariant is vacuous: the operations that write what it reads and
        never complete successfully in this exploration; None if every one does."""
        cov = self.coverage
        if cov is None or not cov.complete:
            return None
        reads = P.globals_read(prop.expr)
        never = [o for o in cov.operations if not o.succeeded
                 and P.globals_written(self.p.procs, o.op) & reads]
        if not never:
            return None
        return ", ".join(o.op for o in never) + (" never completes" if len(never) == 1 else " never complete")

    # ---- state properties ------------------------------------------------------

    def result(self, name: str, kind: Kind, verdict: Verdict, message: str, span=None, trace=None
               ) -> PropertyResult:
        return PropertyResult(name=name, kind=kind, verdict=verdict, method=self.method, message=message,
                              span=span, trace=trace, scenario=self.sys.scenario)

    def unknown(self, name, kind, span, what) -> PropertyResult:
        return self.result(name, kind, Verdict.UNKNOWN,
                           f"{what}; search stopped early ({self.r.limit}) after {len(self.r.states)} states "
                           f"of {self.where}", span)

    def trace_to(self, idx: int):
        return self.d.trace(replay(self.r, idx))

    def invariant(self, prop: P.Property) -> PropertyResult:
        idx = self.r.invariant_violations.get(prop.name)
        if idx is not None:
            where = ", where no operation is in progress" if prop.between else ""
            return self.result(prop.name, Kind.INVARIANT, Verdict.VIOLATED,
                               f"violated after {self.r.depth[idx]} steps{where}", prop.span, self.trace_to(idx))
        if not self.r.complete:
            return self.unknown(prop.name, Kind.INVARIANT, prop.span, "no violation found")
        where = " (judged where no operation is in progress)" if prop.between else ""
        out = self.result(prop.name, Kind.INVARIANT, Verdict.HOLDS,
                          f"holds in all {len(self.r.states)} reachable states of "
                          f"{self.where}{where}", prop.span)
        out.vacuous = self.vacuity(prop)
        out.trivial = self.triviality(prop)
        if out.vacuous:
            out.message += (f", but vacuously: {out.vacuous} successfully (see the coverage), and "
                            "the invariant reads what they write")
        return out

    def cover(self, prop: P.Property) -> PropertyResult:
        idx = self.r.covers_reached.get(prop.name)
        if idx is not None:
            return self.result(prop.name, Kind.COVER, Verdict.REACHED,
                               f"reached after {self.r.depth[idx]} steps", prop.span, self.trace_to(idx))
        if not self.r.complete:
            return self.unknown(prop.name, Kind.COVER, prop.span, "not reached")
        out = self.result(prop.name, Kind.COVER, Verdict.UNREACHABLE,
                          f"no reachable state satisfies it ({len(self.r.states)} states)", prop.span)
        out.trivial = self.triviality(prop)
        return out

    def failing_trace(self, prop: str):
        idx, rec = self.r.defects[prop]
        steps = replay(self.r, idx)
        state = final_state(self.r, steps)
        o = concrete_failure(self.r, state, rec)
        return self.d.trace(steps, (state, o)), o

    def defects(self) -> PropertyResult:
        if "defects" in self.r.defects:
            trace, o = self.failing_trace("defects")
            return self.result("defects", Kind.DEFECTS, Verdict.VIOLATED,
                               f"{o.defect.kind}: {o.defect.message}", o.defect.span, trace)
        if not self.r.complete:
            return self.unknown("defects", Kind.DEFECTS, None, "no model defect found")
        return self.result("defects", Kind.DEFECTS, Verdict.HOLDS,
                           "no release of an unheld lock, lock held at return, unguarded access, "
                           "sleeping with a spinlock held, "
                           "null lock instance or failed assert")

    def deadlock(self) -> PropertyResult:
        stuck = self.r.deadlock
        selfd = self.r.defects.get("deadlock")
        if stuck is not None and (selfd is None or self.r.depth[stuck[0]] <= self.r.depth[selfd[0]]):
            idx, mask = stuck
            steps = replay(self.r, idx)
            state = final_state(self.r, steps)
            # on until every thread of it is blocked (a wait-for cycle found during the search already is)
            more = [] if self.r.deadlock_at_once else continuation(self.r, state)
            end = more[-1][1].state if more else state
            trace = self.d.trace(steps + more)
            trace.certain_at = len(steps) if more else None
            stuck = stuck_threads(self.r, end) or mask  # every thread of it, once all are blocked
            trace.final, trace.waiting = wait_for(self.r, end, stuck)
            names = [self.sys.threads[t].name for t in range(len(self.sys.threads)) if stuck >> t & 1]
            total = all(stuck >> t & 1 or end[2][t][0] < 0 for t in range(len(self.sys.threads)))
            kind = "deadlock" if len(names) > 1 else "stuck thread"
            msg = f"{kind} after {len(steps)} steps: {', '.join(names)} can never move again"
            if not total:
                msg += " (other threads still run)"
            return self.result("deadlock", Kind.DEADLOCK, Verdict.VIOLATED, msg, None, trace)
        if selfd is not None:
            trace, o = self.failing_trace("deadlock")
            return self.result("deadlock", Kind.DEADLOCK, Verdict.VIOLATED,
                               f"self-deadlock: {o.defect.message}", o.defect.span, trace)
        if not self.r.complete:
            return self.unknown("deadlock", Kind.DEADLOCK, None, "no deadlock found")
        return self.result("deadlock", Kind.DEADLOCK, Verdict.HOLDS,
                           "every busy thread can always move again (no partial or global deadlock)")
