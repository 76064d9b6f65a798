"""Every acquisition path of every operation, ignoring data except correlated conditions: the
static lock-order edges.

Edges follow lockdep's rule (the most recent held lock, and the trylocks held above it); the
closure over all held locks is implied, since on one path each held lock was itself acquired
after the one below it: an order of these edges orders the closure too.

Paths are path-sensitive where two branches test the same condition (up to negation, and up to
the copies of a local that procedure calls make) and nothing can change its value in between:
`if mdev_kvm[m] != null { acquire kvm->lock[..] } ... if mdev_kvm[m] != null { release .. }` has
two paths, not four. A condition's value is known to stay while the thread writes none of the
locals and state variables it reads, and holds, for each state variable it reads, a guard that
every writer of that variable must hold (a single-instance lock held exclusively). That writers
hold it is itself checked on these paths (`_stable_vars`); a variable written somewhere without
all its guards is never part of a known condition. So no path a thread can run is pruned, for
any sizes and any number of threads.

Also finds releases that no path can reach holding the lock (E402).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from apcheck.diagnostics import Diagnostic
from apcheck.ir import program as P
from apcheck.ir.lowered import (ACQUIRE, BRANCH, EXCLUSIVE, EXEC, FOR, JUMP, READ, RELEASE, RETURN, SCHED,
                                TRY, Assign, Instr, Lowered, Store)

MAX_NESTING = 2  # copies of one class kept on a path's held stack (loops that nest one class)


@dataclass
class StaticEdges:
    edges: dict[tuple[int, int], tuple[int, int]]   # (A, B) -> (site of A, site of B)
    read: set[tuple[int, int]]                      # edges whose B was a read acquisition
    diagnostics: list[Diagnostic]
    pruned: int = 0                                 # branch directions cut on some path (a known condition)
    must_hold: dict[int, frozenset[int]] = field(default_factory=dict)  # scheduling point or loop head -> classes
                                                                        # every path holds there
    may_hold: dict[int, frozenset[int]] = field(default_factory=dict)   # ... and the classes some path holds
    return_holding: dict[int, int] = field(default_factory=dict)        # return -> a class some path holds there


@dataclass(frozen=True)
class _Fact:
    """A condition known on this path: its key, its value, and what it reads."""

    key: tuple
    value: bool
    slots: frozenset[int]
    vars: frozenset[str]


def static_edges(lowered: Lowered, closure: bool = False) -> StaticEdges:
    """Once per model: lock classes and paths do not depend on sizes or scenarios. With `closure`, an
    edge from every held lock (apcheck verify --lock-edges closure)."""
    stable = {v.name for v in lowered.program.vars if _single_guards(v, lowered)}
    while True:
        walk = _Walk(lowered, closure, stable)
        walk.run()
        if not walk.unguarded_writes & stable:
            return walk.result()
        stable -= walk.unguarded_writes


def loop_heads(lowered: Lowered) -> frozenset[int]:
    """The instructions a backward jump goes to: the heads of `for` and `while` loops."""
    return frozenset(ins.target for pc, ins in enumerate(lowered.code) if ins.kind == JUMP and ins.target < pc)


def _single_guards(var: P.Var, lowered: Lowered) -> set[int]:
    """The guards of a variable that exclude every writer from another thread while held: lock
    classes with one instance (a writer must hold every guard)."""
    ids = {cls.name: i for i, cls in enumerate(lowered.locks)}
    at = var.guard_at or [None] * len(var.guard)
    return {ids[g.name] for g, a in zip(var.guard, at) if g.per is None and a is None}


class _Walk:
    def __init__(self, lowered: Lowered, closure: bool, stable: set[str]) -> None:
        self.lowered, self.closure, self.code = lowered, closure, lowered.code
        self.var_named = {v.name: v for v in lowered.program.vars}
        self.guards = {name: _single_guards(self.var_named[name], lowered) for name in stable}
        self.all_guards = {v.name: {lowered.class_id(g.name) for g in v.guard}
                           for v in lowered.program.vars}
        self.edges: dict[tuple[int, int], tuple[int, int]] = {}
        self.read: set[tuple[int, int]] = set()
        self.release_ok: dict[int, bool] = {}
        self.unguarded_writes: set[str] = set()
        self.pruned: set[tuple[int, bool]] = set()
        self.heads = loop_heads(lowered)
        self.must: dict[int, frozenset[int]] = {}
        self.may: dict[int, frozenset[int]] = {}
        self.return_holding: dict[int, int] = {}

    def result(self) -> StaticEdges:
        diags = []
        for pc, ok in sorted(self.release_ok.items()):
            if not ok:
                ins = self.code[pc]
                name = self.lowered.locks[ins.lock].name
                diags.append(Diagnostic("E402", f"release of {name}, which no path to this statement holds",
                                        ins.span, notes=tuple((f"in {f.function}", f.span) for f in ins.chain[1:])))
        return StaticEdges(self.edges, self.read, diags, len(self.pruned), self.must, self.may, self.return_holding)

    def run(self) -> None:
        for op in self.lowered.ops:
            seen: set = set()
            stack = [(op.entry, (), frozenset(), ())]
            while stack:
                path = stack.pop()
                if path in seen:
                    continue
                seen.add(path)
                stack.extend(self.step(*path))

    def step(self, pc: int, held: tuple, facts: frozenset, rep: tuple) -> list[tuple]:
        """The paths one instruction continues: (pc, held, facts, copies of locals)."""
        ins = self.code[pc]
        k = ins.kind
        if k in SCHED or pc in self.heads:
            classes = frozenset(c for c, _ in held)
            self.must[pc] = self.must.get(pc, classes) & classes
            self.may[pc] = self.may.get(pc, frozenset()) | classes
        if k == RETURN:
            if held:
                self.return_holding.setdefault(pc, held[-1][0])
            return []
        if k == JUMP:
            return [(ins.target, held, facts, rep)]
        if k == BRANCH:
            return self.branch(pc, ins, held, facts, rep)
        if k == FOR:
            facts, rep = _forget_slots(facts, rep, {ins.slot, ins.rem})
            return [(pc + 1, held, facts, rep), (ins.target, held, facts, rep)]
        if k in (ACQUIRE, TRY):
            cid = ins.lock
            if k == ACQUIRE:  # lockdep's rule, as the explorer records reached edges (Semantics._acquire)
                for hc, hpc in reversed(held):
                    if (hc, cid) not in self.edges:
                        self.edges[(hc, cid)] = (hpc, pc)
                    if ins.mode == READ:
                        self.read.add((hc, cid))
                    if self.code[hpc].kind != TRY and not self.closure:
                        break
            nested = sum(1 for hc, _ in held if hc == cid)
            taken = held + ((cid, pc),) if nested < MAX_NESTING else held
            facts, rep = self.at_schedule(ins, facts, rep)
            out = [(pc + 1, taken, facts, rep)]
            if k == TRY:
                out.append((ins.target, held, self.still_known(facts, held), rep))
            return out
        if k == RELEASE:
            facts, rep = self.at_schedule(ins, facts, rep)
            for i in range(len(held) - 1, -1, -1):
                if held[i][0] == ins.lock:
                    self.release_ok[pc] = True
                    rest = held[:i] + held[i + 1:]
                    return [(pc + 1, rest, self.still_known(facts, rest), rep)]
            self.release_ok.setdefault(pc, False)
            return []
        if k in SCHED:
            facts, rep = self.at_schedule(ins, facts, rep)
            return [(pc + 1, held, facts, rep)]
        if k == EXEC:
            facts, rep = self.execute(ins, held, facts, rep)
        return [(pc + 1, held, facts, rep)]

    def branch(self, pc: int, ins: Instr, held: tuple, facts: frozenset, rep: tuple) -> list[tuple]:
        found = _fact_of(ins.cond, ins, dict(rep))
        if found is None:
            return [(pc + 1, held, facts, rep), (ins.target, held, facts, rep)]
        key, polarity, slots, names = found
        known = next((f.value for f in facts if f.key == key), None)
        out = []
        for value, nxt in ((True, pc + 1), (False, ins.target)):
            if known is not None and known != (value == polarity):
                self.pruned.add((pc, value))
                continue
            fact = _Fact(key, value == polarity, slots, names)
            now = facts | {fact} if known is None and self.holds_guards(fact, held) else facts
            out.append((nxt, held, now, rep))
        return out

    def execute(self, ins: Instr, held: tuple, facts: frozenset, rep: tuple) -> tuple[frozenset, tuple]:
        eff = ins.effect
        if isinstance(eff, Store):
            value = eff.value
            src = ins.env.get(value.local) if isinstance(value, P.LocalRef) else None
            facts, rep = _forget_slots(facts, rep, {eff.slot})
            if src is not None and src != eff.slot:
                copies = dict(rep)
                rep = tuple(sorted((copies | {eff.slot: copies.get(src, src)}).items()))
            return facts, rep
        if isinstance(eff, Assign):
            target = eff.stmt.target
            if isinstance(target, P.Var):
                if not self.all_guards[target.name] <= {c for c, _ in held}:
                    self.unguarded_writes.add(target.name)
                return frozenset(f for f in facts if target.name not in f.vars), rep
            slot = ins.env.get(target)
            return _forget_slots(facts, rep, {slot} if slot is not None else set(ins.writes))
        return facts, rep

    def at_schedule(self, ins: Instr, facts: frozenset, rep: tuple) -> tuple[frozenset, tuple]:
        """A scheduling point resets the dead locals (lowered.Instr.dead)."""
        return _forget_slots(facts, rep, {s for s, _ in ins.dead}) if ins.dead else (facts, rep)

    def holds_guards(self, fact: _Fact, held: tuple) -> bool:
        """Can no other thread change what the fact reads while this path holds `held`?"""
        mine = {c for c, pc in held if self.code[pc].mode == EXCLUSIVE}
        return all(self.guards.get(name, set()) & mine for name in fact.vars)

    def still_known(self, facts: frozenset, held: tuple) -> frozenset:
        return frozenset(f for f in facts if self.holds_guards(f, held))


def _forget_slots(facts: frozenset, rep: tuple, slots: set[int]) -> tuple[frozenset, tuple]:
    """Locals written (or reset where dead): the facts that read them are no longer known, unless
    another local still holds a copy of the old value; the facts are then about that copy."""
    if not slots:
        return facts, rep
    copies = dict(rep)
    for s in sorted(slots):
        others = sorted(t for t, r in copies.items() if r == s and t not in slots)
        copies = {t: r for t, r in copies.items() if t != s and r != s}
        if others:
            new = others[0]
            copies.update({t: new for t in others[1:]})
            facts = frozenset(_Fact(_rename(f.key, s, new), f.value, (f.slots - {s}) | {new}, f.vars)
                              if s in f.slots else f for f in facts)
        else:
            facts = frozenset(f for f in facts if s not in f.slots)
    return facts, tuple(sorted(copies.items()))


def _rename(key, old: int, new: int):
    """A fact's key with the local slot `old` renamed `new`."""
    if key == ("local", old):
        return ("local", new)
    if isinstance(key, tuple):
        return tuple(_rename(k, old, new) for k in key)
    return key


def _fact_of(cond: P.Expr, ins: Instr, copies: dict[int, int]):
    """(key, polarity, slots, vars) of a branch condition, or None where it cannot be a fact."""
    polarity = True
    while isinstance(cond, P.Op) and cond.op == "!":
        cond, polarity = cond.args[0], not polarity
    if isinstance(cond, P.Op) and cond.op in ("!=", "notin"):
        cond, polarity = P.Op(cond.type, cond.span, {"!=": "==", "notin": "in"}[cond.op], cond.args), not polarity
    slots: set[int] = set()
    names: set[str] = set()
    key = _key(cond, ins, copies, slots, names)
    if key is None:
        return None
    return key, polarity, frozenset(slots), frozenset(names)


def _key(e: P.Expr, ins: Instr, copies: dict[int, int], slots: set[int], names: set[str]):
    """A structural key of an expression, locals named by the slot they copy; None if it has binders."""
    if isinstance(e, P.Const):
        return ("const", str(e.type), e.value)
    if isinstance(e, P.GlobalRef):
        names.add(e.var.name)
        return ("var", e.var.name)
    if isinstance(e, P.LocalRef):
        if e.local not in ins.env:
            return None
        slot = ins.env[e.local]
        slots.add(copies.get(slot, slot))  # the fact is about the value in the slot copied from
        return ("local", copies.get(slot, slot))
    if isinstance(e, P.SortAll):
        return ("sort", e.sort)
    parts = [_key(x, ins, copies, slots, names) for x in
             ([e.base] if isinstance(e, (P.Image, P.Lookup)) else []) + list(getattr(e, "args", None)
                                                                          or getattr(e, "items", None) or [])]
    if any(p is None for p in parts) or isinstance(e, P.Quant):
        return None
    return (type(e).__name__, getattr(e, "op", ""), tuple(parts))
