"""The lowered program at fixed sort sizes, with the threads of one scenario: what the explorer runs.

`instantiate(lowered, sizes, threads)` compiles every expression of the
lowered program to a closure over (globals, locals) (explore.compile), lays
out the lock instances and the initial state, and enumerates each
operation's arguments. The instructions keep the lowered fields the explorer
reads (kind, target, lock, ...) with the closures beside them.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Callable

from apcheck.diagnostics import Diagnostic, DiagnosticError, Span, UsageError
from apcheck.explore.compile import NullDeref, Sizes, compile_element, compile_expr, fill_map, initial_value
from apcheck.ir import program as P
from apcheck.ir.lowered import ACQUIRE, EVERY, EXEC, TRY, Assert, Assign, Instr, Lowered, Op, Store, ThreadInst
from apcheck.ir.types import BoolT, ElemT, EnumT, MapT, SetT, Type


def bounds_of(program: P.Program, overrides: dict[str, int] | None = None) -> dict[str, int]:
    """The sort sizes to explore: each sort's declared bound, overridden from the command line."""
    sizes = {name: s.bound for name, s in program.sorts.items()}
    for name, n in (overrides or {}).items():
        if name not in sizes:
            known = ", ".join(sorted(sizes)) or "none"
            raise UsageError(f"--bound names an undeclared sort '{name}' (sorts: {known})")
        if n < 1:
            raise UsageError(f"--bound {name}={n}: a bound must be at least 1")
        sizes[name] = n
    return sizes


class Step:
    """A lowered instruction with its expressions compiled: `fn` is the EXEC effect fn(g, l), the
    BRANCH/WAIT condition or the RETURN value; `index` the lock instance's element fn(g, l)."""

    __slots__ = ("kind", "span", "chain", "target", "lock", "mode", "slot", "rem", "guards", "dead",
                 "private_release", "fn", "index", "inst_guards")

    def __init__(self, ins: Instr, fn: Callable | None, index: Callable | None, inst_guards: tuple = ()):
        self.kind, self.span, self.chain, self.target = ins.kind, ins.span, ins.chain, ins.target
        self.lock, self.mode, self.slot, self.rem = ins.lock, ins.mode, ins.slot, ins.rem
        self.guards, self.dead, self.private_release = ins.guards, ins.dead, ins.private_release
        self.fn, self.index = fn, index
        # guards per instance: (guard, per lock: None | EVERY | the entry's element fn(g, l))
        self.inst_guards = inst_guards


@dataclass
class LockInfo:
    cls: P.LockClass
    base: int       # first instance id
    count: int


@dataclass
class System:
    lowered: Lowered
    program: P.Program
    sizes: Sizes
    code: list[Step]
    ops: list[Op]
    arg_tuples: list[list[tuple]]     # per operation: every combination of argument values
    op_of_pc: list[int]
    threads: list[ThreadInst]
    locks: list[LockInfo]
    inst_class: list[int]             # lock instance id -> class id
    init_globals: tuple
    invariants: list[tuple[P.Property, Callable, tuple[frozenset[int], ...]]]  # (property, fn, unlocked guards)
    covers: list[tuple[P.Property, Callable]]
    scratch: int                      # locals needed by property binders
    scenario: str
    leads: list[tuple[int, ...]]      # per operation: its leading acquires no other thread contends

    def lock_instance_name(self, inst: int) -> str:
        c = self.inst_class[inst]
        info = self.locks[c]
        if info.cls.per is None:
            return info.cls.name
        return f"{info.cls.name}[{info.cls.per}{inst - info.base}]"


class AssertionFailed(Exception):
    def __init__(self, span: Span):
        super().__init__("assertion failed")
        self.span = span


def instantiate(lowered: Lowered, sizes: dict[str, int], threads: list[ThreadInst], scenario: str) -> System:
    """The system the explorer runs: `lowered` at these sort sizes, with these threads."""
    sz = Sizes(sizes)
    locks, inst_class = [], []
    for cid, cls in enumerate(lowered.locks):
        n = sz.n[cls.per] if cls.per else 1
        locks.append(LockInfo(cls, len(inst_class), n))
        inst_class += [cid] * n
    code = [_compile(ins, sz) for ins in lowered.code]
    arg_tuples = [list(product(*(_domain(t, sz) for _, t in op.params))) for op in lowered.ops]
    invariants = [(prop, compile_expr(prop.expr, lowered.scratch, sz), guards) for prop, guards in lowered.invariants]
    covers = [(prop, compile_expr(prop.expr, lowered.scratch, sz)) for prop in lowered.covers]
    return System(lowered, lowered.program, sz, code, lowered.ops, arg_tuples, lowered.op_of_pc, threads, locks,
                  inst_class, initial_globals(lowered.program, sz.n), invariants, covers, len(lowered.scratch),
                  scenario, leading_acquires(lowered, threads))


def leading_acquires(lowered: Lowered, threads: list[ThreadInst]) -> list[tuple[int, ...]]:
    """Per operation, the acquires it starts with (consecutive, from its entry) of lock classes that
    no thread but one ever takes, at an instance its arguments name: `mdev->dev.mutex[m]`, which
    the driver core holds around a probe or remove, when one mdevctl thread runs them. Such an
    acquire never waits and no other thread can see it, so the explorer takes it with the
    operation's start, which is then merged with the acquire after it (semantics.py `start`):
    its own scheduling point would only add states that differ from the idle thread's by a lock
    nobody else wants. Every reachable valuation, lock-order edge and deadlock is kept."""
    runners: dict[int, set[int]] = {}   # operation -> the threads that run it
    for t, th in enumerate(threads):
        for op in th.ops:
            runners.setdefault(op, set()).add(t)
    takers: dict[int, set[int]] = {}    # lock class -> the threads that take it
    for pc, ins in enumerate(lowered.code):
        if ins.kind in (ACQUIRE, TRY):
            takers.setdefault(ins.lock, set()).update(runners.get(lowered.op_of_pc[pc], ()))
    leads = []
    for op in lowered.ops:
        pc, lead = op.entry, []
        while True:
            ins = lowered.code[pc]
            if ins.kind != ACQUIRE or ins.shared or ins.guards or len(takers.get(ins.lock, ())) > 1:
                break
            lead.append(pc)
            pc += 1
            if lowered.locks[ins.lock].kind == "spinlock":
                break   # an acquire under it may sleep in atomic context: a scheduling point checks it
        leads.append(tuple(lead))
    return leads


def scenario_system(lowered: Lowered, sizes: dict[str, int], scenario: P.Scenario) -> System:
    return instantiate(lowered, sizes, lowered.threads(scenario), scenario.name)


def _domain(t: Type, sz: Sizes) -> list:
    """Every value of an operation parameter of type t (the lowering checked the type)."""
    if isinstance(t, ElemT):
        return list(range(sz.n[t.sort])) + ([-1] if t.optional else [])
    if isinstance(t, BoolT):
        return [0, 1]
    if isinstance(t, EnumT):
        return list(range(len(t.members)))
    assert isinstance(t, SetT) and t.sorts
    return list(range(1 << sz.card(t.sorts)))


def initial_globals(program: P.Program, sizes: dict[str, int]) -> tuple:
    """The state variables' initial values, encoded at these sizes (E301: an initial value uses null)."""
    sz = Sizes(sizes)
    values = []
    for v in program.vars:
        if v.init is None:
            values.append(initial_value(v.type, sz))
            continue
        try:
            x = compile_expr(v.init, {}, sz)([], [])
        except NullDeref as err:
            raise DiagnosticError([Diagnostic("E301", f"initial value of '{v.name}' uses null", err.span)],
                                  program.sources)
        values.append(fill_map(v.type, x, sz) if isinstance(v.type, MapT) else x)
    return tuple(values)


# ---- instructions --------------------------------------------------------------

def _compile(ins: Instr, sz: Sizes) -> Step:
    env = ins.env
    index = compile_element(ins.instance, env, sz) if ins.instance is not None else None
    if ins.kind == EXEC:
        fn = _effect(ins.effect, ins.span, env, sz)
    elif ins.cond is not None:
        fn = compile_expr(ins.cond, env, sz)
    elif ins.value is not None:
        fn = compile_expr(ins.value, env, sz)
    else:
        fn = None
    inst_guards = tuple((gd, tuple(a if a is None or a == EVERY else compile_element(a, env, sz) for a in gd.at))
                        for gd in ins.guards if gd.per_instance)
    return Step(ins, fn, index, inst_guards)


def _effect(effect: Assign | Store | Assert, span: Span, env, sz: Sizes) -> Callable:
    if isinstance(effect, Assign):
        return _assign(effect.stmt, env, sz)
    if isinstance(effect, Store):
        if effect.value is None:
            value = _zero
        elif effect.element:
            value = compile_element(effect.value, env, sz)
        else:
            value = compile_expr(effect.value, env, sz)
        return _store(effect.slot, value)
    cond = compile_expr(effect.cond, env, sz)

    def check(g, l):
        if not cond(g, l):
            raise AssertionFailed(span)
    return check


def _zero(g, l) -> int:
    return 0


def _store(slot: int, fn):
    def store(g, l):
        l[slot] = fn(g, l)
    return store


def _assign(s: P.SAssign, env, sz: Sizes):
    val = compile_expr(s.value, env, sz)
    is_global = isinstance(s.target, P.Var)
    slot = s.target.slot if is_global else env[s.target]
    typ = s.target.type
    combine = _combiner(s.op)
    if not s.indices:
        if is_global:
            def assign_g(g, l):
                g[slot] = combine(g[slot], val(g, l))
            return assign_g

        def assign_l(g, l):
            l[slot] = combine(l[slot], val(g, l))
        return assign_l
    idx = [compile_expr(i, env, sz) for i in s.indices]
    keys = typ.keys if isinstance(typ, MapT) else typ.sorts[: len(idx)]
    key = _key_fn(idx, [sz.n[k] for k in keys], [i.span for i in s.indices], [i.type for i in s.indices])
    if isinstance(typ, MapT):
        def assign_map(g, l):
            k = key(g, l)
            m = g[slot]
            g[slot] = m[:k] + (combine(m[k], val(g, l)),) + m[k + 1:]
        return assign_map
    width = sz.card(typ.sorts[len(idx):])
    mask = (1 << width) - 1

    def assign_image(g, l):
        shift = key(g, l) * width
        old = (g[slot] >> shift) & mask
        new = combine(old, val(g, l)) & mask
        g[slot] = (g[slot] & ~(mask << shift)) | (new << shift)
    return assign_image


def _combiner(op: str):
    if op == ":=":
        return lambda old, new: new
    if op == "+=":
        return lambda old, new: old | new
    return lambda old, new: old & ~new


def _key_fn(idx, sizes, spans, types):
    checks = [isinstance(t, ElemT) and t.optional for t in types]

    def key(g, l):
        k = 0
        for f, n, chk, sp in zip(idx, sizes, checks, spans):
            v = f(g, l)
            if chk and v < 0:
                raise NullDeref(sp)
            k = k * n + v
        return k
    return key
