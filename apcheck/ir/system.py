"""The lowered system: what the explorer runs.

Each operation is a sequence of instructions; procedures are inlined, so
every instruction carries its call chain. Scheduling points (ACQUIRE,
RELEASE, WAIT, YIELD) start a step; everything between two of them runs
atomically.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from apcheck.diagnostics import Span
from apcheck.ir import program as P
from apcheck.ir.compile import Sizes
from apcheck.ir.types import Type

# instruction kinds
EXEC, BRANCH, JUMP, TRY, FOR, RETURN, ACQUIRE, RELEASE, WAIT, YIELD = range(10)
SCHED = frozenset({ACQUIRE, RELEASE, WAIT, YIELD})
KIND_NAMES = ["exec", "branch", "jump", "trylock", "for", "return", "acquire", "release", "wait", "yield"]

EXCLUSIVE, READ = 0, 1


@dataclass(frozen=True)
class Guard:
    """A guarded variable an instruction touches: a write needs every lock, a read one of them."""

    write: bool
    locks: tuple[int, ...]  # lock class ids
    var: str

    @property
    def mask(self) -> int:
        """The lock classes as a bit mask (bit c for class c)."""
        out = 0
        for c in self.locks:
            out |= 1 << c
        return out


@dataclass
class Instr:
    kind: int
    span: Span
    chain: tuple[P.Frame, ...]
    fn: Callable | None = None        # EXEC: fn(g, l); BRANCH/WAIT: cond(g, l); RETURN: value(g, l)
    target: int = -1                  # BRANCH (if false), JUMP, TRY (if not acquired), FOR (when done)
    lock: int = -1                    # lock class id
    index: Callable | None = None     # lock instance index fn(g, l), or None for a single instance
    mode: int = EXCLUSIVE
    slot: int = -1                    # FOR: loop variable slot
    rem: int = -1                     # FOR: remaining-set slot
    guards: tuple[Guard, ...] = ()
    reads: frozenset[int] = frozenset()   # local slots read
    writes: frozenset[int] = frozenset()  # local slots always written
    dead: tuple[tuple[int, object], ...] = ()  # at a scheduling point: dead slots and their reset value
    shared: bool = False              # reads or writes a state variable (or tries a lock)
    private_release: bool = False     # RELEASE whose step touches nothing shared but the lock (see reduce)
    # What the instruction does, in IR terms, for the symbolic back ends (smt.bmc): EXEC ("assign",
    # SAssign) | ("store", slot, Expr | None (zero), element?) | ("assert", Expr); BRANCH/WAIT ("cond",
    # Expr); ACQUIRE/RELEASE/TRY ("lock", index Expr | None). `env`: the local -> slot binding there.
    ir: tuple | None = None
    env: dict = field(default_factory=dict)


@dataclass
class OpInfo:
    name: str
    entry: int
    params: list[tuple[str, Type]]
    arg_tuples: list[tuple]           # every combination of argument values
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
    ops: list[int]  # indices into System.ops


@dataclass
class LockInfo:
    cls: P.LockClass
    base: int       # first instance id
    count: int


@dataclass
class System:
    program: P.Program
    sizes: Sizes
    code: list[Instr]
    ops: list[OpInfo]
    threads: list[ThreadInst]
    locks: list[LockInfo]
    inst_class: list[int]             # lock instance id -> class id
    init_globals: tuple
    invariants: list[tuple[P.Property, Callable, tuple[frozenset[int], ...]]]  # (property, fn, unlocked guards)
    covers: list[tuple[P.Property, Callable]]
    scratch: int                      # locals needed by property binders
    op_of_pc: list[int] = field(default_factory=list)
    scenario: str = "all"

    def lock_instance_name(self, inst: int) -> str:
        c = self.inst_class[inst]
        info = self.locks[c]
        if info.cls.per is None:
            return info.cls.name
        return f"{info.cls.name}[{info.cls.per}{inst - info.base}]"

    def class_id(self, name: str) -> int:
        for i, info in enumerate(self.locks):
            if info.cls.name == name:
                return i
        raise KeyError(name)
