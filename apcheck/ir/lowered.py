"""The lowered program: the one form every engine consumes.

Lowered once per model by `ir.lower.lower`, independently of sort sizes and of
scenarios. Each operation is a sequence of instructions; procedures are
inlined, so every instruction carries its call chain. Scheduling points
(ACQUIRE, RELEASE, WAIT, YIELD) start a step; everything between two of them
runs atomically. Expressions stay IR trees (`ir.program.Expr`) with the local
slot binding of their instruction (`Instr.env`): the explorer compiles them to
closures at the sizes it explores (`explore.system.instantiate`), the Z3
back ends translate them. This is a stable interface (ARCHITECTURE.md,
"The lowered program"): a native explorer core consumes exactly these records.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from apcheck.diagnostics import Span
from apcheck.ir import program as P
from apcheck.ir.types import Type

# instruction kinds
EXEC, BRANCH, JUMP, TRY, FOR, RETURN, ACQUIRE, RELEASE, WAIT, YIELD = range(10)
SCHED = frozenset({ACQUIRE, RELEASE, WAIT, YIELD})
KIND_NAMES = ["exec", "branch", "jump", "trylock", "for", "return", "acquire", "release", "wait", "yield"]

EXCLUSIVE, READ = 0, 1
EVERY = "every"  # Guard.at: every instance of the lock (the entry touched is not known)


@dataclass(frozen=True)
class Guard:
    """A guarded variable an instruction touches: a write needs every lock, a read one of them.
    `at`, per lock: None (some instance of the class, or its only one), the element expression
    whose instance guards the entry touched (`guarded_by lock[Sort]`), or EVERY."""

    write: bool
    locks: tuple[int, ...]  # lock class ids
    var: str
    at: tuple = ()

    @property
    def per_instance(self) -> bool:
        return any(a is not None for a in self.at)

    @property
    def mask(self) -> int:
        """The lock classes as a bit mask (bit c for class c)."""
        out = 0
        for c in self.locks:
            out |= 1 << c
        return out


@dataclass(frozen=True)
class Assign:
    """EXEC: an assignment statement (`:=`, `+=`, `-=`) to a state variable or a local."""

    stmt: P.SAssign


@dataclass(frozen=True)
class Store:
    """EXEC: a local slot set to a value (None: zero, the falsy value of the slot's type). `element`:
    the value must be an element, never null (a procedure's non-optional element parameter)."""

    slot: int
    value: P.Expr | None
    element: bool = False


@dataclass(frozen=True)
class Assert:
    """EXEC: `assert cond` (a failed assertion is a model defect)."""

    cond: P.Expr


@dataclass
class Instr:
    kind: int
    span: Span
    chain: tuple[P.Frame, ...]
    effect: Assign | Store | Assert | None = None   # EXEC
    cond: P.Expr | None = None        # BRANCH (go on if true, else `target`), WAIT (until true)
    value: P.Expr | None = None       # RETURN: the returned value (None: 0)
    instance: P.Expr | None = None    # ACQUIRE/RELEASE/TRY: the lock instance's element (None: the only one)
    target: int = -1                  # BRANCH (if false), JUMP, TRY (if not acquired), FOR (when done)
    lock: int = -1                    # lock class id
    mode: int = EXCLUSIVE
    slot: int = -1                    # FOR: loop variable slot
    rem: int = -1                     # FOR: remaining-set slot (the loop's domain is STOREd there before)
    guards: tuple[Guard, ...] = ()
    reads: frozenset[int] = frozenset()   # local slots read
    writes: frozenset[int] = frozenset()  # local slots always written
    dead: tuple[tuple[int, object], ...] = ()  # at a scheduling point: dead slots and their reset value
    shared: bool = False              # reads or writes a state variable (or tries a lock)
    private_release: bool = False     # RELEASE whose step touches nothing shared but the lock
    env: Mapping[P.Local, int] = field(default_factory=dict)  # the slot of each local in scope here


def local_slots(env: Mapping[P.Local, int], parts, skip: frozenset[P.Local] = frozenset()) -> frozenset[int]:
    """The slots (in scope `env`) of the locals that the expressions `parts` read, but those in
    `skip` (a loop invariant's `done`); quantifier binders are not locals of the operation."""
    return frozenset(env[n.local] for n in P.walk_expr(list(parts))
                     if isinstance(n, P.LocalRef) and n.local.kind != "binder" and n.local not in skip)


@dataclass
class Op:
    """An operation: its entry instruction and the layout of its locals (params first)."""

    name: str
    entry: int
    params: list[tuple[str, Type]]
    param_slots: list[int]
    local_init: tuple                 # initial locals (params filled at start)
    local_types: list[Type | None]    # None: scratch slot, not part of symmetry
    local_names: list[str]
    span: Span

    def start_locals(self, args: tuple) -> list:
        """The locals when the operation starts with these arguments."""
        loc = list(self.local_init)
        for slot, v in zip(self.param_slots, args):
            loc[slot] = v
        return loc


@dataclass
class ThreadInst:
    name: str       # e.g. sysfs0
    group: str      # the thread declaration
    ops: list[int]  # indices into Lowered.ops


@dataclass
class Lowered:
    program: P.Program
    code: list[Instr]
    ops: list[Op]
    op_of_pc: list[int]
    locks: list[P.LockClass]          # lock class id -> class
    invariants: list[tuple[P.Property, tuple[frozenset[int], ...]]]  # (property, its `unlocked` guards)
    covers: list[P.Property]
    scratch: dict[P.Local, int]       # slots of the properties' quantifier binders

    def threads(self, scenario: P.Scenario) -> list[ThreadInst]:
        """The thread instances of a scenario: `thread t[n]` gives t0 .. t(n-1)."""
        op_index = {op.name: i for i, op in enumerate(self.ops)}
        out = []
        for t in scenario.threads:
            for i in range(t.count):
                name = t.name if t.count == 1 else f"{t.name}{i}"
                out.append(ThreadInst(name, t.name, [op_index[o] for o in t.ops]))
        return out

    def class_id(self, name: str) -> int:
        for i, cls in enumerate(self.locks):
            if cls.name == name:
                return i
        raise KeyError(name)
