"""One verification run: load and check, lower, explore, prove, assemble verdicts.

The only module that knows every back end; it returns a VerifyResult and
prints nothing.
"""
from __future__ import annotations

import resource
from dataclasses import dataclass, field

from apcheck.diagnostics import Diagnostic, DiagnosticError, InternalError, UsageError
from apcheck.explore.engine import ExploreConfig, ExploreResult, explore
from apcheck.explore.trace import Describer, concrete_failure, final_state, replay
from apcheck.ir import program as P
from apcheck.ir.lower import bounds_of, lower
from apcheck.ir.system import System
from apcheck.lang.check import BUILTIN_PROPERTIES, check
from apcheck.lang.loader import load
from apcheck.locks.graph import hierarchy_violations, shortest_cycle, topological_order
from apcheck.locks.static import StaticEdges, static_edges
from apcheck.results import LockEdge, PropertyResult, Stats, VerifyResult
from apcheck.smt.bmc import bmc
from apcheck.smt.induction import atomic_is_exact, prove_invariants
from apcheck.smt.symbolic import NotTranslatable
from apcheck.smt.lockorder import prove_order


@dataclass(frozen=True)
class VerifyConfig:
    bounds: dict[str, int] = field(default_factory=dict)
    explore: ExploreConfig = ExploreConfig()
    smt_timeout: float = 10.0
    scenario: str | None = None   # explore only this scenario
    induction: bool = True        # try Z3 induction proofs of the invariants for every size
    bmc_depth: int = 0            # > 0: cross-check the explorer with Z3 BMC to this depth


def load_program(model: str, specs: list[str] = ()) -> P.Program:
    """Parse and check a model together with spec files (raises DiagnosticError)."""
    modules = load([model] + list(specs))
    return check(modules, model)


def check_expectations(program: P.Program, names: list[str]) -> None:
    bad = [Diagnostic("E502", f"expectation for unknown property '{e.prop}' of model '{e.model}'", e.span)
           for e in program.expectations if e.model == program.model_name and e.prop not in names]
    if bad:
        raise DiagnosticError(bad)


def build(program: P.Program, bounds: dict[str, int], scenario: P.Scenario | None = None
          ) -> tuple[System, StaticEdges]:
    system = lower(program, bounds_of(program, bounds), scenario)
    static = static_edges(system)
    if static.diagnostics:
        raise DiagnosticError(static.diagnostics)
    return system, static


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
    runs = []
    static = None
    for scenario in select_scenarios(program, config.scenario):
        system, static = build(program, config.bounds, scenario)
        runs.append(_Assembler(program, system, explore(system, config.explore), config))
    return _combine(program, runs, static, config, list(specs))


def _combine(program, runs: list["_Assembler"], static: StaticEdges, config, specs) -> VerifyResult:
    props = []
    for prop in program.properties:
        if prop.kind in ("invariant", "cover"):
            props.append(_merge([getattr(r, prop.kind)(prop) for r in runs]))
    props.append(_merge([r.deadlock() for r in runs]))
    props.append(_merge([r.defects() for r in runs]))
    edges = _union_edges(runs, static)
    for prop in program.properties:
        if prop.kind == "lockorder":
            props.append(runs[0].lockorder(prop, edges, runs))
    expect = {e.prop: e.verdict for e in program.expectations if e.model == program.model_name}
    for pr in props:
        pr.expected = expect.get(pr.name)
    total_states = sum(len(r.r.states) for r in runs)
    secs = sum(r.r.seconds for r in runs)
    limits = [r.r.limit for r in runs if r.r.limit]
    stats = Stats(total_states, sum(r.r.transitions for r in runs), max(r.r.max_depth_reached for r in runs),
                  secs, total_states / max(secs, 1e-9),
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, not limits,
                  limits[0] if limits else None, config.explore.symmetry, config.explore.reduction)
    first = runs[0].sys
    if config.bmc_depth > 0:
        _cross_check(props, runs, config)
    if config.induction:
        _add_induction(program, props, first, config)
    return VerifyResult(program.model_name, program.path, specs, dict(first.sizes.n),
                        {r.sys.scenario: [t.name for t in r.sys.threads] for r in runs}, props, edges, stats)


def _cross_check(props: list[PropertyResult], runs: list["_Assembler"], config) -> None:
    """BMC of each scenario's system; a disagreement with a complete search is an internal error."""
    by_name = {p.name: p for p in props}
    exact = not config.explore.reduction  # the reduction merges steps: depths compare only without it
    for run in runs:
        try:
            found = bmc(run.sys, config.bmc_depth, config.smt_timeout)
        except NotTranslatable as err:
            for p in props:
                if p.kind in ("invariant", "cover"):
                    p.notes.append(f"BMC cross-check: {err}")
            return
        depth = {**{k: run.r.depth[v] for k, v in run.r.invariant_violations.items()},
                 **{k: run.r.depth[v] for k, v in run.r.covers_reached.items()}}
        for name, pr in by_name.items():
            if pr.kind not in ("invariant", "cover"):
                continue
            hit = found.violations.get(name, found.reached.get(name))
            word = "violated" if pr.kind == "invariant" else "reached"
            where = f"scenario {run.sys.scenario}: " if len(runs) > 1 else ""
            if found.unknown:
                pr.notes.append(f"BMC cross-check: {where}{found.unknown}")
                continue
            pr.notes.append(f"BMC cross-check (Z3, every interleaving): {where}"
                            + (f"{word} at depth {hit}" if hit is not None else
                               f"none up to depth {found.depth}"))
            mine = depth.get(name)
            if hit is not None and mine is None and run.r.complete:
                raise InternalError(f"BMC finds {name} {word} at depth {hit}, the complete search does not")
            if exact and mine is not None and mine <= found.depth and hit != mine:
                raise InternalError(f"BMC and the explorer disagree on {name}: depth {hit} vs {mine}")


def _add_induction(program: P.Program, props: list[PropertyResult], system: System, config) -> None:
    """Attach Z3's every-size result to each invariant. Where the proofs carry over to the
    interleavings (see atomic_is_exact), a proof makes the verdict `proved`."""
    found = prove_invariants(program, config.smt_timeout)
    proved = [p for p in program.properties if p.name in found and found[p.name].status == "proved"]
    exact = atomic_is_exact(system, proved)
    for pr in props:
        ind = found.get(pr.name)
        if pr.kind != "invariant" or ind is None:
            continue
        pr.induction = ind
        if not exact or ind.status != "proved":
            continue
        if pr.verdict == "violated":
            raise InternalError(f"Z3 proved invariant {pr.name} inductive, but the explorer reached a "
                                "violation of it in the same (atomic) system")
        if pr.verdict == "holds":
            pr.verdict = "proved"
            pr.method = "Z3 induction (every size); " + pr.method
            pr.message = f"{ind.message}; {pr.message}"


def _merge(results: list[PropertyResult]) -> PropertyResult:
    """One verdict from the scenarios' verdicts on the same property."""
    if len(results) == 1:
        return results[0]
    for verdict in ("violated", "reached"):
        found = [r for r in results if r.verdict == verdict]
        if found:
            return min(found, key=lambda r: len(r.trace.steps) if r.trace else 0)
    unknown = [r for r in results if r.verdict == "unknown"]
    if unknown:
        return unknown[0]
    first = results[0]
    names = ", ".join(r.scenario for r in results if r.scenario)
    message = {"invariant": "holds in every reachable state of every scenario",
               "cover": "no reachable state of any scenario satisfies it"}.get(first.kind, first.message)
    return PropertyResult(first.name, first.kind, first.verdict,
                          first.method.split(", scenario ")[0] + f", scenarios {names}", message, first.span)


def _union_edges(runs, static: StaticEdges) -> list[LockEdge]:
    """Every static edge and every edge reached in some scenario, with the sites that took it."""
    d = runs[0].d
    names = [info.cls.name for info in runs[0].sys.locks]
    reached: dict[tuple[int, int], tuple[int, int]] = {}
    for r in runs:
        for key, (sa, sb, _) in r.r.edges.items():
            reached.setdefault(key, (sa, sb))
    out = []
    for a, b in sorted(set(reached) | set(static.edges)):
        sa, sb = reached.get((a, b)) or static.edges[(a, b)]
        out.append(LockEdge(names[a], names[b], d.site(sa), d.site(sb), (a, b) in reached,
                            (a, b) in static.edges, (a, b) in static.read))
    return out


class _Assembler:
    """Verdicts of one scenario's exploration."""

    def __init__(self, program, system, result: ExploreResult, config: VerifyConfig):
        self.p = program
        self.sys = system
        self.r = result
        self.cfg = config
        self.d = Describer(system)
        bounds = ", ".join(f"{k}={v}" for k, v in system.sizes.n.items())
        sym = "symmetry on" if result.canon else "symmetry off"
        self.method = f"explicit-state ({bounds}; {sym}), scenario {system.scenario}"

    # ---- state properties ------------------------------------------------------

    def result(self, *args, **kw) -> PropertyResult:
        return PropertyResult(*args, scenario=self.sys.scenario, **kw)

    def unknown(self, name, kind, span, what) -> PropertyResult:
        return self.result(name, kind, "unknown", self.method,
                           f"{what}; search stopped early ({self.r.limit}) after {len(self.r.states)} states "
                           f"of scenario {self.sys.scenario}", span)

    def trace_to(self, idx: int):
        return self.d.trace(replay(self.r, idx))

    def invariant(self, prop: P.Property) -> PropertyResult:
        idx = self.r.invariant_violations.get(prop.name)
        if idx is not None:
            return self.result(prop.name, "invariant", "violated", self.method,
                                  f"violated after {self.r.depth[idx]} steps", prop.span, self.trace_to(idx))
        if not self.r.complete:
            return self.unknown(prop.name, "invariant", prop.span, "no violation found")
        return self.result(prop.name, "invariant", "holds", self.method,
                              f"holds in all {len(self.r.states)} reachable states of scenario {self.sys.scenario}", prop.span)

    def cover(self, prop: P.Property) -> PropertyResult:
        idx = self.r.covers_reached.get(prop.name)
        if idx is not None:
            return self.result(prop.name, "cover", "reached", self.method,
                                  f"reached after {self.r.depth[idx]} steps", prop.span, self.trace_to(idx))
        if not self.r.complete:
            return self.unknown(prop.name, "cover", prop.span, "not reached")
        return self.result(prop.name, "cover", "unreachable", self.method,
                              f"no reachable state satisfies it ({len(self.r.states)} states)", prop.span)

    def failing_trace(self, prop: str):
        idx, rec = self.r.defects[prop]
        steps = replay(self.r, idx)
        state = final_state(self.r, steps)
        o = concrete_failure(self.r, state, rec)
        return self.d.trace(steps, (state, o)), o

    def defects(self) -> PropertyResult:
        if "defects" in self.r.defects:
            trace, o = self.failing_trace("defects")
            return self.result("defects", "defects", "violated", self.method,
                                  f"{o.defect.kind}: {o.defect.message}", o.defect.span, trace)
        if not self.r.complete:
            return self.unknown("defects", "defects", None, "no model defect found")
        return self.result("defects", "defects", "holds", self.method,
                              "no release of an unheld lock, lock held at return, unguarded access, "
                              "null lock instance or failed assert")

    def deadlock(self) -> PropertyResult:
        stuck = self.r.deadlock
        selfd = self.r.defects.get("deadlock")
        if stuck is not None and (selfd is None or self.r.depth[stuck[0]] <= self.r.depth[selfd[0]]):
            idx, mask = stuck
            steps = replay(self.r, idx)
            trace = self.d.trace(steps)
            state = final_state(self.r, steps)
            names = []
            for t in range(len(self.sys.threads)):
                if mask >> t & 1:
                    names.append(self.sys.threads[t].name)
                    trace.final.append(f"{self.sys.threads[t].name} waits forever: "
                                       f"{self.r.semantics.blocked_on(state, t)}")
            total = all(mask >> t & 1 or state[2][t][0] < 0 for t in range(len(self.sys.threads)))
            kind = "deadlock" if len(names) > 1 else "stuck thread"
            msg = f"{kind} after {len(steps)} steps: {', '.join(names)} can never move again"
            if not total:
                msg += " (other threads still run)"
            return self.result("deadlock", "deadlock", "violated", self.method, msg, None, trace)
        if selfd is not None:
            trace, o = self.failing_trace("deadlock")
            return self.result("deadlock", "deadlock", "violated", self.method,
                                  f"self-deadlock: {o.defect.message}", o.defect.span, trace)
        if not self.r.complete:
            return self.unknown("deadlock", "deadlock", None, "no deadlock found")
        return self.result("deadlock", "deadlock", "holds", self.method,
                              "every busy thread can always move again (no partial or global deadlock)")

    # ---- lock order ------------------------------------------------------------

    def lockorder(self, prop: P.Property, edges: list[LockEdge], runs: list["_Assembler"]) -> PropertyResult:
        names = [info.cls.name for info in self.sys.locks]
        ids = {n: i for i, n in enumerate(names)}
        reached = {(ids[e.src], ids[e.dst]) for e in edges if e.reached}
        static = {(ids[e.src], ids[e.dst]) for e in edges if e.static}
        by_key = {(ids[e.src], ids[e.dst]): e for e in edges}
        classes = list(range(len(names)))
        timeout = int(self.cfg.smt_timeout * 1000)
        hier = [ids[c.name] for c in prop.hierarchy] if prop.hierarchy is not None else None
        deadlock_note = _deadlock_note(runs)
        complete = all(r.r.complete for r in runs)
        method = self.method.split(", scenario ")[0] + ", scenarios " + ", ".join(r.sys.scenario for r in runs)
        proof = prove_order(classes, reached, timeout)
        if proof.status == "unsat":
            cycle = proof.cycle or shortest_cycle(reached)
            cyc_edges = [by_key[(cycle[i], cycle[(i + 1) % len(cycle)])] for i in range(len(cycle))]
            chain = " -> ".join([names[c] for c in cycle] + [names[cycle[0]]])
            return PropertyResult(prop.name, "lockorder", "violated", "z3 unsat core over reached edges",
                                  f"circular lock dependency: {chain}", prop.span, cycle=cyc_edges,
                                  notes=[deadlock_note])
        if hier is not None:
            bad = hierarchy_violations(reached, hier)
            if bad:
                e = by_key[bad[0]]
                order = " < ".join(names[c] for c in hier)
                return PropertyResult(prop.name, "lockorder", "violated", method,
                                      f"{e.src} -> {e.dst} contradicts the declared order {order}",
                                      prop.span, cycle=[e])
        static_proof = prove_order(classes, static, timeout)
        static_ok = static_proof.status == "sat"
        if static_ok and hier is not None:
            static_ok = not hierarchy_violations(static, hier)
        if static_ok:
            order = static_proof.order
            if hier is not None:
                order = _merge_order(order, hier, static)
            return PropertyResult(prop.name, "lockorder", "proved",
                                  "z3 rank certificate over every static acquisition path (all sizes)",
                                  "every path of every operation respects one total order",
                                  prop.span, certificate=[names[c] for c in order])
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
            return PropertyResult(prop.name, "lockorder", "unknown", method,
                                  "no cycle among reached edges, but a search stopped early", prop.span, notes=notes)
        order = proof.order
        return PropertyResult(prop.name, "lockorder", "holds", method,
                              "the reached edges respect one total order", prop.span,
                              certificate=[names[c] for c in order] if order else None, notes=notes)



def _deadlock_note(runs) -> str:
    if any(r.r.deadlock is not None or "deadlock" in r.r.defects for r in runs):
        return "a reachable deadlock was also found: see property 'deadlock'"
    if all(r.r.complete for r in runs):
        return "no reachable deadlock within the bounds"
    return "no reachable deadlock found before the search stopped"


def _merge_order(order: list[int], hier: list[int], edges: set[tuple[int, int]]) -> list[int]:
    chain = {(hier[i], hier[i + 1]) for i in range(len(hier) - 1)}
    return topological_order(order, edges | chain) or order

