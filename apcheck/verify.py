"""One verification run: load and check, lower, explore, prove, assemble verdicts.

The only module that knows every back end; it returns a VerifyResult and
prints nothing.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import resource
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

from apcheck.diagnostics import Diagnostic, DiagnosticError, InternalError, UsageError
from apcheck.explore.engine import ExploreConfig
from apcheck.explore.system import bounds_of, initial_globals
from apcheck.explore.trace import lock_site
from apcheck.ir import program as P
from apcheck.ir.lower import lower
from apcheck.ir.lowered import Lowered
from apcheck.lang.check import BUILTIN_PROPERTIES, check
from apcheck.lang.loader import load
from apcheck.locks.graph import hierarchy_violations, shortest_cycle, topological_order
from apcheck.locks.static import StaticEdges, static_edges
from apcheck.results import Kind, LockEdge, Method, PropertyResult, Stats, Verdict, VerifyResult
from apcheck.scenario import ScenarioRun, run_scenario
from apcheck.smt.induction import atomic_is_exact, prove_invariants
from apcheck.smt.lockorder import prove_order


@dataclass(frozen=True, kw_only=True)
class VerifyConfig:
    bounds: dict[str, int] = field(default_factory=dict)
    explore: ExploreConfig = ExploreConfig()
    smt_timeout: float = 10.0
    scenario: str | None = None   # explore only this scenario
    induction: bool = True        # try Z3 induction proofs of the invariants for every size
    bmc_depth: int = 0            # > 0: cross-check the explorer with Z3 BMC to this depth
    jobs: int = 0                 # worker processes for the scenarios (0: one per core, at most one each)


def load_program(model: str, specs: list[str] = ()) -> P.Program:
    """Parse and check a model together with spec files (raises DiagnosticError)."""
    modules = load([model] + list(specs))
    return check(modules, model)


def check_expectations(program: P.Program, names: list[str]) -> None:
    bad = [Diagnostic("E502", f"expectation for unknown property '{e.prop}' of model '{e.model}'", e.span)
           for e in program.expectations if e.model == program.model_name and e.prop not in names]
    if bad:
        raise DiagnosticError(bad, program.sources)


def build(program: P.Program) -> tuple[Lowered, StaticEdges]:
    """The lowered program and its static lock-order edges: once per model. Raises the model errors
    found here: E402 (a release no path holds), E301 (an initial value that uses null)."""
    lowered = lower(program)
    static = static_edges(lowered)
    if static.diagnostics:
        raise DiagnosticError(static.diagnostics, program.sources)
    initial_globals(program, bounds_of(program))
    return lowered, static


def select_scenarios(program: P.Program, name: str | None) -> list[P.Scenario]:
    if name is None:
        return list(program.scenarios)
    chosen = [s for s in program.scenarios if s.name == name]
    if not chosen:
        known = ", ".join(s.name for s in program.scenarios)
        raise UsageError(f"no scenario '{name}' in {program.path} (scenarios: {known})")
    return chosen


def verify(program: P.Program, config: VerifyConfig = VerifyConfig(), specs: list[str] = ()) -> VerifyResult:
    """Explore each scenario, then combine: a property is violated (or a cover reached) if some
    scenario shows it, and holds only if it holds in every scenario."""
    names = [p.name for p in program.properties] + list(BUILTIN_PROPERTIES)
    check_expectations(program, names)
    scenarios = select_scenarios(program, config.scenario)
    bounds_of(program, config.bounds)  # a bad --bound is a usage error before any work
    lowered, static = build(program)
    runs = explore_scenarios(lowered, config, scenarios)
    return _combine(lowered, runs, static, config, list(specs))


def explore_scenarios(lowered: Lowered, config: VerifyConfig, scenarios: list[P.Scenario]) -> list[ScenarioRun]:
    """Run the scenarios, in parallel worker processes when there are several and jobs allow."""
    jobs = config.jobs or min(len(scenarios), os.cpu_count() or 1)
    if jobs <= 1 or len(scenarios) == 1 or "fork" not in mp.get_all_start_methods():
        return [run_scenario(lowered, config, sc) for sc in scenarios]
    # fork: the workers inherit the lowered program and the configuration; nothing of them is pickled
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("fork"),
                             initializer=_worker_start, initargs=(lowered, config, scenarios)) as pool:
        return list(pool.map(_run_in_worker, range(len(scenarios))))


_worker: tuple | None = None  # set once in each worker process, by _worker_start


def _worker_start(lowered: Lowered, config: VerifyConfig, scenarios: list[P.Scenario]) -> None:
    global _worker
    _worker = (lowered, config, scenarios)


def _run_in_worker(index: int) -> ScenarioRun:
    lowered, config, scenarios = _worker
    return run_scenario(lowered, config, scenarios[index])


def _combine(lowered: Lowered, runs: list[ScenarioRun], static: StaticEdges, config, specs) -> VerifyResult:
    program = lowered.program
    props = []
    for prop in program.properties:
        if prop.kind in (Kind.INVARIANT, Kind.COVER):
            props.append(_merge([r.results[prop.name] for r in runs]))
    props.append(_merge([r.results["deadlock"] for r in runs]))
    props.append(_merge([r.results["defects"] for r in runs]))
    for pr in props:
        for r in runs:
            pr.notes += r.notes.get(pr.name, [])
    edges = _union_edges(runs, lowered, static)
    for prop in program.properties:
        if prop.kind == Kind.LOCKORDER:
            props.append(_lockorder(prop, edges, runs, lowered, config))
    expect = {e.prop: e.verdict for e in program.expectations if e.model == program.model_name}
    partial = len(runs) < len(program.scenarios)
    for pr in props:
        pr.expected = expect.get(pr.name)
        pr.partial = partial
    total_states = sum(r.states for r in runs)
    secs = sum(r.seconds for r in runs)
    limits = [r.limit for r in runs if r.limit]
    memory = max([r.peak_memory_mb for r in runs] + [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0])
    stats = Stats(states=total_states, transitions=sum(r.transitions for r in runs),
                  depth=max(r.max_depth for r in runs), seconds=secs,
                  states_per_second=total_states / max(secs, 1e-9), peak_memory_mb=memory,
                  complete=not limits, limit=limits[0] if limits else None,
                  symmetry=config.explore.symmetry, reduction=config.explore.reduction)
    if config.induction:
        _add_induction(lowered, props, config)
    return VerifyResult(model=program.model_name, path=program.path, specs=specs,
                        bounds=bounds_of(program, config.bounds),
                        scenarios={r.scenario: r.threads for r in runs}, properties=props, lock_edges=edges,
                        stats=stats)


def _add_induction(lowered: Lowered, props: list[PropertyResult], config) -> None:
    """Attach Z3's every-size result to each invariant. Where the proofs carry over to the
    interleavings (see atomic_is_exact), a proof makes the verdict `proved`."""
    found = prove_invariants(lowered, config.smt_timeout)
    proved = [p for p in lowered.program.properties if p.name in found and found[p.name].status == "proved"]
    exact = atomic_is_exact(lowered, proved)
    for pr in props:
        ind = found.get(pr.name)
        if pr.kind != Kind.INVARIANT or ind is None:
            continue
        pr.induction = ind
        if not exact or ind.status != "proved":
            continue
        if pr.verdict == Verdict.VIOLATED:
            raise InternalError(f"Z3 proved invariant {pr.name} inductive, but the explorer reached a "
                                "violation of it in the same (atomic) system")
        if pr.verdict == Verdict.HOLDS:
            pr.verdict = Verdict.PROVED
            pr.method = Method("z3-induction", then=pr.method)
            pr.message = f"{ind.message}; {pr.message}"


def _merge(results: list[PropertyResult]) -> PropertyResult:
    """One verdict from the scenarios' verdicts on the same property."""
    if len(results) == 1:
        return results[0]
    for verdict in (Verdict.VIOLATED, Verdict.REACHED):
        found = [r for r in results if r.verdict == verdict]
        if found:
            return min(found, key=lambda r: len(r.trace.steps) if r.trace else 0)
    unknown = [r for r in results if r.verdict == Verdict.UNKNOWN]
    if unknown:
        return unknown[0]
    first = results[0]
    message = {Kind.INVARIANT: "holds in every reachable state of every scenario",
               Kind.COVER: "no reachable state of any scenario satisfies it"}.get(first.kind, first.message)
    return PropertyResult(name=first.name, kind=first.kind, verdict=first.verdict,
                          method=_over_scenarios([r.method for r in results]), message=message, span=first.span)


def _over_scenarios(methods: list[Method]) -> Method:
    """The explorer's method of one run per scenario, as one method over all of them."""
    return replace(methods[0], scenarios=tuple(s for m in methods for s in m.scenarios))


def _union_edges(runs: list[ScenarioRun], lowered: Lowered, static: StaticEdges) -> list[LockEdge]:
    """Every static edge and every edge reached in some scenario, with the sites that took it."""
    names = [cls.name for cls in lowered.locks]
    reached: dict[tuple[int, int], tuple] = {}
    for r in runs:
        for key, sites in r.edges.items():
            reached.setdefault(key, sites)
    out = []
    for a, b in sorted(set(reached) | set(static.edges)):
        if (a, b) in reached:
            sa, sb = reached[(a, b)]
        else:
            sa, sb = (lock_site(lowered, pc) for pc in static.edges[(a, b)])
        out.append(LockEdge(names[a], names[b], sa, sb, (a, b) in reached,
                            (a, b) in static.edges, (a, b) in static.read))
    return out


def _lockorder(prop: P.Property, edges: list[LockEdge], runs: list[ScenarioRun], lowered: Lowered,
               config: VerifyConfig) -> PropertyResult:
    """Reached edges: a cycle (Z3 unsat core) is a violation; all static paths in one order (Z3 ranks)
    is a proof for every size; otherwise holds within the bounds."""
    names = [cls.name for cls in lowered.locks]
    ids = {n: i for i, n in enumerate(names)}
    reached = {(ids[e.src], ids[e.dst]) for e in edges if e.reached}
    static = {(ids[e.src], ids[e.dst]) for e in edges if e.static}
    by_key = {(ids[e.src], ids[e.dst]): e for e in edges}
    classes = list(range(len(names)))
    timeout = int(config.smt_timeout * 1000)
    hier = [ids[c.name] for c in prop.hierarchy] if prop.hierarchy is not None else None
    deadlock_note = _deadlock_note(runs)
    complete = all(r.complete for r in runs)
    method = _over_scenarios([r.method for r in runs])
    proof = prove_order(classes, reached, timeout)
    if proof.status == "unsat":
        cycle = proof.cycle or shortest_cycle(reached)
        cyc_edges = [by_key[(cycle[i], cycle[(i + 1) % len(cycle)])] for i in range(len(cycle))]
        chain = " -> ".join([names[c] for c in cycle] + [names[cycle[0]]])
        return PropertyResult(name=prop.name, kind=Kind.LOCKORDER, verdict=Verdict.VIOLATED,
                              method=Method("z3-unsat-core"), message=f"circular lock dependency: {chain}",
                              span=prop.span, cycle=cyc_edges, notes=[deadlock_note])
    if hier is not None:
        bad = hierarchy_violations(reached, hier)
        if bad:
            e = by_key[bad[0]]
            order = " < ".join(names[c] for c in hier)
            return PropertyResult(name=prop.name, kind=Kind.LOCKORDER, verdict=Verdict.VIOLATED, method=method,
                                  message=f"{e.src} -> {e.dst} contradicts the declared order {order}",
                                  span=prop.span, cycle=[e])
    static_proof = prove_order(classes, static, timeout)
    static_ok = static_proof.status == "sat"
    if static_ok and hier is not None:
        static_ok = not hierarchy_violations(static, hier)
    if static_ok:
        order = static_proof.order
        if hier is not None:
            order = _merge_order(order, hier, static)
        return PropertyResult(name=prop.name, kind=Kind.LOCKORDER, verdict=Verdict.PROVED,
                              method=Method("z3-ranks"),
                              message="every path of every operation respects one total order",
                              span=prop.span, certificate=[names[c] for c in order])
    notes = []
    if static_proof.status == "unsat" and static_proof.cycle:
        c = static_proof.cycle
        notes.append("static paths (ignoring data) form the cycle "
                     + " -> ".join([names[x] for x in c] + [names[c[0]]]) + ", not reached within the bounds")
    elif hier is not None:
        bad = hierarchy_violations(static, hier)
        if bad:
            notes.append(f"a static path takes {names[bad[0][0]]} -> {names[bad[0][1]]}, "
                         "not reached within the bounds")
    if not complete:
        return PropertyResult(name=prop.name, kind=Kind.LOCKORDER, verdict=Verdict.UNKNOWN, method=method,
                              message="no cycle among reached edges, but a search stopped early",
                              span=prop.span, notes=notes)
    order = proof.order
    return PropertyResult(name=prop.name, kind=Kind.LOCKORDER, verdict=Verdict.HOLDS, method=method,
                          message="the reached edges respect one total order", span=prop.span,
                          certificate=[names[c] for c in order] if order else None, notes=notes)


def _deadlock_note(runs: list[ScenarioRun]) -> str:
    if any(r.deadlock_found for r in runs):
        return "a reachable deadlock was also found: see property 'deadlock'"
    if all(r.complete for r in runs):
        return "no reachable deadlock within the bounds"
    return "no reachable deadlock found before the search stopped"


def _merge_order(order: list[int], hier: list[int], edges: set[tuple[int, int]]) -> list[int]:
    chain = {(hier[i], hier[i + 1]) for i in range(len(hier) - 1)}
    return topological_order(order, edges | chain) or order

