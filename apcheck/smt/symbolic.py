"""The checked program in Z3, for every size: state, expressions, and operations run atomically.

Each sort becomes an uninterpreted Z3 sort with a distinguished `null`
element that no set contains; sets and relations are arrays to Bool, maps
are arrays, enums and error codes are integers. An operation is executed
symbolically as one atomic transition: lock statements are no-ops (a lock
instance that is null cuts the path, as the explorer's defect does), waits,
asserts and null map keys are assumptions, a trylock may succeed or fail.

Loops over sets are translated when their iterations are independent: each
iteration writes every state variable only at entries indexed by the loop
variable, and reads a written variable only at those entries. The loop is
then one lambda update, exact for every iteration order. A loop whose body
always returns runs once, on an element chosen from the set. Anything else
raises NotTranslatable with the construct and its position: a proof is never
built from a translation that is neither exact nor an over-approximation.

A loop whose iterations depend on each other (they read what others write, or
write an entry not indexed by the loop variable) is cut where the executor
allows it (`cut_loops`, for induction): its head becomes a point where a loop
invariant holds. The executor records:
- a `Check` at the loop's entry (nothing taken yet);
- a `Cut` at a head state where every state variable and outer local the loop
  may write has a fresh value and `done`, the elements taken so far, is any
  set: the loop invariant is assumed there; then one iteration on any element
  of the set not in `done`, and a `Check` after it (`done` grown by it);
- a `Cut` at another such head state with every element taken, from which the
  operation goes on after the loop.
That covers every number of iterations in every order, so it is sound for any
loop invariant that the checks establish; what it loses is only what the loop
invariant does not say.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count, product

import z3

from apcheck.diagnostics import Span
from apcheck.ir import program as P
from apcheck.ir.types import BoolT, ElemT, EnumT, ErrT, IntT, MapT, NullT, SetT, TupleT, Type


class NotTranslatable(Exception):
    def __init__(self, span: Span | None, what: str):
        super().__init__(what)
        self.span = span
        self.what = what

    def __reduce__(self):
        return NotTranslatable, (self.span, self.what)

    def __str__(self) -> str:
        where = f"{self.span.file}:{self.span.line}: " if self.span is not None else ""
        return f"not translatable ({where}{self.what})"


class DependentLoop(NotTranslatable):
    """A loop whose iterations depend on each other: no lambda update is exact for it."""

    def __reduce__(self):
        return DependentLoop, (self.span, self.what)


@dataclass
class Cut:
    """A head of `loop` cut by the executor: its loop invariant is assumed where `guard` holds, in
    `state` with the locals `env` and the set `done` of the elements taken so far."""

    guard: z3.BoolRef
    state: dict
    env: dict
    done: z3.ExprRef
    loop: P.SFor


@dataclass
class Check:
    """A point where the loop invariant of `loop` must hold (`what`: entry | iteration). Only what
    comes before it may be assumed there: the first `assumptions` assumptions and `cuts` cuts the
    executor recorded (a later cut's loop invariant is not established yet)."""

    guard: z3.BoolRef
    state: dict
    env: dict
    done: z3.ExprRef
    loop: P.SFor
    what: str
    assumptions: int = 0
    cuts: int = 0


class Universe:
    """Z3 sorts for the program's sorts and types, and well-formedness of values."""

    def __init__(self, program: P.Program):
        self.p = program
        self.sorts = {n: z3.DeclareSort(n) for n in program.sorts}
        self.null = {n: z3.Const(f"null_{n}", s) for n, s in self.sorts.items()}
        self.names = count()  # per translation, so that Z3 sees the same names (and models) every run

    def sort_of(self, t: Type, span: Span | None = None) -> z3.SortRef:
        if isinstance(t, BoolT):
            return z3.BoolSort()
        if isinstance(t, (IntT, ErrT, EnumT)):
            return z3.IntSort()
        if isinstance(t, ElemT):
            return self.sorts[t.sort]
        if isinstance(t, SetT) and t.sorts is not None:
            return z3.ArraySort(*[self.sorts[s] for s in t.sorts], z3.BoolSort())
        if isinstance(t, MapT):
            return z3.ArraySort(*[self.sorts[s] for s in t.keys], self.sort_of(t.value, span))
        raise NotTranslatable(span, f"a value of type {t}")

    def fresh(self, name: str, t: Type | z3.SortRef) -> z3.ExprRef:
        sort = t if isinstance(t, z3.SortRef) else self.sort_of(t)
        return z3.Const(f"{name}!{next(self.names)}", sort)

    def bound(self, sorts) -> list[z3.ExprRef]:
        return [z3.Const(f"k{next(self.names)}", self.sorts[s]) for s in sorts]

    def real(self, sort: str, x: z3.ExprRef) -> z3.BoolRef:
        return x != self.null[sort]

    def wf(self, t: Type, v: z3.ExprRef) -> z3.BoolRef:
        """Values that the concrete encoding can represent."""
        if isinstance(t, ElemT):
            return z3.BoolVal(True) if t.optional else self.real(t.sort, v)
        if isinstance(t, EnumT):
            return z3.And(v >= 0, v < len(t.members))
        if isinstance(t, ErrT):
            return v <= 0
        if isinstance(t, SetT) and t.sorts is not None:
            xs = self.bound(t.sorts)
            some_null = z3.Or([x == self.null[s] for s, x in zip(t.sorts, xs)])
            return self.quantify("forall", xs, z3.Implies(some_null, z3.Not(z3.Select(v, *xs))))
        if isinstance(t, MapT):
            ks = self.bound(t.keys)
            inner = self.wf(t.value, z3.Select(v, *ks))
            if z3.is_true(inner):
                return inner
            return self.quantify("forall", ks, z3.Implies(z3.And([self.real(s, k) for s, k in zip(t.keys, ks)]), inner))
        return z3.BoolVal(True)

    def default(self, t: Type) -> z3.ExprRef:
        """The value of a state variable that has no initialiser (the explorer's `initial_value`)."""
        if isinstance(t, MapT):
            ks = self.bound(t.keys)
            return z3.Lambda(ks, self.default(t.value))
        if isinstance(t, ElemT):
            return self.null[t.sort]
        if isinstance(t, BoolT):
            return z3.BoolVal(False)
        if isinstance(t, SetT):
            return self.empty(t.sorts)
        return z3.IntVal(0)

    def quantify(self, kind: str, xs: list, body: z3.BoolRef) -> z3.BoolRef:
        return z3.ForAll(xs, body) if kind == "forall" else z3.Exists(xs, body)

    def set_equal(self, a: z3.ExprRef, b: z3.ExprRef, sorts) -> z3.BoolRef:
        """Two sets (arrays to Bool) are equal: element by element, through `quantify` (expanded
        over finite sorts, where Z3's array extensionality can leave it undecided)."""
        xs = self.bound(sorts)
        return self.quantify("forall", xs, z3.Select(a, *xs) == z3.Select(b, *xs))

    def card(self, value: z3.ExprRef, t: Type, span: Span) -> z3.ExprRef:
        raise NotTranslatable(span, "set cardinality (#) for every size")

    def empty(self, sorts) -> z3.ExprRef:
        return z3.Lambda(self.bound(sorts), z3.BoolVal(False))


def _as_bool(v: z3.ExprRef) -> z3.BoolRef:
    return v if z3.is_bool(v) else v != 0


@dataclass
class _Frame:
    """One procedure activation: its locals, whether it has returned, and its return value."""

    env: dict
    done: z3.BoolRef = field(default_factory=lambda: z3.BoolVal(False))
    ret: z3.ExprRef | None = None


@dataclass
class _Loop:
    var: z3.ExprRef
    span: Span
    outer_locals: set
    writes: list = field(default_factory=list)   # (var, index terms or None, span)
    reads: list = field(default_factory=list)    # (var, index terms or None, span)


@dataclass
class Choice:
    """A value the operation chose: an argument, a trylock outcome, a loop's chosen element."""

    name: str
    type: Type | None
    term: z3.ExprRef


class Executor:
    """Runs one operation symbolically from the pre-state `state` (Var -> term)."""

    def __init__(self, uni: Universe, state: dict):
        self.u = uni
        self.state = dict(state)
        self.assumptions: list[z3.BoolRef] = []
        self.choices: list[Choice] = []
        self.loops: list[_Loop] = []   # the loops being executed, outermost first; they record accesses
        self.frame = _Frame({})
        self.guard: z3.BoolRef = z3.BoolVal(True)
        self.procs: dict[str, P.Proc] = {}
        self.cut_nulls = True   # operations: a null index ends the path; properties: no assumptions
        self.binders = 0        # quantifiers being translated
        self.cut_loops = False  # cut dependent loops at their heads (induction) instead of failing
        self.cuts: list[Cut] = []
        self.checks: list[Check] = []

    # ---- expressions ---------------------------------------------------------

    def expr(self, e: P.Expr, want: Type | None = None) -> z3.ExprRef:
        method = getattr(self, "e_" + type(e).__name__, None)
        if method is None:  # pragma: no cover - every IR expression has a case
            raise NotTranslatable(e.span, type(e).__name__)
        return method(e, want)

    def boolean(self, e: P.Expr) -> z3.BoolRef:
        return _as_bool(self.expr(e))

    def e_Const(self, e: P.Const, want):
        t = e.type
        if isinstance(t, BoolT):
            return z3.BoolVal(bool(e.value))
        if isinstance(t, NullT):
            if isinstance(want, ElemT):
                return self.u.null[want.sort]
            raise NotTranslatable(e.span, "null where no element type is known")
        if isinstance(t, ElemT):
            raise NotTranslatable(e.span, "a constant element")
        return z3.IntVal(e.value)

    def e_GlobalRef(self, e: P.GlobalRef, want):
        self._read(e.var, None, e.span)
        return self.state[e.var]

    def e_LocalRef(self, e: P.LocalRef, want):
        if e.local not in self.frame.env:
            raise NotTranslatable(e.span, f"'{e.local.name}' read before it is set")
        return self.frame.env[e.local]

    def e_SortAll(self, e: P.SortAll, want):
        x = self.u.bound([e.sort])[0]
        return z3.Lambda([x], self.u.real(e.sort, x))

    def e_SetLiteral(self, e: P.SetLiteral, want):
        sorts = e.type.sorts if e.type.sorts is not None else (want.sorts if isinstance(want, SetT) else None)
        if sorts is None:
            raise NotTranslatable(e.span, "an empty set whose type is not known")
        xs = self.u.bound(sorts)
        alts = []
        for item in e.items:
            parts = self.tuple_terms(item)
            alts.append(z3.And([x == p for x, p in zip(xs, parts)]))
        return z3.Lambda(xs, z3.Or(alts) if alts else z3.BoolVal(False))

    def e_TupleLiteral(self, e: P.TupleLiteral, want):
        raise NotTranslatable(e.span, "a tuple outside a membership test")

    def tuple_terms(self, e: P.Expr) -> list[z3.ExprRef]:
        if isinstance(e, P.TupleLiteral):
            return [self.element(i) for i in e.items]
        if isinstance(e.type, TupleT):
            raise NotTranslatable(e.span, "a tuple-valued variable")
        return [self.element(e)]

    def element(self, e: P.Expr) -> z3.ExprRef:
        """An element used as an index: a null one cuts the path (the explorer reports a defect)."""
        v = self.expr(e)
        if isinstance(e.type, ElemT) and e.type.optional and self.cut_nulls:
            if self.binders:
                raise NotTranslatable(e.span, "an element that may be null used as an index inside a quantifier")
            self.assume(self.u.real(e.type.sort, v))
        return v

    def e_Op(self, e: P.Op, want):
        op = e.op
        if op == "!":
            return z3.Not(self.boolean(e.args[0]))
        if op == "#":
            return self.u.card(self.expr(e.args[0]), e.args[0].type, e.span)
        x, y = e.args
        if op in ("in", "notin"):
            parts = self.tuple_terms(x)
            if isinstance(y, P.GlobalRef):
                self._read(y.var, parts, y.span)
                base = self.state[y.var]
            else:
                base = self.expr(y)
            member = z3.Select(base, *parts)
            return member if op == "in" else z3.Not(member)
        if op in ("&&", "||", "==>"):
            a, b = self.boolean(x), self.boolean(y)
            return z3.And(a, b) if op == "&&" else z3.Or(a, b) if op == "||" else z3.Implies(a, b)
        if op in ("==", "!="):
            a, b = self.pair(x, y)
            if isinstance(x.type, MapT):
                raise NotTranslatable(e.span, "comparison of whole maps")
            sorts = x.type.sorts if isinstance(x.type, SetT) and x.type.sorts else \
                y.type.sorts if isinstance(y.type, SetT) and y.type.sorts else None
            eq = self.u.set_equal(a, b, sorts) if sorts else a == b
            return eq if op == "==" else z3.Not(eq)
        if op == "le":
            return self.expr(x) <= self.expr(y)
        sorts = e.type.sorts if isinstance(e.type, SetT) else None
        a, b = self.pair(x, y)
        if op == "<=":
            xs = self.u.bound(x.type.sorts if x.type.sorts is not None else y.type.sorts)
            return self.u.quantify("forall", xs, z3.Implies(z3.Select(a, *xs), z3.Select(b, *xs)))
        if op in ("+", "-", "&") and sorts is not None:
            return _set_op(op, a, b, self.u.bound(sorts))
        if op == "*":
            xa, xb = self.u.bound(x.type.sorts), self.u.bound(y.type.sorts)
            return z3.Lambda(xa + xb, z3.And(z3.Select(a, *xa), z3.Select(b, *xb)))
        raise NotTranslatable(e.span, f"operator '{op}' on {e.type}")

    def value_for(self, t: Type, e: P.Expr) -> z3.ExprRef:
        """A value stored in a variable of type t: a map given one value maps every key to it."""
        if isinstance(t, MapT) and not isinstance(e.type, MapT):
            return z3.Lambda(self.u.bound(t.keys), self.expr(e, t.value))
        return self.expr(e, t)

    def pair(self, x: P.Expr, y: P.Expr) -> tuple[z3.ExprRef, z3.ExprRef]:
        """Two operands; null and {} take their type from the other one."""
        if _untyped(x.type) and not _untyped(y.type):
            b = self.expr(y)
            return self.expr(x, y.type), b
        a = self.expr(x)
        return a, self.expr(y, x.type)

    def e_Image(self, e: P.Image, want):
        args = [self.element(a) for a in e.args]
        base = self._indexed_base(e.base, args)
        rest = self.u.bound(e.type.sorts)
        return z3.Lambda(rest, z3.Select(base, *args, *rest))

    def e_Lookup(self, e: P.Lookup, want):
        args = [self.element(a) for a in e.args]
        return z3.Select(self._indexed_base(e.base, args), *args)

    def _indexed_base(self, base: P.Expr, args: list) -> z3.ExprRef:
        if isinstance(base, P.GlobalRef):
            self._read(base.var, args, base.span)
            return self.state[base.var]
        return self.expr(base)

    def e_Quant(self, e: P.Quant, want):
        saved = dict(self.frame.env)
        xs, conds = [], []
        self.binders += 1
        try:
            for b, dom in e.binders:
                x = self.u.fresh(b.name, b.type)
                conds.append(self.u.real(b.type.sort, x))
                if dom is not None:
                    conds.append(z3.Select(self.expr(dom), x))
                self.frame.env[b] = x
                xs.append(x)
            body = self.boolean(e.body)
        finally:
            self.frame.env = saved
            self.binders -= 1
        if e.kind == "forall":
            return self.u.quantify("forall", xs, z3.Implies(z3.And(conds), body))
        if e.kind == "exists":
            return self.u.quantify("exists", xs, z3.And(conds + [body]))
        return z3.Lambda(xs, z3.And(conds + [body]))

    # ---- statements ----------------------------------------------------------

    def run_op(self, proc: P.Proc, procs: dict[str, P.Proc]) -> None:
        self.procs = procs
        for prm in proc.params:
            v = self.u.fresh(prm.name, prm.type)
            self.assumptions.append(self.u.wf(prm.type, v))
            self.choices.append(Choice(prm.name, prm.type, v))
            self.frame.env[prm] = v
        self.block(proc.body, z3.BoolVal(True))

    def assume(self, cond: z3.BoolRef, guard: z3.BoolRef | None = None) -> None:
        g = self.guard if guard is None else guard
        self.assumptions.append(z3.Implies(g, cond))

    def block(self, stmts: list[P.Stmt], guard: z3.BoolRef) -> None:
        for s in stmts:
            self.guard = z3.And(guard, z3.Not(self.frame.done))
            self.stmt(s)

    def stmt(self, s: P.Stmt) -> None:
        g = self.guard
        if isinstance(s, (P.SAcquire, P.SRelease, P.STrylock)) and s.target.index is not None:
            self.element(s.target.index)
        if isinstance(s, (P.SAcquire, P.SRelease, P.SYield)):
            return
        if isinstance(s, (P.SWait, P.SAssert)):
            self.assume(self.boolean(s.cond))
        elif isinstance(s, P.STrylock):
            took = self.nondet(f"trylock {s.target.lock.name} (line {s.span.line})", BoolT(), s.span)
            self.block(s.then, z3.And(g, took))
            self.block(s.orelse, z3.And(g, z3.Not(took)))
        elif isinstance(s, P.SIf):
            c = self.boolean(s.cond)
            self.block(s.then, z3.And(g, c))
            self.block(s.orelse, z3.And(g, z3.Not(c)))
        elif isinstance(s, P.SWhile):
            wait = _wait_releasing(s)
            if wait is None:
                raise NotTranslatable(s.span, "while loop")
            self.assume(self.boolean(wait))  # atomic: the operation runs when the condition holds
        elif isinstance(s, P.SFor):
            self.for_loop(s, g)
        elif isinstance(s, P.SReturn):
            if s.value is not None:
                v = self.expr(s.value)
                self.frame.ret = v if self.frame.ret is None else z3.If(g, v, self.frame.ret)
            self.frame.done = z3.Or(self.frame.done, g)
        elif isinstance(s, P.SCall):
            self.call(s, g)
        elif isinstance(s, P.SAssign):
            self.assign(s, g)
        else:  # pragma: no cover
            raise NotTranslatable(s.span, type(s).__name__)

    def nondet(self, name: str, t: Type, span: Span) -> z3.ExprRef:
        """A value chosen freely; inside loops, one per iteration (a function of the loop variables)."""
        sort = self.u.sort_of(t, span)
        if self.loops:
            f = z3.Function(f"{name}!{next(self.u.names)}", *[lp.var.sort() for lp in self.loops], sort)
            v = f(*[lp.var for lp in self.loops])
        else:
            v = z3.Const(f"{name}!{next(self.u.names)}", sort)
        self.choices.append(Choice(name, t, v))
        return v

    def call(self, s: P.SCall, g: z3.BoolRef) -> None:
        proc = self.procs[s.proc]
        env = {}
        for prm, arg in zip(proc.params, s.args):
            env[prm] = self.element(arg) if isinstance(prm.type, ElemT) and not prm.type.optional \
                else self.expr(arg, prm.type)
        caller = self.frame
        self.frame = _Frame(env)
        try:
            self.block(proc.body, g)
        finally:
            callee, self.frame = self.frame, caller
        if s.result is not None:
            value = callee.ret if callee.ret is not None else _zero(self.u, s.result.type)
            self.set_local(s.result, value, g, s.span)

    def set_local(self, local: P.Local, value: z3.ExprRef, g: z3.BoolRef, span: Span) -> None:
        env = self.frame.env
        if local in env:
            for lp in self.loops:
                if local in lp.outer_locals:
                    raise DependentLoop(span, f"a loop whose iterations update '{local.name}', "
                                                "declared outside it")
            env[local] = z3.If(g, value, env[local])
        else:
            env[local] = value

    def assign(self, s: P.SAssign, g: z3.BoolRef) -> None:
        t = s.target.type
        if isinstance(s.target, P.Local):
            value = self.expr(s.value, t)
            if s.indices:
                raise NotTranslatable(s.span, "an indexed assignment to a local")
            old = self.frame.env.get(s.target)
            self.set_local(s.target, _combine(self.u, s.op, old, value, t), g, s.span)
            return
        var = s.target
        idx = [self.element(i) for i in s.indices]
        old = self.state[var]
        if not idx:
            new = _combine(self.u, s.op, old, self.value_for(t, s.value), t)
        elif isinstance(t, MapT):
            value = self.expr(s.value, t.value)
            new = z3.Store(old, *idx, _combine(self.u, s.op, z3.Select(old, *idx), value, t.value))
        else:  # an image of a relation: rel[x, ...] op= set
            value = self.expr(s.value, SetT(t.sorts[len(idx):]))
            ks = self.u.bound(t.sorts)
            here = z3.And([k == i for k, i in zip(ks, idx)])
            cell = z3.Select(old, *ks)
            rest = z3.Select(value, *ks[len(idx):])
            bit = rest if s.op == ":=" else z3.Or(cell, rest) if s.op == "+=" else z3.And(cell, z3.Not(rest))
            new = z3.Lambda(ks, z3.If(here, bit, cell))
        entry = idx or self._singleton(s)
        for lp in self.loops:
            lp.writes.append((var, entry, s.span))
        self.state[var] = z3.If(g, new, old)

    def _singleton(self, s: P.SAssign) -> list | None:
        """`v += {t}` and `v -= {t}` change only the entry t."""
        if s.op != ":=" and isinstance(s.value, P.SetLiteral) and len(s.value.items) == 1 and self.loops:
            return self.tuple_terms(s.value.items[0])
        return None

    def _read(self, var: P.Var, idx, span: Span) -> None:
        for lp in self.loops:
            lp.reads.append((var, idx, span))

    # ---- loops -------------------------------------------------------------------

    def for_loop(self, s: P.SFor, g: z3.BoolRef) -> None:
        dom = self.expr(s.domain)
        sort = s.var.type.sort
        if s.body and isinstance(s.body[-1], P.SReturn):
            # runs once, on any element of the domain, and returns
            x = self.nondet(f"{s.var.name} chosen (line {s.span.line})", s.var.type, s.span)
            y = self.u.bound([sort])[0]
            nonempty = self.u.quantify("exists", [y], z3.Select(dom, y))  # expanded over finite sorts (BMC)
            self.assume(z3.Select(dom, x), z3.And(g, nonempty))
            self.frame.env[s.var] = x
            self.block(s.body, z3.And(g, nonempty))
            return
        if any(isinstance(x, P.SReturn) for x in P.walk_stmts(s.body)):
            raise NotTranslatable(s.span, "a loop that returns on some iterations only")
        saved = self._save()
        try:
            self._lambda_loop(s, g, dom)
        except DependentLoop:
            if not self.cut_loops or self.loops:
                raise  # an enclosing loop is cut instead, or none may be
            self._restore(saved)
            self._cut_loop(s, g, dom)

    def _save(self) -> tuple:
        f = self.frame
        return (dict(self.state), len(self.assumptions), len(self.choices), f, dict(f.env), f.done, f.ret,
                len(self.cuts), len(self.checks))

    def _restore(self, saved: tuple) -> None:
        state, n_assume, n_choices, frame, env, done, ret, n_cuts, n_checks = saved
        self.state = state
        del self.assumptions[n_assume:], self.choices[n_choices:], self.cuts[n_cuts:], self.checks[n_checks:]
        self.frame = frame
        frame.env, frame.done, frame.ret = env, done, ret

    def _cut_loop(self, s: P.SFor, g: z3.BoolRef, dom: z3.ExprRef) -> None:
        """The loop's head as a cut point (see the module doc)."""
        line = s.span.line
        empty = z3.K(dom.sort().domain(), z3.BoolVal(False))
        self.checks.append(Check(g, dict(self.state), dict(self.frame.env), empty, s, "entry",
                                 len(self.assumptions), len(self.cuts)))
        written = _written(self.procs, s.body)
        updated = [lc for lc in _locals_assigned(s.body) if lc in self.frame.env]
        before, env_before = dict(self.state), dict(self.frame.env)

        def havoc(tag: str) -> tuple[dict, dict]:
            state, env = dict(before), dict(env_before)
            for var in written:
                state[var] = self.u.fresh(f"{var.name}@{tag}{line}", var.type)
                self.assumptions.append(self.u.wf(var.type, state[var]))
            for lc in updated:
                env[lc] = self.u.fresh(f"{lc.name}@{tag}{line}", lc.type)
                self.assumptions.append(self.u.wf(lc.type, env[lc]))
            return state, env

        # one iteration, from a head where the elements `done` were taken, on any other element
        returned, ret = self.frame.done, self.frame.ret
        head, env = havoc("head")
        done = z3.Const(f"done@{line}!{next(self.u.names)}", dom.sort())
        x = self.u.fresh(s.var.name, s.var.type)
        inside = z3.And(g, z3.Select(dom, x), z3.Not(z3.Select(done, x)))
        self.assumptions.append(z3.Implies(inside, self.u.wf(s.var.type, x)))
        self.cuts.append(Cut(inside, head, env, done, s))
        self.state = dict(head)
        self.frame.env = dict(env)
        self.frame.env[s.var] = x
        self.block(s.body, inside)
        after = {lc: self.frame.env[lc] for lc in env}
        self.checks.append(Check(z3.And(inside, z3.Not(self.frame.done)), dict(self.state), after,
                                 z3.Store(done, x, True), s, "iteration", len(self.assumptions), len(self.cuts)))
        self.frame.done, self.frame.ret = returned, ret
        # after the loop: from a head where every element was taken (where the loop ran: guard g)
        head, env = havoc("exit")
        self.cuts.append(Cut(g, head, env, dom, s))
        self.state = {v: z3.If(g, head[v], before[v]) if v in written else before[v] for v in before}
        self.frame.env = {lc: z3.If(g, env[lc], t) if lc in updated else t for lc, t in env_before.items()}

    def _lambda_loop(self, s: P.SFor, g: z3.BoolRef, dom: z3.ExprRef) -> None:
        """The loop as one lambda update (independent iterations), or DependentLoop."""
        x = self.u.fresh(s.var.name, s.var.type)
        loop = _Loop(x, s.span, set(self.frame.env))
        before = dict(self.state)
        first = len(self.assumptions)
        self.loops.append(loop)
        self.frame.env[s.var] = x
        try:
            self.block(s.body, z3.And(g, z3.Select(dom, x)))
        finally:
            self.loops.pop()
        for i in range(first, len(self.assumptions)):
            self.assumptions[i] = self.u.quantify("forall", [x], self.assumptions[i])
        for var in dict.fromkeys(w[0] for w in loop.writes):  # first-write order: deterministic
            pos = self._position(loop, var)
            ks = self.u.bound(var.type.keys if isinstance(var.type, MapT) else var.type.sorts)
            sub = [(x, ks[pos])]
            cond = z3.substitute(z3.And(g, z3.Select(dom, x)), *sub)
            after = z3.substitute(self.state[var], *sub)
            self.state[var] = z3.Lambda(ks, z3.If(cond, z3.Select(after, *ks), z3.Select(before[var], *ks)))

    def _position(self, loop: _Loop, var: P.Var) -> int:
        """The index position at which every access to `var` in the loop uses the loop variable."""
        positions = None
        for v, idx, span in loop.writes:
            if v is not var:
                continue
            here = {i for i, t in enumerate(idx or ()) if z3.eq(t, loop.var)}
            if not here:
                raise DependentLoop(span, f"a loop whose iterations write '{var.name}' at an entry not "
                                            f"indexed by the loop variable (line {loop.span.line})")
            positions = here if positions is None else positions & here
        for v, idx, span in loop.reads:
            if v is var:
                here = {i for i, t in enumerate(idx or ()) if z3.eq(t, loop.var)}
                positions &= here
                if not positions:
                    raise DependentLoop(span, f"a loop whose iterations read '{var.name}', which they "
                                                f"write, at another entry (line {loop.span.line})")
        if not positions:
            raise DependentLoop(loop.span, f"a loop whose iterations write '{var.name}' at different entries")
        return min(positions)


def _written(procs: dict[str, P.Proc], body: list[P.Stmt]) -> list[P.Var]:
    """The state variables a block may write, through the procedures it calls too (in a fixed order)."""
    out: dict[P.Var, None] = {}
    for st in P.walk_stmts(body):
        if isinstance(st, P.SAssign) and isinstance(st.target, P.Var):
            out[st.target] = None
        elif isinstance(st, P.SCall):
            for v in sorted(P.globals_written(procs, st.proc), key=lambda v: v.name):
                out[v] = None
    return list(out)


def _locals_assigned(body: list[P.Stmt]) -> list[P.Local]:
    """The locals a block assigns (by `:=`, `+=`, `-=` or a call's result), in order."""
    out: dict[P.Local, None] = {}
    for st in P.walk_stmts(body):
        target = st.target if isinstance(st, P.SAssign) else getattr(st, "result", None)
        if isinstance(target, P.Local):
            out[target] = None
    return list(out)


def _set_op(op: str, a, b, xs) -> z3.ExprRef:
    sa, sb = z3.Select(a, *xs), z3.Select(b, *xs)
    body = z3.Or(sa, sb) if op == "+" else z3.And(sa, z3.Not(sb)) if op == "-" else z3.And(sa, sb)
    return z3.Lambda(xs, body)


def _combine(uni: Universe, op: str, old, value, t: Type):
    if op == ":=":
        return value
    if not isinstance(t, SetT) or old is None:  # pragma: no cover - the checker allows += -= on sets only
        raise NotTranslatable(None, f"'{op}' on {t}")
    return _set_op("+" if op == "+=" else "-", old, value, uni.bound(t.sorts))


def _zero(uni: Universe, t: Type) -> z3.ExprRef:
    """The value a call without a return statement gives (the explorer stores 0)."""
    if isinstance(t, BoolT):
        return z3.BoolVal(False)
    if isinstance(t, (IntT, ErrT, EnumT)):
        return z3.IntVal(0)
    return uni.default(t)


def _wait_releasing(s: P.SWhile) -> P.Expr | None:
    """The condition of `wait until c releasing L`, which the checker writes as
    `while !c { release L; wait until c; acquire L }`; None for any other loop."""
    body = s.body
    if (len(body) == 3 and isinstance(body[0], P.SRelease) and isinstance(body[1], P.SWait)
            and isinstance(body[2], P.SAcquire) and isinstance(s.cond, P.Op) and s.cond.op == "!"
            and s.cond.args[0] is body[1].cond):
        return body[1].cond
    return None


def _untyped(t: Type) -> bool:
    return isinstance(t, NullT) or (isinstance(t, SetT) and t.sorts is None)


def initial_state(uni: Universe, program: P.Program) -> dict:
    """The initial values of the state variables (their initialisers, or the defaults)."""
    ex = Executor(uni, {})
    ex.cut_nulls = False
    state = {}
    for v in program.vars:
        if v.init is None:
            state[v] = uni.default(v.type)
            continue
        state[v] = ex.value_for(v.type, v.init)
    return state


def model_value(t: Type, term: z3.ExprRef, model: z3.ModelRef, elems: dict[str, list]) -> object:
    """The value of `term` in a Z3 model, in the explorer's encoding. elems[sort] lists the model's
    elements of the sort in index order (None: a placeholder no set contains). Sets and maps are
    read entry by entry: the model's whole-array values can be lossy."""
    if isinstance(t, SetT):
        mask = 0
        for flat, key in enumerate(product(*(elems[s] for s in t.sorts))):
            if all(k is not None for k in key) and z3.is_true(model.eval(z3.Select(term, *key), model_completion=True)):
                mask |= 1 << flat
        return mask
    if isinstance(t, MapT):
        return tuple(model_value(t.value, z3.Select(term, *key), model, elems)
                     for key in product(*(elems[s] for s in t.keys)))
    v = model.eval(term, model_completion=True)
    if isinstance(t, BoolT):
        return 1 if z3.is_true(v) else 0
    if isinstance(t, ElemT):
        return next((i for i, e in enumerate(elems[t.sort]) if e is not None and z3.eq(e, v)), -1)
    return v.as_long()
