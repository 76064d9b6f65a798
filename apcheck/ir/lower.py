"""Checked program + bounds -> System: inline procedures, flatten control flow, compile expressions."""
from __future__ import annotations

from itertools import product

from apcheck.diagnostics import Diagnostic, DiagnosticError, UsageError
from apcheck.ir import program as P
from apcheck.ir.compile import NullDeref, Sizes, compile_element, compile_expr, fill_map, initial_value
from apcheck.ir.system import (ACQUIRE, BRANCH, EXCLUSIVE, EXEC, FOR, JUMP, READ, RELEASE, RETURN, TRY, WAIT,
                               YIELD, Guard, Instr, LockInfo, OpInfo, System, ThreadInst)
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


def lower(program: P.Program, sizes: dict[str, int], scenario: P.Scenario | None = None) -> System:
    """Lower every operation; the threads are those of `scenario` (default: the first)."""
    return _Lowerer(program, Sizes(sizes), scenario or program.scenarios[0]).run()


class _Lowerer:
    def __init__(self, program: P.Program, sz: Sizes, scenario: P.Scenario):
        self.scenario = scenario
        self.p = program
        self.sz = sz
        self.code: list[Instr] = []
        self.op_of_pc: list[int] = []
        self.lock_ids = {name: i for i, name in enumerate(program.locks)}

    def run(self) -> System:
        locks, inst_class = [], []
        for cid, cls in enumerate(self.p.locks.values()):
            n = self.sz.n[cls.per] if cls.per else 1
            locks.append(LockInfo(cls, len(inst_class), n))
            inst_class += [cid] * n
        ops, op_index = [], {}
        for name, proc in self.p.procs.items():
            if proc.is_op:
                op_index[name] = len(ops)
                ops.append(self.lower_op(proc, len(ops)))
        threads = []
        for t in self.scenario.threads:
            for i in range(t.count):
                tname = t.name if t.count == 1 else f"{t.name}{i}"
                threads.append(ThreadInst(tname, t.name, [op_index[o] for o in t.ops]))
        scratch: dict[P.Local, int] = {}
        invs, covs = [], []
        for prop in self.p.properties:
            if prop.expr is None:
                continue
            _alloc_binders(prop.expr, scratch)
            fn = compile_expr(prop.expr, scratch, self.sz)
            if prop.kind == "invariant":
                guards = tuple(frozenset(self.lock_ids[c.name] for c in v.guard) for v in prop.unlocked)
                invs.append((prop, fn, guards))
            else:
                covs.append((prop, fn))
        init = self.initial_globals()
        return System(self.p, self.sz, self.code, ops, threads, locks, inst_class, init, invs, covs,
                      len(scratch), self.op_of_pc, self.scenario.name)

    def initial_globals(self) -> tuple:
        values = []
        for v in self.p.vars:
            if v.init is None:
                values.append(initial_value(v.type, self.sz))
                continue
            fn = compile_expr(v.init, {}, self.sz)
            try:
                x = fn([], [])
            except NullDeref as err:
                raise DiagnosticError([Diagnostic("E301", f"initial value of '{v.name}' uses null", err.span)])
            values.append(fill_map(v.type, x, self.sz) if isinstance(v.type, MapT) else x)
        return tuple(values)

    # ---- operations ------------------------------------------------------------

    def lower_op(self, proc: P.Proc, op_id: int) -> OpInfo:
        self.slots: dict[P.Local, int] = {}
        self.slot_types: list[Type | None] = []
        self.slot_names: list[str] = []
        self.op_id = op_id
        entry = len(self.code)
        for prm in proc.params:
            self.alloc(prm)
        chain = (P.Frame(proc.name, proc.span),)
        self.emit_block(proc.body, chain, ret=None)
        self.emit(Instr(RETURN, proc.span, chain, fn=None))  # falling off the end returns 0
        arg_values = [self.domain(prm.type, prm.span) for prm in proc.params]
        init = tuple(-1 if isinstance(t, ElemT) else 0 for t in self.slot_types)
        _mark_dead_locals(self.code, entry, len(self.code), init)
        return OpInfo(proc.name, entry, [(p.name, p.type) for p in proc.params],
                      list(product(*arg_values)), [self.slots[p] for p in proc.params],
                      init, list(self.slot_types), list(self.slot_names), proc.span)

    def domain(self, t: Type, span) -> list:
        if isinstance(t, ElemT):
            return list(range(self.sz.n[t.sort])) + ([-1] if t.optional else [])
        if isinstance(t, BoolT):
            return [0, 1]
        if isinstance(t, EnumT):
            return list(range(len(t.members)))
        if isinstance(t, SetT) and t.sorts:
            return list(range(1 << self.sz.card(t.sorts)))
        raise DiagnosticError([Diagnostic("E301", f"an operation parameter cannot have type {t}", span)])

    def alloc(self, local: P.Local) -> int:
        self.slots[local] = len(self.slot_types)
        self.slot_types.append(None if local.kind == "binder" else local.type)
        self.slot_names.append(local.name)
        return self.slots[local]

    def emit(self, ins: Instr, reads=(), writes=(), global_write: bool = False, ir: tuple | None = None) -> int:
        if ir is not None:
            ins.ir, ins.env = ir, dict(self.slots)
        ins.reads = frozenset(self.local_slots(reads)) | ins.reads
        ins.shared = global_write or ins.kind == TRY or any(True for _ in P.globals_in(list(reads)))
        ins.writes = frozenset(writes) | ins.writes
        self.code.append(ins)
        self.op_of_pc.append(self.op_id)
        return len(self.code) - 1

    def local_slots(self, parts) -> set[int]:
        out = set()
        for node in P.walk_expr(list(parts)):
            if isinstance(node, P.LocalRef) and node.local.kind != "binder":
                out.add(self.slots[node.local])
        return out

    def fn(self, e: P.Expr):
        _alloc_binders(e, self.slots, self.alloc)
        return compile_expr(e, self.slots, self.sz)

    def guards(self, *parts, written: P.Var | P.Local | None = None) -> tuple[Guard, ...]:
        """The lock checks an instruction needs: reads need one guard held, writes all of them."""
        found: dict[str, Guard] = {}
        for part in parts:
            for v in P.globals_in(part):
                if v.guard:
                    found.setdefault(v.name, Guard(False, tuple(self.lock_ids[c.name] for c in v.guard), v.name))
        if isinstance(written, P.Var) and written.guard:
            found[written.name] = Guard(True, tuple(self.lock_ids[c.name] for c in written.guard), written.name)
        return tuple(found[n] for n in sorted(found))

    def emit_block(self, stmts: list[P.Stmt], chain, ret) -> None:
        for s in stmts:
            self.emit_stmt(s, chain, ret)

    def element_fn(self, e: P.Expr):
        _alloc_binders(e, self.slots, self.alloc)
        return compile_element(e, self.slots, self.sz)

    def lock_fields(self, t: P.LockTarget) -> dict:
        return {"lock": self.lock_ids[t.lock.name],
                "index": self.element_fn(t.index) if t.index is not None else None}

    def emit_stmt(self, s: P.Stmt, chain, ret) -> None:
        if isinstance(s, P.SAcquire):
            mode = READ if s.mode == "read" else EXCLUSIVE
            self.emit(Instr(ACQUIRE, s.span, chain, mode=mode, guards=self.guards(s.target.index),
                            **self.lock_fields(s.target)), reads=[s.target.index], ir=("lock", s.target.index))
        elif isinstance(s, P.SRelease):
            self.emit(Instr(RELEASE, s.span, chain, guards=self.guards(s.target.index), **self.lock_fields(s.target)),
                      reads=[s.target.index], ir=("lock", s.target.index))
        elif isinstance(s, P.SWait):
            self.emit(Instr(WAIT, s.span, chain, fn=self.fn(s.cond)), reads=[s.cond], ir=("cond", s.cond))
        elif isinstance(s, P.SYield):
            self.emit(Instr(YIELD, s.span, chain))
        elif isinstance(s, P.STrylock):
            at = self.emit(Instr(TRY, s.span, chain, guards=self.guards(s.target.index),
                                 **self.lock_fields(s.target)), reads=[s.target.index], ir=("lock", s.target.index))
            self.emit_block(s.then, chain, ret)
            skip = self.emit(Instr(JUMP, s.span, chain))
            self.code[at].target = len(self.code)
            self.emit_block(s.orelse, chain, ret)
            self.code[skip].target = len(self.code)
        elif isinstance(s, P.SIf):
            at = self.emit(Instr(BRANCH, s.span, chain, fn=self.fn(s.cond), guards=self.guards(s.cond)), reads=[s.cond],
                           ir=("cond", s.cond))
            self.emit_block(s.then, chain, ret)
            if s.orelse:
                skip = self.emit(Instr(JUMP, s.span, chain))
                self.code[at].target = len(self.code)
                self.emit_block(s.orelse, chain, ret)
                self.code[skip].target = len(self.code)
            else:
                self.code[at].target = len(self.code)
        elif isinstance(s, P.SWhile):
            top = self.emit(Instr(BRANCH, s.span, chain, fn=self.fn(s.cond), guards=self.guards(s.cond)),
                            reads=[s.cond], ir=("cond", s.cond))
            self.emit_block(s.body, chain, ret)
            self.emit(Instr(JUMP, s.span, chain, target=top))
            self.code[top].target = len(self.code)
        elif isinstance(s, P.SFor):
            var, rem = self.alloc(s.var), self.alloc(s.remaining)
            dom = self.fn(s.domain)
            self.emit(Instr(EXEC, s.span, chain, fn=_store(rem, dom), guards=self.guards(s.domain)),
                      reads=[s.domain], writes=[rem], ir=("store", rem, s.domain, False))
            top = self.emit(Instr(FOR, s.span, chain, slot=var, rem=rem, reads=frozenset([rem])))
            self.emit_block(s.body, chain, ret)
            self.emit(Instr(JUMP, s.span, chain, target=top))
            self.code[top].target = len(self.code)
        elif isinstance(s, P.SReturn):
            if ret is None:
                val = self.fn(s.value) if s.value is not None else None
                self.emit(Instr(RETURN, s.span, chain, fn=val, guards=self.guards(s.value)), reads=[s.value])
            else:
                slot, exits = ret
                if slot is not None:
                    val = self.fn(s.value) if s.value is not None else (lambda g, l: 0)
                    self.emit(Instr(EXEC, s.span, chain, fn=_store(slot, val), guards=self.guards(s.value)),
                              reads=[s.value], writes=[slot], ir=("store", slot, s.value, False))
                exits.append(self.emit(Instr(JUMP, s.span, chain)))
        elif isinstance(s, P.SCall):
            self.emit_call(s, chain)
        elif isinstance(s, P.SAssign):
            fn = self.assign_fn(s)
            target = [self.slots[s.target]] if isinstance(s.target, P.Local) else []
            reads = [s.value] + list(s.indices)
            self.emit(Instr(EXEC, s.span, chain, fn=fn, guards=self.guards(s.value, s.indices, written=s.target),
                            reads=frozenset(target) if s.op != ":=" else frozenset()),
                      reads=reads, writes=target, global_write=isinstance(s.target, P.Var), ir=("assign", s))
        elif isinstance(s, P.SAssert):
            cond = self.fn(s.cond)
            self.emit(Instr(EXEC, s.span, chain, fn=_assert(cond, s.span), guards=self.guards(s.cond)), reads=[s.cond],
                      ir=("assert", s.cond))
        else:  # pragma: no cover
            raise AssertionError(s)

    def emit_call(self, s: P.SCall, chain) -> None:
        proc = self.p.procs[s.proc]
        inner = chain + (P.Frame(proc.name, s.span),)
        for prm, arg in zip(proc.params, s.args):
            slot = self.alloc(_fresh(prm))
            self.slots[prm] = slot
            value = self.element_fn(arg) if isinstance(prm.type, ElemT) and not prm.type.optional else self.fn(arg)
            elem = isinstance(prm.type, ElemT) and not prm.type.optional
            self.emit(Instr(EXEC, s.span, chain, fn=_store(slot, value), guards=self.guards(arg)),
                      reads=[arg], writes=[slot], ir=("store", slot, arg, elem))
        result = self.alloc(s.result) if s.result is not None and s.result not in self.slots else (
            self.slots[s.result] if s.result is not None else None)
        if result is not None:
            self.emit(Instr(EXEC, s.span, chain, fn=_store(result, lambda g, l: 0)), writes=[result],
                      ir=("store", result, None, False))
        exits: list[int] = []
        self.emit_block(proc.body, inner, (result, exits))
        for at in exits:
            self.code[at].target = len(self.code)

    def assign_fn(self, s: P.SAssign):
        val = self.fn(s.value)
        is_global = isinstance(s.target, P.Var)
        slot = s.target.slot if is_global else self.alloc_if_new(s.target)
        typ = s.target.type
        op = s.op
        if not s.indices:
            combine = _combiner(op)
            if is_global:
                def assign_g(g, l):
                    g[slot] = combine(g[slot], val(g, l))
                return assign_g

            def assign_l(g, l):
                l[slot] = combine(l[slot], val(g, l))
            return assign_l
        idx = [self.fn(i) for i in s.indices]
        keys = typ.keys if isinstance(typ, MapT) else typ.sorts[: len(idx)]
        sizes = [self.sz.n[k] for k in keys]
        key = _key_fn(idx, sizes, [i.span for i in s.indices], [i.type for i in s.indices])
        combine = _combiner(op)
        if isinstance(typ, MapT):
            def assign_map(g, l):
                k = key(g, l)
                m = g[slot]
                g[slot] = m[:k] + (combine(m[k], val(g, l)),) + m[k + 1:]
            return assign_map
        width = self.sz.card(typ.sorts[len(idx):])
        mask = (1 << width) - 1

        def assign_image(g, l):
            shift = key(g, l) * width
            old = (g[slot] >> shift) & mask
            new = combine(old, val(g, l)) & mask
            g[slot] = (g[slot] & ~(mask << shift)) | (new << shift)
        return assign_image

    def alloc_if_new(self, local: P.Local) -> int:
        return self.slots[local] if local in self.slots else self.alloc(local)


def _successors(ins: Instr, pc: int) -> tuple[int, ...]:
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
            out = frozenset().union(*(live[s] for s in _successors(ins, pc))) if ins.kind != RETURN else frozenset()
            new = ins.reads | (out - ins.writes)
            if new != live[pc]:
                live[pc] = new
                changed = True
    every = set(range(len(init)))
    for pc in range(start, end):
        ins = code[pc]
        if ins.kind in (ACQUIRE, RELEASE, WAIT, YIELD):
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
        if ins.kind in (ACQUIRE, RELEASE, WAIT, YIELD):
            continue
        if ins.shared:
            return True
        stack.extend(_successors(ins, pc))
    return False


def _fresh(prm: P.Local) -> P.Local:
    return P.Local(prm.name, prm.type, prm.span, "let")


def _combiner(op: str):
    if op == ":=":
        return lambda old, new: new
    if op == "+=":
        return lambda old, new: old | new
    return lambda old, new: old & ~new


def _store(slot: int, fn):
    def store(g, l):
        l[slot] = fn(g, l)
    return store


class AssertionFailed(Exception):
    def __init__(self, span):
        super().__init__("assertion failed")
        self.span = span


def _assert(cond, span):
    def check(g, l):
        if not cond(g, l):
            raise AssertionFailed(span)
    return check


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
