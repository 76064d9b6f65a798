"""The abstract syntax tree: frozen dataclasses whose spans stay out of equality."""
from __future__ import annotations

from dataclasses import dataclass, field

from apcheck.diagnostics import NOSPAN, Span


@dataclass(frozen=True)
class Node:
    span: Span = field(default=NOSPAN, compare=False, hash=False, repr=False, kw_only=True)


# ---- types ---------------------------------------------------------------

@dataclass(frozen=True)
class TypeExpr(Node):
    pass


@dataclass(frozen=True)
class BoolType(TypeExpr):
    pass


@dataclass(frozen=True)
class NamedType(TypeExpr):
    name: str
    optional: bool = False


@dataclass(frozen=True)
class SetType(TypeExpr):
    sorts: tuple[str, ...]  # one sort: a set; more: a relation


@dataclass(frozen=True)
class MapType(TypeExpr):
    keys: tuple[str, ...]
    value: TypeExpr


# ---- expressions ---------------------------------------------------------

@dataclass(frozen=True)
class Expr(Node):
    pass


@dataclass(frozen=True)
class Name(Expr):
    name: str


@dataclass(frozen=True)
class BoolLit(Expr):
    value: bool


@dataclass(frozen=True)
class NullLit(Expr):
    pass


@dataclass(frozen=True)
class IntLit(Expr):
    value: int


@dataclass(frozen=True)
class ErrnoLit(Expr):
    name: str  # "EBUSY"


@dataclass(frozen=True)
class SetLit(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class TupleLit(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Binder(Node):
    name: str
    sort: str | None = None      # x: Sort
    domain: Expr | None = None   # x in S


@dataclass(frozen=True)
class Comprehension(Expr):
    binders: tuple[Binder, ...]
    cond: Expr


@dataclass(frozen=True)
class Quantified(Expr):
    kind: str  # forall | exists
    binders: tuple[Binder, ...]
    body: Expr


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # ! | #
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    op: str  # ==> || && == != in notin <= + - * &
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Index(Expr):
    base: Expr
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Call(Node):
    proc: str
    args: tuple[Expr, ...]


# ---- locks and statements ------------------------------------------------

@dataclass(frozen=True)
class LockRef(Node):
    name: str                 # as written: kvm->lock
    index: Expr | None = None


@dataclass(frozen=True)
class Stmt(Node):
    pass


@dataclass(frozen=True)
class Acquire(Stmt):
    lock: LockRef
    mode: str = "exclusive"  # exclusive | read | write


@dataclass(frozen=True)
class Release(Stmt):
    lock: LockRef


@dataclass(frozen=True)
class If(Stmt):
    cond: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...] | None = None


@dataclass(frozen=True)
class IfTrylock(Stmt):
    lock: LockRef
    negated: bool
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...] | None = None


@dataclass(frozen=True)
class For(Stmt):
    var: str
    domain: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class While(Stmt):
    cond: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Wait(Stmt):
    cond: Expr
    releasing: LockRef | None = None


@dataclass(frozen=True)
class Yield(Stmt):
    pass


@dataclass(frozen=True)
class Return(Stmt):
    value: Expr | None = None


@dataclass(frozen=True)
class CallStmt(Stmt):
    call: Call


@dataclass(frozen=True)
class Let(Stmt):
    name: str
    type: TypeExpr | None
    value: Expr | Call


@dataclass(frozen=True)
class Assign(Stmt):
    target: str
    indices: tuple[Expr, ...]
    op: str  # := += -=
    value: Expr | Call


@dataclass(frozen=True)
class Assert(Stmt):
    cond: Expr


# ---- declarations --------------------------------------------------------

@dataclass(frozen=True)
class Decl(Node):
    pass


@dataclass(frozen=True)
class Import(Decl):
    path: str


@dataclass(frozen=True)
class SortDecl(Decl):
    name: str
    bound: int | None = None


@dataclass(frozen=True)
class EnumDecl(Decl):
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class VarDecl(Decl):
    name: str
    type: TypeExpr
    init: Expr | None = None
    guard: tuple[str, ...] = ()  # reads need one of these locks, writes need all
    guard_per: tuple[str | None, ...] = ()  # per guard: `lock[Sort]`'s Sort (the instance of the entry's key)


@dataclass(frozen=True)
class LockDecl(Decl):
    name: str
    per: str | None
    kind: str


@dataclass(frozen=True)
class Param(Node):
    name: str
    type: TypeExpr


@dataclass(frozen=True)
class ProcDecl(Decl):
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...] | None   # None: a declaration (`proc f(x: T)`), defined by an importing model
    is_op: bool = False
    aka: tuple[str, ...] = ()       # the kernel's names for it on a stack (`aka kvm_vcpu_ioctl`)


@dataclass(frozen=True)
class ThreadDecl(Decl):
    name: str
    count: int
    ops: tuple[str, ...]
    serial: bool = False   # the kernel runs one instance at a time: never more in a proof either


@dataclass(frozen=True)
class ScenarioDecl(Decl):
    """A named part of the whole system, explored on its own: threads of the system, each with at
    most its instances and operations (a ThreadDecl with count 0 or no ops takes the system's)."""

    name: str
    threads: tuple[ThreadDecl, ...]


@dataclass(frozen=True)
class Needs(Decl):
    """`needs Guest=2`: the least sort bounds at which a property is not trivially true."""

    bounds: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class InvariantDecl(Decl):
    name: str
    expr: Expr
    unlocked: tuple[str, ...] = ()  # checked only where no thread holds every lock guarding these
    auxiliary: bool = False         # declared to strengthen induction proofs of the others
    needs: Needs | None = None
    between: bool = False           # `between operations`: only where no thread is inside an operation


@dataclass(frozen=True)
class CoverDecl(Decl):
    name: str
    expr: Expr
    needs: Needs | None = None


@dataclass(frozen=True)
class LoopInvariantDecl(Decl):
    name: str
    proc: str
    var: str
    expr: Expr


@dataclass(frozen=True)
class LockOrderDecl(Decl):
    name: str
    hierarchy: tuple[str, ...] | None  # None: acyclic


@dataclass(frozen=True)
class ExpectEntry(Node):
    prop: str
    verdict: str


@dataclass(frozen=True)
class ExpectDecl(Decl):
    model: str
    entries: tuple[ExpectEntry, ...]


@dataclass(frozen=True)
class ForModelsDecl(Decl):
    """`for m1, m2 { properties }`: properties of the named models only."""

    models: tuple[str, ...]
    items: tuple[Decl, ...]


@dataclass(frozen=True)
class Module(Node):
    path: str
    items: tuple[Decl, ...]
    text: str = field(default="", compare=False, hash=False, repr=False)  # the text it was parsed from
