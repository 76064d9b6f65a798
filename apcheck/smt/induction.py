"""Invariants for every size: induction over the operations taken atomically, with Z3.

Each invariant I is checked in the initial state and for inductiveness: the
invariants still believed, and one operation with any arguments, imply I
afterwards. An invariant that fails either check is dropped and the others
are checked again without it (the Houdini fixpoint), so every invariant left
is proved together with the others it relied on; auxiliary invariants
declared in a spec serve only to strengthen that hypothesis. A failure is a
counterexample to induction (CTI): a small concrete state and the operation
and arguments that break the invariant. Every CTI is replayed through the
explorer's concrete semantics before it is reported; a mismatch is an
internal error, never a verdict.

A loop whose iterations depend on each other is cut at its head
(smt/symbolic.py): there the loop invariant holds, which is every invariant
still believed together with the spec's `loop invariant`s of that loop (kept
by the same fixpoint; each is checked at the loop's entry and after an
iteration, from a head where they all hold). A CTI that lies inside such a
loop, or after it, is mid-operation or over-approximated: it is reported as a
CTI of the loop invariant, not replayed.

What is proved is the system in which each operation runs atomically. For a
model whose operations have no scheduling points that system is the
explorer's; otherwise the explorer's bounded search of all interleavings
remains the verdict and the proof says what holds for every size.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import z3

from apcheck.diagnostics import InternalError, line_of
from apcheck.explore.atomic import alone, run_atomically
from apcheck.explore.system import System, instantiate
from apcheck.explore.trace import Describer
from apcheck.ir import program as P
from apcheck.ir.lowered import SCHED, Lowered
from apcheck.ir.program import globals_read, globals_written
from apcheck.ir.types import Type
from apcheck.results import Cti, InductionResult
from apcheck.smt.symbolic import Check, Cut, Executor, NotTranslatable, Universe, initial_state, model_value


@dataclass
class _Op:
    proc: P.Proc
    pre_assumptions: list = field(default_factory=list)
    post: dict = field(default_factory=dict)
    params: list = field(default_factory=list)
    error: NotTranslatable | None = None
    writes: set = field(default_factory=set)
    solver: z3.Solver | None = None
    cuts: list[Cut] = field(default_factory=list)       # loop heads where the loop invariant is assumed
    checks: list[Check] = field(default_factory=list)   # points where it must hold
    at: dict = field(default_factory=dict)              # (fact name, id of a cut or check; None: after) -> formula


def operations(program: P.Program) -> list[str]:
    """The operations some thread of the whole system runs (a scenario's are among them)."""
    names: list[str] = []
    for t in program.system.threads:
        names += [o for o in t.ops if o not in names]
    return names


def atomic_is_exact(lowered: Lowered, proved: list[P.Property]) -> bool:
    """Do the proofs of `proved` (jointly inductive over atomic operations) hold for the explored
    interleavings too? Yes when no operation with a scheduling point writes a state variable that
    one of them reads: every step of the interleaved system is then either a whole atomic
    operation, covered by the proof, or a step that leaves what they read unchanged."""
    program = lowered.program
    reads: set[P.Var] = set()
    for prop in proved:
        reads |= globals_read(prop.expr)
    sched_ops = {lowered.ops[lowered.op_of_pc[pc]].name for pc, ins in enumerate(lowered.code) if ins.kind in SCHED}
    for name in sched_ops:
        if globals_written(program.procs, name) & reads:
            return False
    return True


def prove_invariants(lowered: Lowered, timeout_s: float = 10.0) -> dict[str, InductionResult]:
    """Z3's induction result for every invariant of the program (counterexamples replayed concretely
    on the lowered program at the counterexample's sizes)."""
    return _Induction(lowered, int(timeout_s * 1000)).run()


class _Induction:
    def __init__(self, lowered: Lowered, timeout_ms: int):
        self.lowered = lowered
        self.p = lowered.program
        self.timeout = timeout_ms
        self.u = Universe(self.p)
        self.pre = {v: z3.Const(v.name, self.u.sort_of(v.type, v.span)) for v in self.p.vars}
        self.background = [z3.Exists([x], self.u.real(s, x)) for s in self.p.sorts
                           for x in self.u.bound([s])]
        self.results: dict[str, InductionResult] = {}

    # ---- translation -------------------------------------------------------------

    def formula(self, e: P.Expr, state: dict) -> z3.BoolRef:
        ex = Executor(self.u, state)
        ex.cut_nulls = False
        return ex.boolean(e)

    def translate_op(self, name: str) -> _Op:
        proc = self.p.procs[name]
        op = _Op(proc, writes=globals_written(self.p.procs, name))
        ex = Executor(self.u, self.pre)
        ex.cut_loops = True
        try:
            ex.run_op(proc, self.p.procs)
        except NotTranslatable as err:
            op.error = err
            return op
        op.pre_assumptions = ex.assumptions
        op.cuts, op.checks = ex.cuts, ex.checks
        op.post = ex.state
        op.params = ex.choices[:len(proc.params)]  # run_op records the arguments first
        return op

    # ---- the fixpoint --------------------------------------------------------------

    def run(self) -> dict[str, InductionResult]:
        invs = [p for p in self.p.properties if p.kind == "invariant" and p.expr is not None]
        if not invs:
            return {}
        try:
            init = initial_state(self.u, self.p)
        except NotTranslatable as err:
            return {p.name: InductionResult(status="untranslatable", message=f"initial state {err}") for p in invs}
        ops = [self.translate_op(n) for n in operations(self.p)]
        now, then = {}, {}
        for prop in invs:
            try:
                now[prop.name] = self.formula(prop.expr, self.pre)
                then[prop.name] = self.formula(prop.expr, init)
            except NotTranslatable as err:
                self.results[prop.name] = InductionResult(status="untranslatable", message=str(err))
                continue
            reads = globals_read(prop.expr)
            for op in ops:
                if op.error is not None and op.writes & reads:
                    self.results[prop.name] = InductionResult(
                        status="untranslatable", message=f"operation {op.proc.name}: {op.error}")
                    break
        alive = [p for p in invs if p.name not in self.results]
        for prop in list(alive):
            if not self.initially(prop, then[prop.name]):
                alive.remove(prop)
        by_name = {p.name: p for p in invs}
        good = [op for op in ops if op.error is None]
        for op in good:
            op.solver = self._op_solver(op)
        heads = {id(c.loop): c.loop for op in good for c in op.cuts}
        facts = [_Fact(p, None) for p in alive]
        for loop in heads.values():  # at a loop head: the invariants that hold there, and its own
            facts += [_Fact(p, loop) for p in alive if not p.between]  # mid-operation: no between
            facts += [_Fact(li, loop) for li in self.p.loop_invariants if li.loop is loop]
        for li in self.p.loop_invariants:
            if id(li.loop) not in heads:
                self.results[li.name] = InductionResult(
                    status="unused", message=f"with each operation atomic, the loop at "
                    f"{line_of(li.loop.span, self.p.path)} is not cut (its iterations are independent, or no "
                    "operation runs it); for any number of threads, the induction over the interleaved steps "
                    "uses it if a step ends at the loop's head")
        changed = True
        while changed:  # Houdini: drop each fact an operation breaks, at once, until none is dropped
            changed = False
            for fact in list(facts):
                if fact in facts and not all(self.preserved(fact, op, facts, now, by_name) for op in good):
                    # an invariant that is not one between operations is no loop invariant either
                    gone = [f for f in facts if f.item is fact.item] if fact.loop is None else [fact]
                    facts[:] = [f for f in facts if f not in gone]
                    changed = True
        alive = [f.item for f in facts if f.loop is None]
        loops = [f.item for f in facts if isinstance(f.item, P.LoopInvariant)]
        for li in loops:
            self.results[li.name] = InductionResult(
                status="proved", message=f"holds at every head of the loop at {line_of(li.loop.span, self.p.path)} "
                f"(each operation atomic, every size)", hypothesis=[f.name for f in alive + loops])
        names = [p.name for p in alive] + [li.name for li in loops]
        scope = "each operation atomic, every size"
        for prop in alive:
            others = [n for n in names if n != prop.name]
            with_ = f", together with {', '.join(others)}" if others else ""
            self.results[prop.name] = InductionResult(
                status="proved", message=f"inductive ({scope}){with_}", hypothesis=names)
        return self.results

    def _solver(self) -> z3.Solver:
        s = z3.Solver()
        s.set("timeout", self.timeout)
        s.add(self.background)
        return s

    def _op_solver(self, op: _Op) -> z3.Solver:
        s = self._solver()
        s.add([self.u.wf(v.type, self.pre[v]) for v in self.p.vars])
        if not op.checks:
            s.add(op.pre_assumptions)
        return s

    def initially(self, prop: P.Property, holds_initially: z3.BoolRef) -> bool:
        s = self._solver()
        s.add(z3.Not(holds_initially))
        res = s.check()
        if res == z3.unsat:
            return True
        if res == z3.unknown:
            self.results[prop.name] = InductionResult(status="unknown", message="Z3 gave up on the initial "
                                                                 f"state: {s.reason_unknown()}")
            return False
        cti = self.replay_initial(prop, self.smallest_model(s))
        self.results[prop.name] = InductionResult(
            status="refuted", message=f"false in the initial state ({_sizes_text(cti.sizes)})", cti=cti)
        return False

    def at(self, op: _Op, fact: P.Property | P.LoopInvariant, point: Cut | Check | None) -> z3.BoolRef:
        """The fact's formula at a cut or check of the operation, or (None) after it (cached)."""
        key = (fact.name, id(point))
        if key not in op.at:
            if point is None:
                op.at[key] = self.formula(fact.expr, op.post)
            elif isinstance(fact, P.Property):
                op.at[key] = self.formula(fact.expr, point.state)
            else:
                ex = Executor(self.u, point.state)
                ex.cut_nulls = False
                ex.frame.env = dict(point.env)
                ex.frame.env[fact.done] = point.done
                op.at[key] = ex.boolean(fact.expr)
        return op.at[key]

    def preserved(self, fact: "_Fact", op: _Op, facts: list["_Fact"], now: dict, by_name: dict) -> bool:
        """Does the operation keep the fact, from a state where the facts at the operation's start
        hold? A fact at a loop's head is checked at the loop's entry and after an iteration, from
        heads where the facts there hold; a fact at the operation's boundary, after it (symbolic.py
        cuts the loops)."""
        def holds_at(point) -> list:
            return [self.at(op, f.item, point) for f in facts if f.loop is point.loop]
        mine = [c for c in op.checks if c.loop is fact.loop]
        if fact.loop is not None and not mine:
            return True
        name = fact.item.name
        try:
            cuts = [z3.Implies(c.guard, z3.And(holds_at(c))) for c in op.cuts]
            checks = [(c, self.at(op, fact.item, c)) for c in mine]
            post = self.at(op, fact.item, None) if fact.loop is None else None
        except NotTranslatable as err:
            self.results[name] = InductionResult(status="untranslatable", message=str(err))
            return False
        hyp = [f.item.name for f in facts if f.loop is None]
        holds = "the invariants hold" if len(hyp) > 1 else "it holds"
        s = op.solver
        s.push()
        try:
            s.add([now[n] for n in hyp])
            for check, formula in checks:  # what comes before the check is assumed there
                s.push()
                if op.checks:
                    s.add(op.pre_assumptions[:check.assumptions])
                s.add(cuts[:check.cuts])
                s.add(check.guard, z3.Not(formula))
                res = s.check()
                if res != z3.unsat:
                    if isinstance(fact.item, P.LoopInvariant):
                        self.results[name] = self._loop_cti(op, check, s, res, hyp)
                    s.pop()
                    return False
                s.pop()
            if post is None:
                return True
            if op.checks:
                s.add(op.pre_assumptions)
            s.add(cuts)
            s.add(z3.Not(post))
            res = s.check()
            if res == z3.unsat:
                return True
            if res == z3.unknown:
                self.results[name] = InductionResult(
                    status="unknown", message=f"Z3 gave up on {op.proc.name}: {s.reason_unknown()}", hypothesis=hyp)
                return False
            model = self.smallest_model(s)
            cti = self.replay_step(fact.item, op, model, [by_name[n] for n in hyp], exact=not op.cuts)
            if cti is None:
                self.results[name] = InductionResult(
                    status="cti", message=f"not inductive: {self._call(op, model)} breaks it from a state where "
                    f"{holds}, going on after {self._loops(op)} from a loop-head state where the loop has "
                    f"taken every element and its loop invariant holds (not replayed: the loop is taken "
                    f"through its loop invariant) ({_sizes_text(self.concrete(model).sizes)})", hypothesis=hyp)
                return False
        finally:
            s.pop()
        args = ", ".join(f"{n}={v}" for n, v in cti.args)
        self.results[name] = InductionResult(
            status="cti", message=f"not inductive: {op.proc.name}({args}) breaks it from a state where "
                                  f"{holds} ({_sizes_text(cti.sizes)})",
            cti=cti, hypothesis=hyp)
        return False

    def _loop_cti(self, op: _Op, check: Check, s: z3.Solver, res, hyp: list[str]) -> InductionResult:
        """The result for a loop invariant false at its loop's entry or after an iteration (a CTI
        mid-operation: not replayed)."""
        line = line_of(check.loop.span, self.p.path)
        if res == z3.unknown:
            return InductionResult(status="unknown", message=f"Z3 gave up on the loop at {line} of "
                                   f"{op.proc.name}: {s.reason_unknown()}", hypothesis=hyp)
        model = self.smallest_model(s)
        call = self._call(op, model)
        what = (f"it is false where {call} enters the loop at {line}, from a state where the invariants "
                "hold" if check.what == "entry" else
                f"an iteration of the loop at {line} in {call} breaks it, from a head of the loop where its "
                "loop invariant holds")
        return InductionResult(
            status="cti", message=f"not inductive: {what} (not replayed: it lies mid-operation) "
            f"({_sizes_text(self.concrete(model).sizes)})", hypothesis=hyp)

    def _call(self, op: _Op, model: z3.ModelRef) -> str:
        c = self.concrete(model)
        d = Describer(alone(self.lowered, c.sizes, self._op_id(op)))
        args = [f"{prm.name}={d.value(prm.type, c.value(prm.type, ch.term))}"
                for prm, ch in zip(op.proc.params, op.params)]
        return f"{op.proc.name}({', '.join(args)})"

    def _op_id(self, op: _Op) -> int:
        return next(i for i, o in enumerate(self.lowered.ops) if o.name == op.proc.name)

    @staticmethod
    def _loops(op: _Op) -> str:
        lines = sorted({c.loop.span.line for c in op.cuts})
        return f"the loop{'s' if len(lines) > 1 else ''} at line{'s' if len(lines) > 1 else ''} " + \
            ", ".join(map(str, lines))

    # ---- counterexamples, replayed concretely -------------------------------------------

    def smallest_model(self, s: z3.Solver) -> z3.ModelRef:
        """A model of the satisfiable solver with each sort as small as Z3 allows, one sort at a time
        (smallest size first; a sort where Z3 gives up keeps the size it has, and the search stops
        after twice --smt-timeout: the counterexample is as valid, only larger)."""
        model = s.model()
        depth = 0
        deadline = time.monotonic() + 2 * self.timeout / 1000
        for name, sort in self.u.sorts.items():
            have = len(_Concrete(self.u, model, self.p).elems[name])
            for k in range(1, have):
                if time.monotonic() > deadline:
                    break
                s.push()
                elems = [z3.Const(f"{name}_{i}!{k}", sort) for i in range(k)]
                x = self.u.bound([name])[0]
                s.add(z3.ForAll([x], z3.Or([x == self.u.null[name]] + [x == e for e in elems])))
                res = s.check()
                if res == z3.sat:
                    model, depth = s.model(), depth + 1
                    break
                s.pop()
                if res == z3.unknown:
                    break
        for _ in range(depth):
            s.pop()
        return model

    def concrete(self, model: z3.ModelRef) -> "_Concrete":
        return _Concrete(self.u, model, self.p)

    def replay_initial(self, prop: P.Property, model: z3.ModelRef) -> Cti:
        c = self.concrete(model)
        system = instantiate(self.lowered, c.sizes, [], "initial state")
        fn = _property_fn(system, prop)
        if fn(system.init_globals, _scratch(system)):
            raise InternalError(f"Z3 says invariant {prop.name} is false in the initial state with "
                                f"{_sizes_text(c.sizes)}, but the concrete initial state satisfies it")
        d = Describer(system)
        return Cti(op=None, args=[], sizes=c.sizes, state=_visible(d, system.init_globals, globals_read(prop.expr)),
                   globals=system.init_globals)

    def replay_step(self, prop: P.Property, op: _Op, model: z3.ModelRef, hyp: list[P.Property],
                    exact: bool = True) -> Cti | None:
        """The CTI in concrete values, replayed. `exact` False: the translation over-approximates the
        operation (a cut loop), and a CTI that does not replay is None rather than an internal error."""
        c = self.concrete(model)
        op_id = self._op_id(op)
        system = alone(self.lowered, c.sizes, op_id)
        g = tuple(c.value(v.type, self.pre[v]) for v in self.p.vars)
        args = tuple(c.value(prm.type, ch.term)
                     for prm, ch in zip(op.proc.params, op.params))
        scratch = _scratch(system)
        for h in hyp:
            if not _property_fn(system, h)(g, scratch):
                raise InternalError(f"Z3's counterexample to induction of {prop.name} does not replay: "
                                    f"its state violates {h.name}, which Z3 assumed")
        finals, complete = run_atomically(system, op_id, args, g)
        fn = _property_fn(system, prop)
        bad = [f for f in finals if not fn(f, scratch)]
        d = Describer(system)
        arg_text = [(prm.name, d.value(prm.type, a)) for prm, a in zip(op.proc.params, args)]
        if not bad and not exact:
            return None
        if not bad:
            what = "no path" if complete else "none of the paths tried"
            raise InternalError(f"Z3's counterexample to induction of {prop.name} does not replay: "
                                f"{what} of {op.proc.name}({', '.join(f'{n}={v}' for n, v in arg_text)}) "
                                f"breaks it in the concrete semantics ({_sizes_text(c.sizes)})")
        reads = set().union(*(globals_read(h.expr) for h in hyp)) | op.writes
        return Cti(op=op.proc.name, args=arg_text, sizes=c.sizes, state=_visible(d, g, reads),
                   changes=d.changes(g, bad[0]), globals=g)


@dataclass(eq=False)
class _Fact:
    """A candidate of the fixpoint: an invariant at the operations' boundaries (loop None), or an
    invariant or loop invariant at the head of a cut loop."""

    item: P.Property | P.LoopInvariant
    loop: P.SFor | None


class _Concrete:
    """Z3 model values in the explorer's encoding, at the sizes of the model's universes."""

    def __init__(self, uni: Universe, model: z3.ModelRef, program: P.Program):
        self.m = model
        self.elems: dict[str, list] = {}
        for name, sort in uni.sorts.items():
            null = model.eval(uni.null[name], model_completion=True)
            univ = model.get_universe(sort) or []
            self.elems[name] = [u for u in univ if not z3.eq(u, null)] or [None]
        self.sizes = {n: len(e) for n, e in self.elems.items()}

    def value(self, t: Type, term) -> object:
        return model_value(t, term, self.m, self.elems)


def _property_fn(system: System, prop: P.Property):
    for p, fn, _ in system.invariants:
        if p.name == prop.name:
            return fn
    raise KeyError(prop.name)  # pragma: no cover


def _scratch(system: System) -> list:
    return [0] * max(system.scratch, 1)


def _visible(d: Describer, g: tuple, reads: set) -> list[tuple[str, str]]:
    return [(name, text) for name, text in d.globals_text(g)
            if any(v.name == name for v in reads)]


def _sizes_text(sizes: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items())
