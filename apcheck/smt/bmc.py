"""Bounded model checking with Z3: the interleaved system unrolled to a depth, at fixed sizes.

A cross-check of the explorer, built independently of it from the lowered
instructions' IR: each sort is a Z3 enumeration (its elements and null), the
state at step k is Z3 constants (state variables, each thread's position and
locals, each lock instance's writer and readers), and one step is one thread
running from a scheduling point (or the start of an operation) to the next,
as in the explorer: every static path through the instructions between them
is a disjunct, with its branch conditions, lock checks and defect checks
(a path that ends in a defect has no successor; the explorer goes on with the
other threads, so after a defect BMC sees less than the explorer).

`bmc` finds, for each invariant, the smallest depth at which a reachable
state violates it, and replays the path Z3 found through the explorer's
concrete semantics (a mismatch is an internal error).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count, product

import z3

from apcheck.diagnostics import InternalError
from apcheck.explore.semantics import IDLE, Semantics
from apcheck.ir import program as P
from apcheck.explore.system import System
from apcheck.ir.lowered import (ACQUIRE, BRANCH, EVERY, EXEC, FOR, JUMP, READ, RELEASE, RETURN, TRY, WAIT, YIELD,
                                Assert, Assign, Instr, Store)
from apcheck.ir.types import BoolT, ElemT, MapT, SetT, Type
from apcheck.smt.symbolic import Executor, NotTranslatable, Universe, initial_state, model_value

MAX_PATH = 2000   # instructions on one step's path (a loop with no scheduling point is cut here)
PRUNE_AFTER = 64  # from this many instructions on, a branch is followed only where its path is feasible
_ids = count()


class FiniteUniverse(Universe):
    """Each sort as a Z3 enumeration of exactly its elements plus null."""

    def __init__(self, program: P.Program, sizes: dict[str, int]):
        self.p = program
        self.names = count()
        self.sorts, self.null, self.elems = {}, {}, {}
        uid = next(_ids)
        for name in program.sorts:
            n = sizes[name]
            sort, consts = z3.EnumSort(f"{name}!bmc{uid}", [f"{name}{i}!{uid}" for i in range(n)] + [f"null_{name}!{uid}"])
            self.sorts[name], self.elems[name], self.null[name] = sort, consts[:n], consts[n]

    def quantify(self, kind: str, xs: list, body: z3.BoolRef) -> z3.BoolRef:
        """Quantifiers over finite sorts, expanded: no quantifier reaches Z3."""
        values = [self.elems[_sort_name(self, x)] + [self.null[_sort_name(self, x)]] for x in xs]
        cases = [z3.substitute(body, *zip(xs, combo)) for combo in product(*values)]
        return z3.And(cases) if kind == "forall" else z3.Or(cases)

    def card(self, value: z3.ExprRef, t: Type, span) -> z3.ExprRef:
        keys = product(*(self.elems[s] for s in t.sorts))
        return z3.Sum([z3.If(z3.Select(value, *key), 1, 0) for key in keys] or [z3.IntVal(0)])

    def encode(self, t: Type, v) -> z3.ExprRef:
        """A concrete value (the explorer's encoding) as a Z3 term."""
        if isinstance(t, BoolT):
            return z3.BoolVal(bool(v))
        if isinstance(t, ElemT):
            return self.null[t.sort] if v < 0 else self.elems[t.sort][v]
        if isinstance(t, SetT):
            xs = self.bound(t.sorts)
            members = [z3.And([x == self.elems[s][i] for x, s, i in zip(xs, t.sorts, idx)])
                       for flat, idx in enumerate(product(*(range(len(self.elems[s])) for s in t.sorts)))
                       if v >> flat & 1]
            return z3.Lambda(xs, z3.Or(members) if members else z3.BoolVal(False))
        if isinstance(t, MapT):
            raise NotTranslatable(None, "a map-valued local")
        return z3.IntVal(v)


def _sort_name(u: FiniteUniverse, x: z3.ExprRef) -> str:
    return next(n for n, s in u.sorts.items() if s == x.sort())


@dataclass
class _Step:
    """The symbolic state at one depth."""

    g: dict                       # Var -> term
    pc: list                      # thread -> Int
    loc: list                     # thread -> {(op, slot): term}
    w: list                       # lock instance -> Int (0 free, t+1 writer)
    r: list                       # lock instance -> [Bool per thread] (readers)


@dataclass
class _Path:
    """One way a step can go: its condition and the state it leaves."""

    cond: list
    g: dict
    loc: dict
    w: list
    r: list
    pc: int                                  # next pc (IDLE on return)
    thread: int = -1
    op: int = -1
    args: tuple = ()                         # Z3 argument terms when the step starts an operation
    starts: bool = False                     # the step starts an operation (the thread was idle)
    taken: dict = field(default_factory=dict)  # (op, loop's remaining-set slot) -> elements visited


@dataclass
class BmcResult:
    depth: int                                          # the depth explored completely
    violations: dict[str, int] = field(default_factory=dict)   # invariant -> shortest depth
    reached: dict[str, int] = field(default_factory=dict)      # cover -> shortest depth
    unknown: str | None = None                          # why the unrolling stopped early


def _check(solver: z3.Solver, timeout_ms: int):
    """The query's result, model and reason; a query the incremental solver gives up on (the sets'
    lambdas make quantifiers) is asked again of a fresh solver, which often decides it."""
    res = solver.check()
    if res == z3.unknown:
        fresh = z3.Solver()
        fresh.set("timeout", timeout_ms)
        fresh.add(solver.assertions())
        solver = fresh
        res = solver.check()
    return res, solver.model() if res == z3.sat else None, solver.reason_unknown()


def bmc(system: System, max_depth: int, timeout_s: float = 60.0) -> BmcResult:
    """Unroll to max_depth steps; each invariant's shortest violation depth, replayed concretely."""
    return _Bmc(system, timeout_s).unroll(max_depth)


class _Bmc:
    def __init__(self, system: System, timeout_s: float):
        self.sys = system
        self.p = system.program
        self.u = FiniteUniverse(self.p, system.sizes.n)
        self.code = system.lowered.code   # the IR of each instruction; sizes and threads from `system`
        self.n_threads = len(system.threads)
        self.n_locks = len(system.inst_class)
        self.timeout = int(timeout_s * 1000)
        # each thread's scheduling points: where a step of it can start
        self.sched_pcs = [[pc for pc, ins in enumerate(self.code) if ins.kind in (ACQUIRE, RELEASE, WAIT, YIELD)
                           and self.sys.op_of_pc[pc] in th.ops] for th in system.threads]
        self.slot_types = {}
        for op_id, op in enumerate(system.ops):
            for slot, t in enumerate(op.local_types):
                if t is not None:
                    self.slot_types[(op_id, slot)] = t

    # ---- state ---------------------------------------------------------------

    def fresh_step(self, k: int) -> _Step:
        g = {v: z3.Const(f"{v.name}@{k}", self.u.sort_of(v.type)) for v in self.p.vars}
        pc = [z3.Int(f"pc{t}@{k}") for t in range(self.n_threads)]
        loc = []
        for t, th in enumerate(self.sys.threads):
            loc.append({(o, s): z3.Const(f"l{t}_{o}_{s}@{k}", self.u.sort_of(ty))
                        for (o, s), ty in self.slot_types.items() if o in th.ops})
        w = [z3.Int(f"w{i}@{k}") for i in range(self.n_locks)]
        r = [[z3.Bool(f"r{i}_{t}@{k}") for t in range(self.n_threads)] for i in range(self.n_locks)]
        return _Step(g, pc, loc, w, r)

    def initial(self, s: _Step) -> list:
        init = initial_state(self.u, self.p)
        out = [s.g[v] == init[v] for v in self.p.vars]
        out += [pc == IDLE for pc in s.pc]
        out += [w == 0 for w in s.w] + [z3.Not(x) for rs in s.r for x in rs]
        return out

    # ---- one step ---------------------------------------------------------------

    def paths_from(self, s: _Step, t: int) -> list[tuple[z3.BoolRef, _Path]]:
        """Every way thread t can take a step from state s, each with the pc it starts at."""
        out = []
        for pc in self.sched_pcs[t]:
            for path in self.sched_step(s, t, pc):
                out.append((s.pc[t] == pc, path))
        for op_id in self.sys.threads[t].ops:
            op = self.sys.ops[op_id]
            args = tuple(z3.Const(f"arg{t}_{op_id}_{i}!{next(_ids)}", self.u.sort_of(ty))
                         for i, (_, ty) in enumerate(op.params))
            loc = dict(s.loc[t])
            for (o, slot), ty in self.slot_types.items():
                if o == op_id:
                    loc[(o, slot)] = self.u.encode(ty, op.local_init[slot]) if not isinstance(ty, MapT) else loc[(o, slot)]
            wf = []
            for slot, a, (_, ty) in zip(op.param_slots, args, op.params):
                loc[(op_id, slot)] = a
                wf.append(self.u.wf(ty, a))
            start = _Path(wf, dict(s.g), loc, list(s.w), [list(x) for x in s.r], op.entry, t, op_id, args, True)
            if self.code[op.entry].kind == ACQUIRE:
                paths = self.sched_step(s, t, op.entry, start)
            else:
                paths = self.run(t, op_id, start, op.entry)
            out += [(s.pc[t] == IDLE, p) for p in paths]
        return out

    def sched_step(self, s: _Step, t: int, pc: int, start: _Path | None = None) -> list[_Path]:
        op_id = self.sys.op_of_pc[pc]
        base = start or _Path([], dict(s.g), dict(s.loc[t]), list(s.w), [list(x) for x in s.r], pc, t, op_id)
        ins = self.code[pc]
        p = base
        self.guard(p, ins, t, op_id)
        self.not_atomic(p, ins, t)
        if ins.kind in (ACQUIRE, RELEASE):
            out = []
            for inst, p2 in self.instances(p, ins, t, op_id):
                if ins.kind == ACQUIRE:
                    self.acquire(p2, inst, t, ins.mode)
                else:
                    self.release(p2, inst, t)
                out += self.run(t, op_id, p2, pc + 1)
            return out
        if ins.kind == WAIT:
            p.cond.append(self.expr(p, ins, t, op_id, ins.cond))
        return self.run(t, op_id, p, pc + 1)

    def run(self, t: int, op_id: int, path: _Path, pc: int) -> list[_Path]:
        """Run from pc to the next scheduling point or return, splitting at branches."""
        done, todo = [], [(path, pc, 0)]
        while todo:
            p, pc, n = todo.pop()
            if n > MAX_PATH:
                raise NotTranslatable(self.code[pc].span, "a step longer than the BMC path limit")
            ins = self.code[pc]
            k = ins.kind
            if k in (ACQUIRE, RELEASE, WAIT, YIELD):
                self.guard(p, ins, t, op_id)  # the explorer checks guards before it stops here
                p.pc = pc
                done.append(p)
                continue
            self.guard(p, ins, t, op_id)
            if k == EXEC:
                self.execute(p, ins, t, op_id)
                todo.append((p, pc + 1, n + 1))
            elif k == BRANCH:
                c = self.expr(p, ins, t, op_id, ins.cond)
                for q, nxt in ((_fork(p, c), pc + 1), (_fork(p, z3.Not(c)), ins.target)):
                    if n < PRUNE_AFTER or _feasible(q.cond):  # long paths: drop infeasible branches (loops)
                        todo.append((q, nxt, n + 1))
            elif k == JUMP:
                todo.append((p, ins.target, n + 1))
            elif k == FOR:
                rem = p.loc[(op_id, ins.rem)]
                sort = self.slot_types[(op_id, ins.slot)].sort
                elems = self.u.elems[sort]
                empty = z3.And([z3.Not(z3.Select(rem, e)) for e in elems])
                todo.append((_fork(p, empty), ins.target, n + 1))
                seen = p.taken.get((op_id, ins.rem), frozenset())
                for i, e in enumerate(elems):
                    if i in seen:  # visited: no longer in the remaining set
                        continue
                    q = _fork(p, z3.Select(rem, e))
                    q.taken[(op_id, ins.rem)] = seen | {i}
                    q.loc[(op_id, ins.slot)] = e
                    x = self.u.bound([sort])[0]
                    q.loc[(op_id, ins.rem)] = z3.Lambda([x], z3.And(z3.Select(rem, x), x != e))
                    todo.append((q, pc + 1, n + 1))
            elif k == TRY:
                for inst, q in self.instances(p, ins, t, op_id):
                    free = z3.And(q.w[inst] == 0, *[z3.Not(x) for x in q.r[inst]])
                    got = _fork(q, free)
                    self.acquire(got, inst, t, ins.mode)
                    todo.append((got, pc + 1, n + 1))
                    todo.append((_fork(q, z3.Not(free)), ins.target, n + 1))
            elif k == RETURN:
                me = t + 1
                p.cond += [z3.And(p.w[i] != me, z3.Not(p.r[i][t])) for i in range(self.n_locks)]
                p.pc = IDLE
                done.append(p)
            else:  # pragma: no cover
                raise AssertionError(k)
        return done

    # ---- instructions -------------------------------------------------------------

    def executor(self, p: _Path, ins: Instr, t: int, op_id: int) -> Executor:
        ex = Executor(self.u, p.g)
        ex.frame.env = {local: p.loc[(op_id, slot)] for local, slot in ins.env.items()
                        if (op_id, slot) in p.loc}
        return ex

    def expr(self, p: _Path, ins: Instr, t: int, op_id: int, e: P.Expr) -> z3.BoolRef:
        ex = self.executor(p, ins, t, op_id)
        value = ex.boolean(e)
        p.cond += ex.assumptions
        return value

    def execute(self, p: _Path, ins: Instr, t: int, op_id: int) -> None:
        effect = ins.effect
        ex = self.executor(p, ins, t, op_id)
        if isinstance(effect, Assign):
            s = effect.stmt
            ex.assign(s, z3.BoolVal(True))
            p.g = ex.state
            if isinstance(s.target, P.Local):
                p.loc[(op_id, ins.env[s.target])] = ex.frame.env[s.target]
        elif isinstance(effect, Store):
            slot, e = effect.slot, effect.value
            ty = self.slot_types[(op_id, slot)]
            if e is None:
                value = self.u.encode(ty, 0) if not isinstance(ty, ElemT) else self.u.null[ty.sort]
            else:
                value = ex.element(e) if effect.element else ex.value_for(ty, e)
            p.loc[(op_id, slot)] = value
            p.taken.pop((op_id, slot), None)
        elif isinstance(effect, Assert):
            p.cond.append(ex.boolean(effect.cond))
        p.cond += ex.assumptions

    def guard(self, p: _Path, ins: Instr, t: int, op_id: int) -> None:
        """The path goes on only if the instruction's guarded-variable checks pass (else a defect)."""
        for guard in ins.guards:
            have = [self.holds_guard(p, ins, t, op_id, c, at)
                    for c, at in zip(guard.locks, guard.at or (None,) * len(guard.locks))]
            p.cond.append(z3.And(have) if guard.write else z3.Or(have))

    def holds_guard(self, p: _Path, ins: Instr, t: int, op_id: int, c: int, at) -> z3.BoolRef:
        """Thread t holds what a guard asks of class c: some instance (None), every one (EVERY), or
        the instance of the entry's element (an expression)."""
        if at is None:
            return self.holds_class(p.w, p.r, t, c)
        info = self.sys.locks[c]
        held = [z3.Or(p.w[i] == t + 1, p.r[i][t]) for i in range(info.base, info.base + info.count)]
        if at == EVERY:
            return z3.And(held)
        ex = self.executor(p, ins, t, op_id)
        e = ex.expr(at)
        p.cond += ex.assumptions
        return z3.Or([z3.And(e == x, h) for x, h in zip(self.u.elems[info.cls.per], held)])

    def not_atomic(self, p: _Path, ins: Instr, t: int) -> None:
        """A path that would sleep holding a spinlock ends there (the explorer's sleep-in-atomic defect)."""
        spins = [c for c, info in enumerate(self.sys.locks) if info.cls.kind == "spinlock"]
        sleeps = ins.kind == WAIT or (ins.kind == ACQUIRE and self.sys.locks[ins.lock].cls.kind != "spinlock")
        if spins and sleeps:
            p.cond.append(z3.Not(z3.Or([self.holds_class(p.w, p.r, t, c) for c in spins])))

    def holds_class(self, w: list, r: list, t: int, c: int) -> z3.BoolRef:
        """Thread t holds some instance of lock class c (as writer or reader)."""
        info = self.sys.locks[c]
        return z3.Or([z3.Or(w[i] == t + 1, r[i][t]) for i in range(info.base, info.base + info.count)])

    def instances(self, p: _Path, ins: Instr, t: int, op_id: int) -> list[tuple[int, _Path]]:
        """One path per lock instance the instruction may name, with the instance id. A null index
        has no path: the explorer reports it as a defect."""
        info = self.sys.locks[ins.lock]
        if ins.instance is None:
            return [(info.base, _fork(p, z3.BoolVal(True)))]
        ex = self.executor(p, ins, t, op_id)
        idx = ex.expr(ins.instance)
        return [(info.base + i, _fork(p, idx == e)) for i, e in enumerate(self.u.elems[info.cls.per])]

    def acquire(self, p: _Path, inst: int, t: int, mode: int) -> None:
        me = t + 1
        if mode == READ:
            p.cond += [p.w[inst] == 0, z3.Not(p.r[inst][t])]
            p.r[inst] = list(p.r[inst])
            p.r[inst][t] = z3.BoolVal(True)
        else:
            p.cond += [p.w[inst] == 0] + [z3.Not(x) for x in p.r[inst]]
            p.w[inst] = z3.IntVal(me)

    def release(self, p: _Path, inst: int, t: int) -> None:
        """Releasing what the thread does not hold is a defect: the path needs it held."""
        me = t + 1
        was_w, was_r = p.w[inst], p.r[inst][t]
        p.cond.append(z3.Or(was_w == me, was_r))
        p.w[inst] = z3.If(was_w == me, z3.IntVal(0), was_w)
        p.r[inst] = list(p.r[inst])
        p.r[inst][t] = z3.If(was_w == me, was_r, z3.BoolVal(False))

    # ---- properties and the unrolling ------------------------------------------------

    def target(self, s: _Step, prop: P.Property, guards) -> z3.BoolRef:
        """An invariant violated (outside the critical sections of its unlocked(...) variables, and
        for one `between operations` where every thread is idle), or a cover satisfied."""
        ex = Executor(self.u, s.g)
        ex.cut_nulls = False
        if prop.kind == "cover":
            return ex.boolean(prop.expr)
        bad = z3.Not(ex.boolean(prop.expr))
        if prop.between:
            bad = z3.And([bad] + [s.pc[t] == IDLE for t in range(self.n_threads)])
        if not guards:
            return bad
        # some thread holds every lock guarding one of the unlocked(...) variables
        hidden = [z3.And([self.holds_class(s.w, s.r, t, c) for c in g])
                  for t in range(self.n_threads) for g in guards]
        return z3.And(bad, z3.Not(z3.Or(hidden)))

    def transition(self, s: _Step, n: _Step, k: int) -> tuple[z3.ExprRef, list]:
        """The constraint that n follows s by one step; a selector names the step taken."""
        choice = z3.Int(f"choice@{k}")
        alts, table = [], []
        for t in range(self.n_threads):
            for at, path in self.paths_from(s, t):
                j = len(table)
                table.append(path)
                same = [n.pc[u] == s.pc[u] for u in range(self.n_threads) if u != t]
                same += [n.loc[u][key] == s.loc[u][key] for u in range(self.n_threads) if u != t for key in s.loc[u]]
                eff = [n.g[v] == path.g[v] for v in self.p.vars]
                eff += [n.pc[t] == path.pc]
                eff += [n.loc[t][key] == path.loc[key] for key in n.loc[t]]
                eff += [n.w[i] == path.w[i] for i in range(self.n_locks)]
                eff += [n.r[i][u] == path.r[i][u] for i in range(self.n_locks) for u in range(self.n_threads)]
                alts.append(z3.Implies(choice == j, z3.And([at] + path.cond + same + eff)))
        alts.append(z3.And(choice >= 0, choice < len(table)))
        return z3.And(alts), table

    def unroll(self, max_depth: int) -> BmcResult:
        solver = z3.Solver()
        solver.set("timeout", self.timeout)
        steps = [self.fresh_step(0)]
        solver.add(self.initial(steps[0]))
        tables: list[list[_Path]] = []
        result = BmcResult(-1)
        remaining = [(prop, guards) for prop, _, guards in self.sys.invariants]
        remaining += [(prop, None) for prop, _ in self.sys.covers]
        for k in range(max_depth + 1):
            if k > 0:
                nxt = self.fresh_step(k)
                tr, table = self.transition(steps[-1], nxt, k - 1)
                solver.add(tr)
                steps.append(nxt)
                tables.append(table)
            for prop, guards in list(remaining):
                solver.push()
                solver.add(self.target(steps[k], prop, guards))
                res, model, reason = _check(solver, self.timeout)
                solver.pop()
                if res == z3.unknown:
                    result.unknown = (f"Z3 gave up at depth {k}: {reason} (each query may take "
                                      f"{self.timeout / 1000:g} s; --smt-timeout raises it)")
                    return result
                if model is not None:
                    self.replay(model, steps, tables, prop, k)
                    (result.violations if prop.kind == "invariant" else result.reached)[prop.name] = k
                    remaining.remove((prop, guards))
            result.depth = k
        return result

    def replay(self, model, steps, tables, prop, k: int) -> None:
        """Follow Z3's path in the concrete semantics; it must end in a state violating the invariant
        (or satisfying the cover)."""
        sem = Semantics(self.sys)  # every step on its own, as BMC counts them
        wants = []
        for i in range(k):
            path = tables[i][model.eval(z3.Int(f"choice@{i}"), model_completion=True).as_long()]
            g = tuple(model_value(v.type, steps[i + 1].g[v], model, self.u.elems) for v in self.p.vars)
            args = None
            if path.starts:
                params = self.sys.ops[path.op].params
                args = tuple(model_value(ty, a, model, self.u.elems) for a, (_, ty) in zip(path.args, params))
            pc = model.eval(steps[i + 1].pc[path.thread], model_completion=True).as_long()
            wants.append((path.thread, path.op, args, g, pc))

        def follow(state, i):
            if i == k:
                return state
            t, op, args, g, pc = wants[i]
            for o in sem.successors(state):
                if (o.defect is None and o.thread == t and o.state[0] == g and o.state[2][t][0] == pc
                        and (args is None or (o.args == args and o.op == op))):
                    end = follow(o.state, i + 1)
                    if end is not None:
                        return end
            return None

        end = follow(sem.initial(), 0)
        if end is None:
            raise InternalError(f"BMC's path to a violation of {prop.name} at depth {k} does not replay "
                                "in the explorer's semantics")
        fns = [(p, fn) for p, fn, _ in self.sys.invariants] + list(self.sys.covers)
        fn = next(fn for p, fn in fns if p is prop)
        if bool(fn(end[0], [0] * max(self.sys.scratch, 1))) != (prop.kind == "cover"):
            raise InternalError(f"BMC's path to {prop.name} ends in a state where the concrete semantics "
                                "disagrees")


def _feasible(conds: list) -> bool:
    s = z3.Solver()
    s.set("timeout", 2000)
    s.add(conds)
    return s.check() != z3.unsat


def _fork(p: _Path, cond: z3.BoolRef) -> _Path:
    return _Path(p.cond + [cond], dict(p.g), dict(p.loc), list(p.w), [list(x) for x in p.r], p.pc, p.thread,
                 p.op, p.args, p.starts, dict(p.taken))
