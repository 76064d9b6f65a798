"""One verification run: load and check, lower, explore, prove, assemble verdicts.

The only module that knows every back end; it returns a VerifyResult and
prints nothing.
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field

from apcheck.diagnostics import Diagnostic, DiagnosticError
from apcheck.explore.engine import ExploreConfig, ExploreResult, explore
from apcheck.explore.trace import Describer, concrete_failure, final_state, replay
from apcheck.ir import program as P
from apcheck.ir.lower import bounds_of, lower
from apcheck.ir.system import System
from apcheck.lang.check import BUILTIN_PROPERTIES, check
from apcheck.lang.loader import load
from apcheck.locks.graph import hierarchy_violations, shortest_cycle
from apcheck.locks.static import StaticEdges, static_edges
from apcheck.results import LockEdge, PropertyResult, Stats, VerifyResult
from apcheck.smt.lockorder import prove_order


@dataclass(frozen=True)
class VerifyConfig:
    bounds: dict[str, int] = field(default_factory=dict)
    explore: ExploreConfig = ExploreConfig()
    smt_timeout: float = 10.0


def load_program(model: str, specs: list[str] = ()) -> P.Program:
    """Parse and check a model together with spec files (raises DiagnosticError)."""
    modules = load([model] + list(specs))
    return check(modules, model)


def check_expectations(program: P.Program, names: list[str]) -> None:
    bad = [Diagnostic("E502", f"expectation for unknown property '{e.prop}' of model '{e.model}'", e.span)
           for e in program.expectations if e.model == program.model_name and e.prop not in names]
    if bad:
        raise DiagnosticError(bad)


def build(program: P.Program, bounds: dict[str, int]) -> tuple[System, StaticEdges]:
    system = lower(program, bounds_of(program, bounds))
    static = static_edges(system)
    if static.diagnostics:
        raise DiagnosticError(static.diagnostics)
    return system, static


def verify(program: P.Program, config: VerifyConfig = VerifyConfig(), specs: list[str] = ()) -> VerifyResult:
    names = [p.name for p in program.properties] + list(BUILTIN_PROPERTIES)
    check_expectations(program, names)
    system, static = build(program, config.bounds)
    result = explore(system, config.explore)
    return _Assembler(program, system, static, result, config).run(list(specs))


class _Assembler:
    def __init__(self, program, system, static, result: ExploreResult, config: VerifyConfig):
        self.p = program
        self.sys = system
        self.static = static
        self.r = result
        self.cfg = config
        self.d = Describer(system)
        bounds = ", ".join(f"{k}={v}" for k, v in system.sizes.n.items())
        sym = "symmetry on" if result.canon else "symmetry off"
        self.method = f"explicit-state ({bounds}; {len(system.threads)} threads; {sym})"
        self.expect = {e.prop: e.verdict for e in program.expectations if e.model == program.model_name}

    def run(self, specs: list[str]) -> VerifyResult:
        props = []
        for prop in self.p.properties:
            if prop.kind == "invariant":
                props.append(self.invariant(prop))
            elif prop.kind == "cover":
                props.append(self.cover(prop))
        props.append(self.deadlock())
        props.append(self.defects())
        edges = self.lock_edges()
        for prop in self.p.properties:
            if prop.kind == "lockorder":
                props.append(self.lockorder(prop, edges))
        for pr in props:
            pr.expected = self.expect.get(pr.name)
        r = self.r
        secs = max(r.seconds, 1e-9)
        stats = Stats(len(r.states), r.transitions, r.max_depth_reached, r.seconds, len(r.states) / secs,
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, r.complete, r.limit,
                      r.canon is not None)
        return VerifyResult(self.p.model_name, self.p.path, specs, dict(self.sys.sizes.n),
                            [t.name for t in self.sys.threads], props, edges, stats)

    # ---- state properties ------------------------------------------------------

    def unknown(self, name, kind, span, what) -> PropertyResult:
        return PropertyResult(name, kind, "unknown", self.method,
                              f"{what}; search stopped early ({self.r.limit}) after {len(self.r.states)} states",
                              span)

    def trace_to(self, idx: int):
        return self.d.trace(replay(self.r, idx))

    def invariant(self, prop: P.Property) -> PropertyResult:
        idx = self.r.invariant_violations.get(prop.name)
        if idx is not None:
            return PropertyResult(prop.name, "invariant", "violated", self.method,
                                  f"violated after {self.r.depth[idx]} steps", prop.span, self.trace_to(idx))
        if not self.r.complete:
            return self.unknown(prop.name, "invariant", prop.span, "no violation found")
        return PropertyResult(prop.name, "invariant", "holds", self.method,
                              f"holds in all {len(self.r.states)} reachable states", prop.span)

    def cover(self, prop: P.Property) -> PropertyResult:
        idx = self.r.covers_reached.get(prop.name)
        if idx is not None:
            return PropertyResult(prop.name, "cover", "reached", self.method,
                                  f"reached after {self.r.depth[idx]} steps", prop.span, self.trace_to(idx))
        if not self.r.complete:
            return self.unknown(prop.name, "cover", prop.span, "not reached")
        return PropertyResult(prop.name, "cover", "unreachable", self.method,
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
            return PropertyResult("defects", "defects", "violated", self.method,
                                  f"{o.defect.kind}: {o.defect.message}", o.defect.span, trace)
        if not self.r.complete:
            return self.unknown("defects", "defects", None, "no model defect found")
        return PropertyResult("defects", "defects", "holds", self.method,
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
            return PropertyResult("deadlock", "deadlock", "violated", self.method, msg, None, trace)
        if selfd is not None:
            trace, o = self.failing_trace("deadlock")
            return PropertyResult("deadlock", "deadlock", "violated", self.method,
                                  f"self-deadlock: {o.defect.message}", o.defect.span, trace)
        if not self.r.complete:
            return self.unknown("deadlock", "deadlock", None, "no deadlock found")
        return PropertyResult("deadlock", "deadlock", "holds", self.method,
                              "every busy thread can always move again (no partial or global deadlock)")

    # ---- lock order ------------------------------------------------------------

    def lock_edges(self) -> list[LockEdge]:
        names = [info.cls.name for info in self.sys.locks]
        out = []
        keys = sorted(set(self.r.edges) | set(self.static.edges))
        for a, b in keys:
            reached = (a, b) in self.r.edges
            sa, sb = self.r.edges[(a, b)][:2] if reached else self.static.edges[(a, b)]
            out.append(LockEdge(names[a], names[b], self.d.site(sa), self.d.site(sb), reached,
                                (a, b) in self.static.edges, (a, b) in self.static.read))
        return out

    def lockorder(self, prop: P.Property, edges: list[LockEdge]) -> PropertyResult:
        names = [info.cls.name for info in self.sys.locks]
        ids = {n: i for i, n in enumerate(names)}
        reached = {(ids[e.src], ids[e.dst]) for e in edges if e.reached}
        static = {(ids[e.src], ids[e.dst]) for e in edges if e.static}
        by_key = {(ids[e.src], ids[e.dst]): e for e in edges}
        classes = list(range(len(names)))
        timeout = int(self.cfg.smt_timeout * 1000)
        hier = [ids[c.name] for c in prop.hierarchy] if prop.hierarchy is not None else None
        deadlock_note = self.deadlock_note()
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
                return PropertyResult(prop.name, "lockorder", "violated", self.method,
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
        if not self.r.complete:
            return PropertyResult(prop.name, "lockorder", "unknown", self.method,
                                  f"no cycle among reached edges, but the search stopped early ({self.r.limit})",
                                  prop.span, notes=notes)
        order = proof.order
        return PropertyResult(prop.name, "lockorder", "holds", self.method,
                              "the reached edges respect one total order", prop.span,
                              certificate=[names[c] for c in order] if order else None, notes=notes)

    def deadlock_note(self) -> str:
        if self.r.deadlock is not None or "deadlock" in self.r.defects:
            return "a reachable deadlock was also found: see property 'deadlock'"
        if self.r.complete:
            return "no reachable deadlock within the bounds"
        return "no reachable deadlock found before the search stopped"


def _merge_order(order: list[int], hier: list[int], edges: set[tuple[int, int]]) -> list[int]:
    from apcheck.locks.graph import topological_order
    chain = {(hier[i], hier[i + 1]) for i in range(len(hier) - 1)}
    return topological_order(order, edges | chain) or order


def model_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]
