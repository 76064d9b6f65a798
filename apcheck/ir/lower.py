"""Checked program -> Lowered: inline procedures, flatten control flow, lay out locals.

Once per model; independent of sort sizes and of scenarios (see ir/lowered.py).
"""
from __future__ import annotations

from apcheck.diagnostics import Diagnostic, DiagnosticError
from apcheck.ir import program as P
from apcheck.ir.lowered import (ACQUIRE, BRANCH, EVERY, EXCLUSIVE, EXEC, FOR, JUMP, READ, RELEASE, RETURN, SCHED,
                                TRY, WAIT, YIELD, Assert, Assign, Guard, Instr, Lowered, Op, Store, local_slots)
from apcheck.ir.types import BoolT, ElemT, EnumT, SetT, Type


def lower(program: P.Program) -> Lowered:
    """Lower every operation and property of the program."""
    return _Lowerer(program).run()


class _Lowerer:
    def __init__(self, program: P.Program):
        self.p = program
        self.code: list[Instr] = []
        self.op_of_pc: list[int] = []
        self.lock_ids = {name: i for i, name in enumerate(program.locks)}

    def run(self) -> Lowered:
        ops: list[Op] = []
        for proc in self.p.procs.values():
            if proc.is_op:
                ops.append(self.lower_op(proc, len(ops)))
        scratch: dict[P.Local, int] = {}
        invariants, covers = [], []
        for prop in self.p.properties:
            if prop.expr is None:
                continue
            _alloc_binders(prop.expr, scratch)
            if prop.kind == "invariant":
                guards = tuple(frozenset(self.lock_ids[c.name] for c in v.guard) for v in prop.unlocked)
                invariants.append((prop, guards))
            else:
                covers.append(prop)
        return Lowered(self.p, self.code, ops, self.op_of_pc, list(self.p.locks.values()), invariants, covers,
                       scratch)

    # ---- operations ------------------------------------------------------------

    def lower_op(self, proc: P.Proc, op_id: int) -> Op:
        self.slots: dict[P.Local, int] = {}
        self.slot_types: list[Type | None] = []
        self.slot_names: list[str] = []
        self.op_id = op_id
        entry = len(self.code)
        for prm in proc.params:
            _check_parameter_type(prm, self.p)
            self.alloc(prm)
        chain = (P.Frame(proc.name, proc.span),)
        self.emit_block(proc.body, chain, ret=None)
        self.emit(Instr(RETURN, proc.span, chain))  # falling off the end returns 0
        init = tuple(-1 if isinstance(t, ElemT) else 0 for t in self.slot_types)
        _mark_dead_locals(self.code, entry, len(self.code), init)
        return Op(proc.name, entry, [(p.name, p.type) for p in proc.params], [self.slots[p] for p in proc.params],
                  init, list(self.slot_types), list(self.slot_names), proc.span)

    def alloc(self, local: P.Local) -> int:
        self.slots[local] = len(self.slot_types)
        self.slot_types.append(None if local.kind == "binder" else local.type)
        self.slot_names.append(local.name)
        return self.slots[local]

    def emit(self, ins: Instr, reads=(), writes=(), global_write: bool = False) -> int:
        for part in reads:
            if part is not None:
                _alloc_binders(part, self.slots, self.alloc)
        ins.env = dict(self.slots)
        ins.reads = local_slots(self.slots, reads) | ins.reads
        ins.shared = global_write or ins.kind == TRY or any(True for _ in P.globals_in(list(reads)))
        ins.writes = frozenset(writes) | ins.writes
        self.code.append(ins)
        self.op_of_pc.append(self.op_id)
        return len(self.code) - 1

    def guards(self, *parts, written: P.Var | P.Local | None = None, entry: tuple | None = None
               ) -> tuple[Guard, ...]:
        """The lock checks an instruction needs: reads need one guard held, writes all of them. A
        variable guarded per instance gets one check per entry touched (`entry`: the written one)."""
        found: dict[tuple, Guard] = {}
        for part in parts:
            for v, key in P.entry_reads(part):
                if v.guard:
                    g = self.guard(v, False, key)
                    found.setdefault((v.name, tuple(map(id, g.at))), g)
        if isinstance(written, P.Var) and written.guard:
            g = self.guard(written, True, entry)
            for k in [k for k in found if k[0] == written.name and not g.per_instance]:
                del found[k]  # a write's check covers the reads of the same variable
            found[(written.name, tuple(map(id, g.at)))] = g
        return tuple(found[k] for k in sorted(found, key=lambda k: k[0]))

    def guard(self, var: P.Var, write: bool, key: tuple | None) -> Guard:
        at = []
        for pos in var.guard_at or [None] * len(var.guard):
            if pos is None:
                at.append(None)
            elif key is not None and pos < len(key) and not _has_binder(key[pos]):
                at.append(key[pos])
            else:
                at.append(EVERY)
        return Guard(write, tuple(self.lock_ids[c.name] for c in var.guard), var.name,
                     tuple(at) if any(a is not None for a in at) else ())

    def emit_block(self, stmts: list[P.Stmt], chain, ret) -> None:
        for s in stmts:
            self.emit_stmt(s, chain, ret)

    def lock_instr(self, kind: int, s, chain, mode: int = EXCLUSIVE) -> int:
        t = s.target
        return self.emit(Instr(kind, s.span, chain, lock=self.lock_ids[t.lock.name], instance=t.index, mode=mode,
                               guards=self.guards(t.index)), reads=[t.index])

    def emit_stmt(self, s: P.Stmt, chain, ret) -> None:
        if isinstance(s, P.SAcquire):
            self.lock_instr(ACQUIRE, s, chain, READ if s.mode == "read" else EXCLUSIVE)
        elif isinstance(s, P.SRelease):
            self.lock_instr(RELEASE, s, chain)
        elif isinstance(s, P.SWait):
            self.emit(Instr(WAIT, s.span, chain, cond=s.cond), reads=[s.cond])
        elif isinstance(s, P.SYield):
            self.emit(Instr(YIELD, s.span, chain))
        elif isinstance(s, P.STrylock):
            at = self.lock_instr(TRY, s, chain)
            self.emit_block(s.then, chain, ret)
            skip = self.emit(Instr(JUMP, s.span, chain))
            self.code[at].target = len(self.code)
            self.emit_block(s.orelse, chain, ret)
            self.code[skip].target = len(self.code)
        elif isinstance(s, P.SIf):
            at = self.emit(Instr(BRANCH, s.span, chain, cond=s.cond, guards=self.guards(s.cond)), reads=[s.cond])
            self.emit_block(s.then, chain, ret)
            if s.orelse:
                skip = self.emit(Instr(JUMP, s.span, chain))
                self.code[at].target = len(self.code)
                self.emit_block(s.orelse, chain, ret)
                self.code[skip].target = len(self.code)
            else:
                self.code[at].target = len(self.code)
        elif isinstance(s, P.SWhile):
            top = self.emit(Instr(BRANCH, s.span, chain, cond=s.cond, guards=self.guards(s.cond)), reads=[s.cond])
            self.emit_block(s.body, chain, ret)
            self.emit(Instr(JUMP, s.span, chain, target=top))
            self.code[top].target = len(self.code)
        elif isinstance(s, P.SFor):
            var, rem = self.alloc(s.var), self.alloc(s.remaining)
            self.emit(Instr(EXEC, s.span, chain, effect=Store(rem, s.domain), guards=self.guards(s.domain)),
                      reads=[s.domain], writes=[rem])
            top = self.emit(Instr(FOR, s.span, chain, slot=var, rem=rem, reads=frozenset([rem])))
            self.emit_block(s.body, chain, ret)
            self.emit(Instr(JUMP, s.span, chain, target=top))
            self.code[top].target = len(self.code)
        elif isinstance(s, P.SReturn):
            self.emit_return(s, chain, ret)
        elif isinstance(s, P.SCall):
            self.emit_call(s, chain)
        elif isinstance(s, P.SAssign):
            _alloc_binders(s.value, self.slots, self.alloc)  # the value's binders first, then a new local
            if isinstance(s.target, P.Local) and s.target not in self.slots:
                self.alloc(s.target)
            target = [self.slots[s.target]] if isinstance(s.target, P.Local) else []
            self.emit(Instr(EXEC, s.span, chain, effect=Assign(s),
                            guards=self.guards(s.value, s.indices, written=s.target, entry=_written_entry(s)),
                            reads=frozenset(target) if s.op != ":=" else frozenset()),
                      reads=[s.value] + list(s.indices), writes=target, global_write=isinstance(s.target, P.Var))
        elif isinstance(s, P.SAssert):
            self.emit(Instr(EXEC, s.span, chain, effect=Assert(s.cond), guards=self.guards(s.cond)), reads=[s.cond])
        else:  # pragma: no cover
            raise AssertionError(s)

    def emit_return(self, s: P.SReturn, chain, ret) -> None:
        if ret is None:  # from the operation itself
            self.emit(Instr(RETURN, s.span, chain, value=s.value, guards=self.guards(s.value)), reads=[s.value])
            return
        slot, exits = ret  # from an inlined procedure: store the result, jump to the end of the call
        if slot is not None:
            self.emit(Instr(EXEC, s.span, chain, effect=Store(slot, s.value), guards=self.guards(s.value)),
                      reads=[s.value], writes=[slot])
        exits.append(self.emit(Instr(JUMP, s.span, chain)))

    def emit_call(self, s: P.SCall, chain) -> None:
        proc = self.p.procs[s.proc]
        inner = chain + (P.Frame(proc.name, s.span),)
        for prm, arg in zip(proc.params, s.args):
            slot = self.alloc(_fresh(prm))
            self.slots[prm] = slot
            elem = isinstance(prm.type, ElemT) and not prm.type.optional
            self.emit(Instr(EXEC, s.span, chain, effect=Store(slot, arg, elem), guards=self.guards(arg)),
                      reads=[arg], writes=[slot])
        result = None
        if s.result is not None:
            result = self.slots[s.result] if s.result in self.slots else self.alloc(s.result)
            self.emit(Instr(EXEC, s.span, chain, effect=Store(result, None)), writes=[result])
        exits: list[int] = []
        self.emit_block(proc.body, inner, (result, exits))
        for at in exits:
            self.code[at].target = len(self.code)


def _check_parameter_type(prm: P.Local, program: P.Program) -> None:
    t = prm.type
    if isinstance(t, (ElemT, BoolT, EnumT)) or (isinstance(t, SetT) and t.sorts):
        return
    raise DiagnosticError([Diagnostic("E301", f"an operation parameter cannot have type {t}", prm.span)],
                          program.sources)


def successors(ins: Instr, pc: int) -> tuple[int, ...]:
    """The instructions control can reach next (static: both ways of every branch)."""
    if ins.kind == RETURN:
        return ()
    if ins.kind == JUMP:
        return (ins.target,)
    if ins.kind in (BRANCH, FOR, TRY):
        return (pc + 1, ins.target)
    return (pc + 1,)


def _mark_dead_locals(code: list[Instr], start: int, end: int, init: tuple) -> None:
    """Backward liveness over one operation; at each scheduling point record the dead slots,
    which the explorer resets so that states do not differ by values nobody reads again."""
    live = {pc: frozenset() for pc in range(start, end)}
    changed = True
    while changed:
        changed = False
        for pc in range(end - 1, start - 1, -1):
            ins = code[pc]
            out = frozenset().union(*(live[s] for s in successors(ins, pc))) if ins.kind != RETURN else frozenset()
            new = ins.reads | (out - ins.writes)
            if new != live[pc]:
                live[pc] = new
                changed = True
    every = set(range(len(init)))
    for pc in range(start, end):
        ins = code[pc]
        if ins.kind in SCHED:
            ins.dead = tuple((s, init[s]) for s in sorted(every - live[pc]))
        if ins.kind == RELEASE:
            ins.private_release = not _block_is_shared(code, pc + 1)


def _block_is_shared(code: list[Instr], start: int) -> bool:
    """Does the atomic block from `start` to the next scheduling points touch shared state?"""
    seen, stack = set(), [start]
    while stack:
        pc = stack.pop()
        if pc in seen:
            continue
        seen.add(pc)
        ins = code[pc]
        if ins.kind in SCHED:
            continue
        if ins.shared:
            return True
        stack.extend(successors(ins, pc))
    return False


def _written_entry(s: P.SAssign) -> tuple | None:
    """The entry an assignment writes, where it names one: `m[k] := v` (k), `r[a] += {d}` (a, d),
    `s += {e}` (e); None for a whole variable."""
    key = tuple(s.indices)
    if s.op != ":=" and isinstance(s.value, P.SetLiteral) and len(s.value.items) == 1:
        item = s.value.items[0]
        key += tuple(item.items) if isinstance(item, P.TupleLiteral) else (item,)
    return key or None


def _has_binder(e: P.Expr) -> bool:
    """Does e use a quantifier's variable (unknown when the guard is checked, before the step)?"""
    return any(isinstance(n, P.LocalRef) and n.local.kind == "binder" for n in P.walk_expr(e))


def _fresh(prm: P.Local) -> P.Local:
    return P.Local(prm.name, prm.type, prm.span, "let")


def _alloc_binders(e, slots: dict, alloc=None) -> None:
    """Give every quantifier binder in `e` a local slot."""
    for node in P.walk_expr(e):
        if isinstance(node, P.Quant):
            for b, _ in node.binders:
                if b not in slots:
                    if alloc is None:
                        slots[b] = len(slots)
                    else:
                        alloc(b)
