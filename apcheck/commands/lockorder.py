"""Lock order: the edges of the lock graph (static and reached) and the lock-order verdicts.

`lock_order` is the command behind `apcheck lockgraph` and `apcheck explain`: it
explores each scenario for its lock-order edges and deadlocks only (no
invariants, covers or Z3 induction) and decides the lock-order properties.
`verify` uses `union_edges` and `lockorder_result` for the same verdicts.
"""
from __future__ import annotations

from dataclasses import replace

from apcheck.commands.model import VerifyConfig, build, select_scenarios
from apcheck.commands.scenario import ScenarioRun, explore_scenarios, method_over, stats_of
from apcheck.explore.system import bounds_of
from apcheck.explore.trace import lock_site
from apcheck.ir import program as P
from apcheck.ir.lowered import Lowered
from apcheck.locks.graph import hierarchy_violations, shortest_cycle, topological_order
from apcheck.locks.static import StaticEdges
from apcheck.results import Kind, LockEdge, Method, PropertyResult, Verdict, VerifyResult
from apcheck.smt.lockorder import prove_order


def lock_order(program: P.Program, config: VerifyConfig = VerifyConfig(), specs: list[str] = ()) -> VerifyResult:
    """The lock graph and the lock-order properties' verdicts; no other property is checked."""
    scenarios = select_scenarios(program, config.scenario)
    bounds = bounds_of(program, config.bounds)
    lowered, static = build(program, config.explore.closure_edges)
    runs, wall = explore_scenarios(lowered, replace(config, locks_only=True, induction=False, bmc_depth=0), scenarios)
    edges = union_edges(runs, lowered, static)
    props = [lockorder_result(p, edges, runs, lowered, config) for p in program.properties
             if p.kind == Kind.LOCKORDER]
    return VerifyResult(model=program.model_name, path=program.path, specs=list(specs), bounds=bounds,
                        scenarios={r.scenario: r.threads for r in runs}, properties=props, lock_edges=edges,
                        stats=stats_of(runs, wall, config))


def union_edges(runs: list[ScenarioRun], lowered: Lowered, static: StaticEdges) -> list[LockEdge]:
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
        out.append(LockEdge(src=names[a], dst=names[b], src_site=sa, dst_site=sb, reached=(a, b) in reached,
                            static=(a, b) in static.edges, read=(a, b) in static.read))
    return out



def lockorder_result(prop: P.Property, edges: list[LockEdge], runs: list[ScenarioRun], lowered: Lowered,
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
    method = method_over(runs)
    proof = prove_order(classes, reached, timeout)
    if proof.status == "unsat":
        cycle = proof.cycle or shortest_cycle(reached)
        cyc_edges = [by_key[(cycle[i], cycle[(i + 1) % len(cycle)])] for i in range(len(cycle))]
        chain = " -> ".join([names[c] for c in cycle] + [names[cycle[0]]])
        return PropertyResult(name=prop.name, kind=Kind.LOCKORDER, verdict=Verdict.VIOLATED,
                              method=Method(engine="z3-unsat-core"), message=f"circular lock dependency: {chain}",
                              span=prop.span, cycle=cyc_edges, notes=[deadlock_note])
    if hier is not None:
        bad = hierarchy_violations(reached, hier)
        if bad:
            e = by_key[bad[0]]
            order = " < ".join(names[c] for c in hier)
            return PropertyResult(name=prop.name, kind=Kind.LOCKORDER, verdict=Verdict.VIOLATED, method=method,
                                  message=f"{e.src} -> {e.dst} contradicts the declared order {order}",
                                  span=prop.span, cycle=[e], hierarchy=[names[c] for c in hier])
    static_proof = prove_order(classes, static, timeout)
    static_ok = static_proof.status == "sat"
    if static_ok and hier is not None:
        static_ok = not hierarchy_violations(static, hier)
    if static_ok:
        order = static_proof.order
        if hier is not None:
            order = _merge_order(order, hier, static)
        return PropertyResult(name=prop.name, kind=Kind.LOCKORDER, verdict=Verdict.PROVED,
                              method=Method(engine="z3-ranks"),
                              message="every path of every operation respects one total order",
                              span=prop.span, certificate=[names[c] for c in order])
    notes = []
    if static_proof.status == "unsat" and static_proof.cycle:
        c = static_proof.cycle
        notes.append("static paths (data ignored but for repeated conditions) form the cycle "
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

