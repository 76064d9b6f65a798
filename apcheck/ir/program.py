"""The checked program: resolved names, typed expressions and statements.

Produced by `apcheck.lang.check`; consumed by `apcheck.ir.lower` (explorer),
`apcheck.locks` and `apcheck.smt`. Nothing here refers back to the AST
except through spans.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from itertools import count

from apcheck.results import WHOLE_SYSTEM, exploration_title
from apcheck.diagnostics import Sources, Span  # noqa: F401 (Span re-exported for the checker)
from apcheck.ir.types import MapT, SetT, Type

_ids = count()


# ---- declarations ---------------------------------------------------------

@dataclass(frozen=True)
class Sort:
    name: str
    bound: int
    span: Span


@dataclass(frozen=True)
class LockClass:
    name: str
    kind: str          # mutex | rwsem | spinlock
    per: str | None    # sort with one instance per element, or None
    span: Span


@dataclass(eq=False)
class Var:
    name: str
    type: Type
    init: "Expr | None"
    guard: list[LockClass]  # reads need one of them held, writes need all
    span: Span
    slot: int
    guard_at: list[int | None] = field(default_factory=list)  # per guard: the key position whose element
                                                              # names the instance (`lock[Sort]`), or None

    def key_sorts(self) -> tuple[str, ...]:
        """The sorts of the variable's entries: a map's keys, a set's or relation's components."""
        t = self.type
        if isinstance(t, MapT):
            return tuple(t.keys)
        return tuple(t.sorts or ()) if isinstance(t, SetT) else ()


@dataclass(eq=False)
class Local:
    """A local variable, parameter, loop variable or quantifier binder."""

    name: str
    type: Type
    span: Span
    kind: str = "let"  # param | let | loop | binder | hidden
    uid: int = field(default_factory=lambda: next(_ids))

    def __hash__(self) -> int:
        return self.uid


# ---- expressions ------------------------------------------------------------

@dataclass(eq=False)
class Expr:
    type: Type
    span: Span


@dataclass(eq=False)
class Const(Expr):
    value: int


@dataclass(eq=False)
class GlobalRef(Expr):
    var: Var


@dataclass(eq=False)
class LocalRef(Expr):
    local: Local


@dataclass(eq=False)
class SortAll(Expr):
    """A sort used as an expression: the set of all its elements."""

    sort: str


@dataclass(eq=False)
class SetLiteral(Expr):
    items: list[Expr]


@dataclass(eq=False)
class TupleLiteral(Expr):
    items: list[Expr]


@dataclass(eq=False)
class Op(Expr):
    """Unary or binary operator: ! # ==> || && == != in notin <= + - * &."""

    op: str
    args: list[Expr]


@dataclass(eq=False)
class Image(Expr):
    """rel[x, ...]: the relation's tuples that start with the given elements."""

    base: Expr
    args: list[Expr]


@dataclass(eq=False)
class Lookup(Expr):
    """map[k, ...]."""

    base: Expr
    args: list[Expr]


@dataclass(eq=False)
class Quant(Expr):
    kind: str  # forall | exists | set (comprehension)
    binders: list[tuple[Local, Expr | None]]  # domain None: the whole sort
    body: Expr


# ---- statements ---------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """One level of a call chain: the function and where it was called."""

    function: str
    span: Span


@dataclass(eq=False)
class LockTarget:
    lock: LockClass
    index: Expr | None
    span: Span


@dataclass(eq=False)
class Stmt:
    span: Span


@dataclass(eq=False)
class SAcquire(Stmt):
    target: LockTarget
    mode: str  # exclusive | read


@dataclass(eq=False)
class SRelease(Stmt):
    target: LockTarget


@dataclass(eq=False)
class STrylock(Stmt):
    target: LockTarget
    then: list[Stmt]      # taken when the lock was acquired
    orelse: list[Stmt]    # taken when it was not


@dataclass(eq=False)
class SIf(Stmt):
    cond: Expr
    then: list[Stmt]
    orelse: list[Stmt]


@dataclass(eq=False)
class SFor(Stmt):
    var: Local
    remaining: Local
    domain: Expr
    body: list[Stmt]


@dataclass(eq=False)
class SWhile(Stmt):
    cond: Expr
    body: list[Stmt]


@dataclass(eq=False)
class SWait(Stmt):
    cond: Expr


@dataclass(eq=False)
class SYield(Stmt):
    pass


@dataclass(eq=False)
class SReturn(Stmt):
    value: Expr | None


@dataclass(eq=False)
class SCall(Stmt):
    proc: str
    args: list[Expr]
    result: Local | None


@dataclass(eq=False)
class SAssign(Stmt):
    """target[indices] op= value; target is a global Var or a Local."""

    target: Var | Local
    indices: list[Expr]
    op: str
    value: Expr


@dataclass(eq=False)
class SAssert(Stmt):
    cond: Expr


# ---- the program --------------------------------------------------------------

@dataclass
class Proc:
    name: str
    params: list[Local]
    body: list[Stmt]
    is_op: bool
    span: Span
    source: str  # file the procedure was declared in
    syntax: tuple = ()  # the declaration's parameters and statements as parsed (equal iff the same
                        # code, comments, layout and positions aside): what `apcheck diff` compares
    aka: tuple[str, ...] = ()  # the kernel's names for it, as a stack shows them


@dataclass
class Thread:
    name: str
    count: int
    ops: list[str]
    span: Span
    serial: bool = False   # one instance, also where a proof covers any number of threads


@dataclass
class Scenario:
    """The threads of one exploration: the whole system (every top-level thread, named
    WHOLE_SYSTEM), or a scenario, a part of it."""

    name: str
    threads: list[Thread]
    span: Span

    @property
    def whole(self) -> bool:
        return self.name == WHOLE_SYSTEM

    @property
    def title(self) -> str:
        """How a message names it: "the whole system" or "scenario NAME"."""
        return exploration_title(self.name)


@dataclass
class Property:
    name: str
    kind: str          # invariant | cover | lockorder
    span: Span
    expr: Expr | None = None
    hierarchy: list[LockClass] | None = None  # lockorder: None means "acyclic"
    unlocked: list[Var] = field(default_factory=list)  # invariant: skip states where a thread holds their guards
    auxiliary: bool = False   # invariant declared to strengthen the induction of the others
    needs: dict[str, int] = field(default_factory=dict)  # the least bounds at which it is not trivially true
    between: bool = False     # invariant `between operations`: judged only where every thread is idle


@dataclass
class LoopInvariant:
    """`loop invariant NAME at PROC.VAR: expr`: a fact at the head of that `for` loop, for induction.
    `expr` reads state variables, the locals in scope at the loop, and `done` (the elements taken)."""

    name: str
    proc: str
    loop: SFor
    done: Local
    expr: Expr
    span: Span


@dataclass
class Expectation:
    model: str
    prop: str
    verdict: str
    span: Span


@dataclass
class Program:
    path: str
    sorts: dict[str, Sort]
    enums: dict[str, tuple[str, ...]]
    vars: list[Var]
    locks: dict[str, LockClass]
    procs: dict[str, Proc]
    threads: list[Thread]
    properties: list[Property]
    expectations: list[Expectation]
    scenarios: list[Scenario]                 # the declared scenarios, each a part of `system`
    system: Scenario                          # the whole system: every top-level thread
    sources: Sources = field(default_factory=Sources, repr=False)  # the texts the program was checked from
    undefined: dict[str, Span] = field(default_factory=dict)  # procedures declared without a body and
                                                              # defined nowhere: the program is a fragment
    loop_invariants: list[LoopInvariant] = field(default_factory=list)

    @property
    def model_name(self) -> str:
        return model_name_of(self.path)


def model_name_of(path: str) -> str:
    """A model's name, as expect blocks name it: its file name without the extension."""
    return os.path.splitext(os.path.basename(path))[0]


# ---- walking the IR --------------------------------------------------------------

def walk_expr(e):
    """Every expression node in e (an expression, a list of them, or None), quantifier domains too."""
    if e is None:
        return
    if isinstance(e, (list, tuple)):
        for x in e:
            yield from walk_expr(x)
        return
    if not isinstance(e, Expr):
        return
    yield e
    for attr in ("args", "items", "base", "body"):
        yield from walk_expr(getattr(e, attr, None))
    if isinstance(e, Quant):
        for _, d in e.binders:
            yield from walk_expr(d)


def entry_reads(e):
    """Every read of a state variable in e, with the entry it reads where the expression names one:
    (var, key) with key the elements per key position (`r[a]`, `m[k]`, `a in s`, `(a, d) in r`), or
    (var, None) where the whole variable is read."""
    stack = [e]
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple)):
            stack.extend(reversed(node))
        elif isinstance(node, (Image, Lookup)) and isinstance(node.base, GlobalRef):
            yield node.base.var, tuple(node.args)
            stack.extend(reversed(node.args))
        elif isinstance(node, Op) and node.op in ("in", "notin") and isinstance(node.args[1], GlobalRef):
            elem = node.args[0]
            yield node.args[1].var, tuple(elem.items) if isinstance(elem, TupleLiteral) else (elem,)
            stack.append(elem)
        elif isinstance(node, GlobalRef):
            yield node.var, None
        elif isinstance(node, Expr):
            if isinstance(node, Quant):
                stack.extend(d for _, d in node.binders if d is not None)
            for attr in ("body", "base", "items", "args"):
                child = getattr(node, attr, None)
                if child is not None:
                    stack.append(child)


def globals_in(part):
    """The state variables that part (a Var, expressions, or lists of them) reads, with repeats."""
    if isinstance(part, Var):
        yield part
        return
    if isinstance(part, (list, tuple)):
        for p in part:
            yield from globals_in(p)
        return
    for node in walk_expr(part):
        if isinstance(node, GlobalRef):
            yield node.var


def walk_stmts(stmts: list[Stmt]):
    """Every statement of a block and of the blocks nested in it (not of called procedures)."""
    for s in stmts:
        yield s
        for part in ("then", "orelse", "body"):
            yield from walk_stmts(getattr(s, part, None) or [])


def proc_closure(procs: dict[str, Proc], name: str) -> list[str]:
    """The procedure and every procedure it calls, transitively, in call order."""
    out: list[str] = []
    todo = [name]
    while todo:
        n = todo.pop(0)
        if n in out or n not in procs:
            continue
        out.append(n)
        todo += [s.proc for s in walk_stmts(procs[n].body) if isinstance(s, SCall)]
    return out


def globals_read(e: Expr) -> set[Var]:
    """The state variables an expression reads."""
    return set(globals_in(e))


def globals_written(procs: dict[str, Proc], name: str) -> set[Var]:
    """The state variables a procedure may write, through the procedures it calls too."""
    return {s.target for n in proc_closure(procs, name) for s in walk_stmts(procs[n].body)
            if isinstance(s, SAssign) and isinstance(s.target, Var)}
