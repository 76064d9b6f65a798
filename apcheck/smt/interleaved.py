"""Invariants for every size and any number of threads: induction over the interleaved steps.

The symbolic state is the program's state variables, and for an unbounded set
of threads (an uninterpreted sort `Thread`, with one element `nobody` that no
thread is) each thread's program point, its locals and the locks it holds:

- `pc: Thread -> Int`: -1 idle, else the scheduling point (an ACQUIRE,
  RELEASE, WAIT or YIELD instruction of the lowered program) or loop head
  where its next step begins;
- one array `Thread -> value` per local slot of each operation;
- per lock class, its owner (`Thread`, or an array from the class's sort to
  `Thread` for a lock per element; `nobody` when free) and, for an rwsem, its
  readers (`Thread -> Bool`, or per element).

A step is one thread's run from its scheduling point (or from the entry of
any operation, when idle, with any arguments) to the next scheduling point or
its return, exactly as the explorer takes it (explore/semantics.py): an
acquire waits for a free lock, a wait for its condition, a trylock takes the
lock if it is free and fails otherwise. Each thread belongs to one thread
declaration of the whole system (`ctx: Thread -> Int`, fixed), and an idle
thread may start any operation its declaration runs, with any arguments. A
declaration marked `serial` (the kernel runs one instance at a time) has
exactly one thread, a constant; every other declaration any number. So the
proof covers every number of instances of every non-serial thread, each
running its operations any number of times. Each step is enumerated path by
path from the lowered instructions.

Defects: a defect at the scheduling point that begins a step (a lock taken
again, released unheld, a null instance there, sleeping with a spinlock held) leaves the state as it was,
and a thread that never moves again is one the interleavings may simply never
schedule: it needs no case of its own. A defect later in the step (an assert,
a null element, a lock held at a return, an unguarded access) would keep the
step's effects so far: each is a proof obligation that the invariants must
discharge, or checked on the static paths (locks held at a return). A loop
head is a step boundary too: a loop that goes round inside one step becomes
one step per round, which only adds interleavings (so a proof still holds for
the explorer's steps); a `for` loop takes any remaining element next, as the
explorer does.

Candidates, kept by a Houdini fixpoint (per step path and round, one query for
each candidate whose inputs the path changes, and the others it keeps as they
were; every candidate a counterexample falsifies is dropped at once, and one
Z3 gives up on is dropped as "unknown", never as "not inductive"; quantifiers by E-matching,
and MBQI only for the model's invariants, `_check`): the model's invariants
(`unlocked(...)` as "no thread holds all the guards", for single-instance
mutexes), ownership facts (a thread at a point where every static path holds
lock L owns L; a thread owns L only at points where some path holds it, and
never a null instance), before an operation removes an element of its own from
a set, that the element is still there (`_removed_later`),
and per program point the facts a thread there may keep, those the code
before the point establishes (`_flow_facts`: branch conditions, the values
of `let`s, assignments still in effect, invariant conjuncts and their
negations after a write of what they read, a loop's element in its set,
after taking an instance of a lock per element that the thread holds it and
no other, after releasing one that it holds none); and, at each point of another operation where a
thread holds every lock of an invariant's `unlocked(...)` set, the invariant
itself (it may be false while a lock of it is held, but not through a
thread that writes none of its variables); and, for each serial thread
while it is idle, the `between operations` invariants (what only it changes). The hypothesis is instantiated
at the threads a step involves, with the facts that can matter there (the
stepping thread's at its point, the witness t1's at the goal's point, each
serial thread's, the lock owners' ownership facts), which only weakens it: a
proof stays a proof. Lemmas true in every reachable state, not candidates: a
thread inside an operation belongs to a declaration that runs it, and
`nobody` is idle (so "every thread idle" is `pc == K(idle)`).

A round asks each step path in turn; with more than one job, forked processes
share the paths of a round (`_each_path`) and the result is the same. Where a
query about a model invariant that the explorer found to hold ran out of
--smt-timeout, the fixpoint asks it again once, with what was dropped after
it, under the facts left (`_second_chance`).

The fixpoint may start from the facts an earlier run kept (`start`, by their
text: a proof's certificate, `apcheck infer --interleaved`) and the model's
invariants, instead of every candidate: if the model has not changed, the first
round drops nothing and that round is the whole proof. Starting from fewer
facts can only prove less, never more: a fact no candidate has any more is
reported, and the fixpoint goes on as usual from the others.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from itertools import count
from typing import Callable, Collection

import z3

from apcheck.diagnostics import line_of
from apcheck.ir import program as P
from apcheck.ir.lowered import (ACQUIRE, BRANCH, EXEC, FOR, JUMP, READ, RELEASE, RETURN, SCHED,
                                TRY, WAIT, YIELD, Assert, Assign, Lowered, Store, local_slots)
from apcheck.ir.types import BoolT, ElemT, SetT, Type
from apcheck.locks.static import loop_heads, static_edges
from apcheck.smt.symbolic import Executor, NotTranslatable, Universe, initial_state

IDLE = -1
TIMED_OUT = "timed out"   # `_broken`'s answer for a candidate whose query ran out of --smt-timeout
BUDGET_FACTOR = 3  # the whole fixpoint gets this many --smt-timeout
MAX_WORK = 40_000  # candidate facts x step paths: beyond, the fixpoint takes minutes to hours


@dataclass
class Path:
    """One way a step can go: from `start` (IDLE: an operation's entry) to `end` (IDLE: returned)."""

    start: int
    op: int
    cond: list            # path condition (pre-state terms of the stepping thread)
    obligations: list     # (formula, what): must hold where the path is taken
    globals: dict         # Var -> post term
    slots: dict           # slot -> post term (the stepping thread's locals of `op`)
    owner: dict           # lock class -> post owner term
    readers: dict         # lock class -> post readers term
    end: int


@dataclass(frozen=True)
class Reads:
    """What a candidate's truth depends on: a step that changes none of it keeps the candidate
    (it is among the hypotheses, at the same threads), so the step need not re-establish it."""

    globals: frozenset = frozenset()   # state variables
    locks: frozenset = frozenset()     # lock classes (owners and readers)
    point: int | None = None           # a thread's fact at this label: read through its pc and locals
    pcs: bool = False                  # reads the program points of threads other than its own


@dataclass
class Candidate:
    text: str
    fn: object                 # (state, thread term) -> BoolRef; thread None for a global candidate
    threaded: bool
    prop: str | None = None    # the model's invariant it is
    reads: Reads = Reads(pcs=True)
    thorough: bool = False     # asked again with MBQI where E-matching gives up, as a model invariant
                               # is (the spec's loop invariants: few, and written by hand)


@dataclass
class InterleavedResult:
    status: str                                    # proved | not-proved | untranslatable | unknown
    message: str
    proved: list[str] = field(default_factory=list)   # the model's invariants proved
    kept: list[str] = field(default_factory=list)     # every candidate left (the inductive invariant)
    dropped: dict[str, str] = field(default_factory=dict)  # model invariant -> why it was dropped
    unmatched: list[str] = field(default_factory=list)  # facts of `start` that no candidate has
    tried: bool = True                             # False: too large for the default budget, not tried


class Crashed:
    """The answer for a step path whose forked process died while Z3 was asked about it (libz3
    crashed): the candidates the path may break count as given up."""


class _State:
    """A symbolic state: globals, per-thread arrays, lock owners and readers."""

    def __init__(self, globals_: dict, pc, slots: dict, owner: dict, readers: dict):
        self.globals, self.pc, self.slots, self.owner, self.readers = globals_, pc, slots, owner, readers
        self.facts: dict[int, z3.BoolRef] = {}   # a fact of the state variables alone, by its expression
        self.locals: dict[tuple, z3.ExprRef] = {}   # (operation, slot, thread) -> the thread's local there


def prove_interleaved(lowered: Lowered, timeout_s: float = 10.0, budget_s: float | None = None,
                      progress: Callable[[str], None] | None = None, jobs: int = 1,
                      start: Collection[str] | None = None, ask_again: Collection[str] = ()) -> InterleavedResult:
    """Z3's induction over the interleaved system for any number of threads (see the module doc).
    `budget_s`: seconds for the whole fixpoint, tried at any size (default: BUDGET_FACTOR times the
    query timeout, and not tried beyond MAX_WORK); `progress` is told of each round and, in a long
    one, of the step paths done; `jobs`: processes that share a round's step paths (0: one per
    core). The result does not depend on `jobs`. `start`: begin from the candidates with these
    texts (an earlier run's `kept`) and the model's invariants, instead of every candidate.
    `ask_again`: the model invariants worth a second chance where a query about them timed out
    (those the explorer found to hold; `_second_chance`)."""
    try:
        return _Interleaved(lowered, int(timeout_s * 1000)).run(budget_s, progress, jobs, start, ask_again)
    except NotTranslatable as err:
        return InterleavedResult(status="untranslatable", message=str(err))


class _Interleaved:
    def __init__(self, lowered: Lowered, timeout_ms: int):
        self.low = lowered
        self.p = lowered.program
        self.code = lowered.code
        self.timeout = timeout_ms
        self.u = Universe(self.p)
        self.T = z3.DeclareSort("Thread")
        self.nobody = z3.Const("nobody", self.T)
        self.t0 = z3.Const("t0", self.T)   # the thread that steps
        self.t1 = z3.Const("t1", self.T)   # the thread a candidate is asked at after the step
        self.names = count()
        self.slot_types = self._slot_types()
        self.held = self._static_held()
        self.heads = loop_heads(lowered)
        entries = {op.entry for op in lowered.ops} - self.heads  # an idle thread's step runs its entry:
        self.labels = [IDLE] + [pc for pc, ins in enumerate(self.code)  # no thread ever waits there
                                if (ins.kind in SCHED or pc in self.heads) and pc not in entries]
        self.pre = self._fresh_state("pre")
        self.decls = self.p.system.threads
        self.ctx = z3.Function("ctx", self.T, z3.IntSort())   # a thread's declaration
        self.serial = {k: z3.Const(f"serial_{d.name}", self.T) for k, d in enumerate(self.decls) if d.serial}
        self.decls_of = [[k for k, d in enumerate(self.decls) if op.name in d.ops] for op in lowered.ops]
        self._pre_cache: dict[tuple, z3.BoolRef] = {}   # (candidate, thread) -> its pre-state hypothesis
        self._lits: dict[int, z3.BoolRef] = {}    # candidate -> the literal of its hypotheses
        self._cand_of: dict[str, int] = {}        # and back, by the literal's name
        self._proofs: dict[int, set] = {}         # step path -> the candidates its proof used
        self._told = time.monotonic()             # the last line of progress
        self._where: dict[int, str] | None = None   # label -> "a thread in <op> at line N ...", one text each
        self.track_proofs = False                 # keep unsat cores (from the second round on: with
                                                  # a literal per candidate assumed, a query is slower)

    # ---- layout ----------------------------------------------------------------------

    def _slot_types(self) -> list[dict[int, Type]]:
        """Per operation: the type of each local slot (from the locals the instructions name)."""
        out: list[dict[int, Type]] = []
        for i, op in enumerate(self.low.ops):
            types: dict[int, Type] = {}
            for pc in range(len(self.code)):
                if self.low.op_of_pc[pc] != i:
                    continue
                for local, slot in self.code[pc].env.items():
                    if local.kind != "binder":
                        types.setdefault(slot, local.type)
            for (_, t), slot in zip(op.params, op.param_slots):
                types[slot] = t
            out.append(types)
        return out

    def _fresh_state(self, tag: str) -> _State:
        g = {v: z3.Const(f"{v.name}@{tag}", self.u.sort_of(v.type, v.span)) for v in self.p.vars}
        pc = z3.Array(f"pc@{tag}", self.T, z3.IntSort())
        slots = {}
        for i, types in enumerate(self.slot_types):
            for slot, t in types.items():
                try:
                    sort = self.u.sort_of(t)
                except NotTranslatable:
                    continue  # a slot nothing translatable reads (checked where it is read)
                slots[(i, slot)] = z3.Array(f"{self.low.ops[i].name}.{slot}@{tag}", self.T, sort)
        owner, readers = {}, {}
        for c, cls in enumerate(self.low.locks):  # a spinlock excludes as a mutex does
            key = [self.u.sorts[cls.per]] if cls.per else []
            owner[c] = z3.Const(f"owner_{c}@{tag}", z3.ArraySort(*key, self.T) if key else self.T)
            if cls.kind == "rwsem":
                who = z3.ArraySort(self.T, z3.BoolSort())
                readers[c] = z3.Const(f"readers_{c}@{tag}", z3.ArraySort(*key, who) if key else who)
        return _State(g, pc, slots, owner, readers)

    def _static_held(self) -> dict[int, tuple[frozenset[int], frozenset[int]]]:
        """Per scheduling point: the lock classes every static path holds there, and those some path
        holds (locks/static.py, path-sensitive). No path may return holding a lock: that defect keeps
        the step's effects, and the static paths are where it is ruled out."""
        static = static_edges(self.low)
        for pc, c in sorted(static.return_holding.items()):
            raise NotTranslatable(self.code[pc].span, f"a path that returns holding {self.low.locks[c].name}")
        return {pc: (static.must_hold[pc], static.may_hold.get(pc, frozenset())) for pc in static.must_hold}

    # ---- steps, path by path -------------------------------------------------------------

    def paths(self, start: int) -> list[Path]:
        """Every path of a step of thread t0 from the label `start` (IDLE: any operation's entry)."""
        out: list[Path] = []
        if start == IDLE:
            for i, op in enumerate(self.low.ops):
                if not self.decls_of[i]:
                    continue  # no thread runs it
                slots = {s: self._arg(i, s) for s in self.slot_types[i]}
                args = [self.u.wf(t, slots[s]) for (_, t), s in zip(op.params, op.param_slots)]
                args.append(z3.Or([self.ctx(self.t0) == k for k in self.decls_of[i]]))
                self._walk(op.entry, True, i, start, args, [], dict(self.pre.globals), slots,
                           dict(self.pre.owner), dict(self.pre.readers), out, set(), False)
        else:
            i = self.low.op_of_pc[start]
            slots = {s: z3.Select(self.pre.slots[(i, s)], self.t0) for s in self.slot_types[i]
                     if (i, s) in self.pre.slots}
            self._walk(start, True, i, start, [], [], dict(self.pre.globals), slots,
                       dict(self.pre.owner), dict(self.pre.readers), out, set(), False)
        return out

    def _arg(self, op: int, slot: int) -> z3.ExprRef:
        t = self.slot_types[op][slot]
        return z3.Const(f"{self.low.ops[op].name}.{slot}!{next(self.names)}", self.u.sort_of(t))

    def _executor(self, ins, g: dict, slots: dict) -> Executor:
        ex = Executor(self.u, g)
        ex.frame.env = {local: slots[slot] for local, slot in ins.env.items() if slot in slots}
        return ex

    def _walk(self, pc, first, op, start, cond, obl, g, slots, owner, readers, out, visited, moved) -> None:
        """`moved`: the step has changed shared state (a state variable or a lock) so far; a defect
        after that keeps those changes, so each possible one is an obligation."""
        while True:
            ins = self.code[pc]
            k = ins.kind
            if (k in SCHED or pc in self.heads) and not first:
                out.append(Path(start, op, cond, obl, g, slots, owner, readers, pc))
                return
            if pc in visited:  # pragma: no cover - every loop has a head (loop_heads)
                raise NotTranslatable(ins.span, "a loop that goes round inside one step")
            visited = visited | {pc}
            first = False
            ex = self._executor(ins, g, slots)
            if moved:
                obl = obl + self._class_guards(ins, owner, readers)
            if k == ACQUIRE:   # first in its step: a null instance is a defect that leaves the state
                inst = self._instance(ex, ins)
                free = self._free(ins, inst, owner, readers)
                cond = cond + self._not_null(ins, inst) + [free]
                owner, readers = self._take(ins, inst, owner, readers)
                moved = True
            elif k == RELEASE:   # first in its step, as an acquire
                inst = self._instance(ex, ins)
                cond = cond + self._not_null(ins, inst)
                owner, readers = self._drop(ins, inst, owner, readers)
                moved = True
            elif k == WAIT:
                cond = cond + [ex.boolean(ins.cond)]
            elif k == YIELD:
                pass
            elif k == EXEC:
                obl = obl + self._guards(ins, ex, owner, readers)
                g2, slots, more = self._exec(ins, ex, g, slots, op)
                obl = obl + more
                moved = moved or g2 is not g
                g = g2
            elif k == BRANCH:
                obl = obl + self._guards(ins, ex, owner, readers)
                c = ex.boolean(ins.cond)
                obl = obl + self._nulls(ex, ins)
                self._walk(ins.target, False, op, start, cond + [z3.Not(c)], obl, g, slots, owner, readers,
                           out, visited, moved)
                cond = cond + [c]
            elif k == JUMP:
                pc = ins.target
                continue
            elif k == TRY:
                inst = self._instance(ex, ins)
                if moved:   # a null instance: a defect that keeps the step's effects so far
                    obl = obl + [(f, f"{self._line(ins.span)}: a lock instance that is not null")
                                 for f in self._not_null(ins, inst)]
                else:
                    cond = cond + self._not_null(ins, inst)
                free = self._free(ins, inst, owner, readers)
                self._walk(ins.target, False, op, start, cond + [z3.Not(free)], obl, g, slots, owner, readers,
                           out, visited, moved)
                cond = cond + [free]
                owner, readers = self._take(ins, inst, owner, readers)
                moved = True
            elif k == RETURN:
                obl = obl + self._guards(ins, ex, owner, readers)
                if ins.value is not None:
                    ex.expr(ins.value)
                    obl = obl + self._nulls(ex, ins)
                out.append(Path(start, op, cond, obl, g, slots, owner, readers, IDLE))
                return
            elif k == FOR:
                # the explorer takes the remaining elements in every order: any one of them next
                rem = slots.get(ins.rem)
                t = self.slot_types[op].get(ins.slot)
                if rem is None or not isinstance(t, ElemT):
                    raise NotTranslatable(ins.span, "a for loop over a set whose type is not known")
                done = rem == z3.K(self.u.sorts[t.sort], z3.BoolVal(False))
                self._walk(ins.target, False, op, start, cond + [done], obl, g, slots, owner, readers,
                           out, visited, moved)
                x = z3.Const(f"{ins.span.line}.next!{next(self.names)}", self.u.sorts[t.sort])
                cond = cond + [z3.Select(rem, x), self.u.real(t.sort, x)]
                slots = dict(slots)
                slots[ins.slot] = x
                slots[ins.rem] = z3.Store(rem, x, False)
            pc += 1

    def _line(self, span) -> str:
        return line_of(span, self.p.path)

    def _thread_at(self, pc: int) -> str:
        """Where a candidate at label `pc` is asked, one text per label: "a thread in <operation>
        at line N", with the calls that inlined the line there ("(f called at line M)": a
        function called from two places of an operation has two labels per line), and where a
        line has more than one label there (a wait that releases a lock and takes it again),
        "(point K of J)" in the order of the code."""
        if self._where is None:
            texts = {label: self._place(label) for label in self.labels[1:]}
            same: dict[str, list[int]] = {}
            for label, text in texts.items():
                same.setdefault(text, []).append(label)
            self._where = {label: text if len(same[text]) == 1 else
                           f"{text} (point {sorted(same[text]).index(label) + 1} of {len(same[text])})"
                           for label, text in texts.items()}
        return self._where[pc]

    def _place(self, pc: int) -> str:
        ins = self.code[pc]
        calls = [f"{f.function} called at {self._line(f.span)}" for f in ins.chain[1:]]
        via = f" ({', '.join(calls)})" if calls else ""
        return f"a thread in {self.low.ops[self.low.op_of_pc[pc]].name} at {self._line(ins.span)}{via}"

    def _instance(self, ex: Executor, ins):
        if ins.instance is None:
            return None
        ex.cut_nulls = False
        return ex.expr(ins.instance)

    def _not_null(self, ins, inst) -> list[z3.BoolRef]:
        """That a lock instance is not null, where it may be."""
        t = None if ins.instance is None else ins.instance.type
        return [self.u.real(t.sort, inst)] if isinstance(t, ElemT) and t.optional else []

    def _owner(self, c: int, inst, owner: dict):
        return owner[c] if inst is None else z3.Select(owner[c], inst)

    def _readers(self, c: int, inst, readers: dict):
        return readers[c] if inst is None else z3.Select(readers[c], inst)

    def _no_readers(self, c: int, inst, readers: dict) -> z3.BoolRef:
        return self._readers(c, inst, readers) == z3.K(self.T, z3.BoolVal(False))

    def _free(self, ins, inst, owner, readers) -> z3.BoolRef:
        c = ins.lock
        parts = [self._owner(c, inst, owner) == self.nobody]
        if c in readers and ins.mode != READ:
            parts.append(self._no_readers(c, inst, readers))
        if c in readers and ins.mode == READ:
            parts.append(z3.Not(z3.Select(self._readers(c, inst, readers), self.t0)))
        return z3.And(parts)

    def _take(self, ins, inst, owner, readers):
        c = ins.lock
        owner, readers = dict(owner), dict(readers)
        if ins.mode == READ:
            new = z3.Store(self._readers(c, inst, readers), self.t0, True)
            readers[c] = new if inst is None else z3.Store(readers[c], inst, new)
        else:
            owner[c] = self.t0 if inst is None else z3.Store(owner[c], inst, self.t0)
        return owner, readers

    def _drop(self, ins, inst, owner, readers):
        c = ins.lock
        owner, readers = dict(owner), dict(readers)
        mine = self._owner(c, inst, owner) == self.t0
        was = owner[c]
        owner[c] = z3.If(mine, self.nobody, was) if inst is None else \
            z3.If(mine, z3.Store(was, inst, self.nobody), was)
        if c in readers:
            gone = z3.Store(self._readers(c, inst, readers), self.t0, False)
            new = gone if inst is None else z3.Store(readers[c], inst, gone)
            readers[c] = z3.If(mine, readers[c], new)
        return owner, readers

    def _holds(self, c: int, inst, owner, readers, t) -> z3.BoolRef:
        o = self._owner(c, inst, owner)
        if c in readers:
            return z3.Or(o == t, z3.Select(self._readers(c, inst, readers), t))
        return o == t

    def _guards(self, ins, ex: Executor, owner, readers) -> list:
        """The per-instance guard checks of an instruction inside a step, as obligations (the
        class-level checks are the static paths': see `_static_held`)."""
        out = []
        for guard in ins.guards:
            if not guard.per_instance:
                continue
            parts = []
            for c, at in zip(guard.locks, guard.at):
                if at is None:
                    continue
                if not isinstance(at, P.Expr):
                    raise NotTranslatable(ins.span, f"a guard of '{guard.var}' on every instance")
                ex.cut_nulls = False
                parts.append(self._holds(c, ex.expr(at), owner, readers, self.t0))
            if parts:
                what = (f"{self._line(ins.span)}: {'writes' if guard.write else 'reads'} '{guard.var}' "
                        "holding its lock instance")
                out.append((z3.And(parts) if guard.write else z3.Or(parts), what))
        return out

    def _class_guards(self, ins, owner, readers) -> list:
        """The class-level guard checks of an instruction (a read needs some instance of one of the
        classes held, a write every class), as obligations."""
        out = []
        for guard in ins.guards:
            held = [self._holds_class(c, owner, readers) for c in guard.locks]
            what = f"{self._line(ins.span)}: {'writes' if guard.write else 'reads'} '{guard.var}' holding its guard"
            out.append((z3.And(held) if guard.write else z3.Or(held), what))
        return out

    def _holds_class(self, c: int, owner, readers) -> z3.BoolRef:
        cls = self.low.locks[c]
        if cls.per is None:
            return self._holds(c, None, owner, readers, self.t0)
        x = z3.Const(f"inst{next(self.names)}", self.u.sorts[cls.per])
        return z3.Exists([x], self._holds(c, x, owner, readers, self.t0))

    def _nulls(self, ex: Executor, ins) -> list:
        found = [(a, f"{self._line(ins.span)}: an element that is not null") for a in ex.assumptions]
        ex.assumptions = []
        return found

    def _exec(self, ins, ex: Executor, g: dict, slots: dict, op: int):
        eff = ins.effect
        slots = dict(slots)
        obl = []
        if isinstance(eff, Assign):
            s = eff.stmt
            ex.assign(s, z3.BoolVal(True))
            if isinstance(s.target, P.Local):
                slots[ins.env[s.target]] = z3.simplify(ex.frame.env[s.target])
            else:
                g = dict(ex.state)
        elif isinstance(eff, Store):
            t = self.slot_types[op].get(eff.slot)
            if eff.value is None:
                slots[eff.slot] = self.u.default(t)
            else:
                slots[eff.slot] = ex.element(eff.value) if eff.element else ex.expr(eff.value, t)
        elif isinstance(eff, Assert):
            obl.append((ex.boolean(eff.cond), f"{self._line(ins.span)}: the assertion"))
        obl += self._nulls(ex, ins)
        return g, slots, obl

    # ---- candidates ------------------------------------------------------------------------

    def candidates(self) -> list[Candidate]:
        out: list[Candidate] = []
        for prop, unlocked in self.low.invariants:
            reads = Reads(_globals(prop.expr), frozenset(c for cl in unlocked for c in cl), pcs=prop.between)
            out.append(Candidate(prop.name, self._invariant(prop, unlocked), False, prop.name, reads))
        for c, cls in enumerate(self.low.locks):
            may = [pc for pc in self.labels[1:] if c in self.held[pc][1]]
            never = f", and never {cls.name}[null]" if cls.per is not None else ""
            out.append(Candidate(f"a thread owns {cls.name} only where a path holds it{never}",
                                 self._owns_only_at(c, may), True))
            if cls.per is None:
                for pc in self.labels[1:]:
                    if c in self.held[pc][0]:
                        out.append(Candidate(f"{self._thread_at(pc)} owns {cls.name}",
                                             self._owns_at(c, pc), True, reads=Reads(locks=frozenset({c}), point=pc)))
        for prop, unlocked in self.low.invariants:   # a thread that holds every guard of an unlocked()
            own = self._writers([prop])                 # set, in an operation that writes nothing the
            whole = self._global_fact(prop.expr, True)   # invariant reads, keeps it true there
            for pc in self.labels[1:]:
                if self.low.op_of_pc[pc] not in own and any(cl <= self.held[pc][0] for cl in unlocked):
                    out.append(Candidate(f"{self._thread_at(pc)}: {prop.name}",
                                         self._at(pc, whole), True, reads=Reads(_globals(prop.expr), point=pc)))
        for k, one in self.serial.items():   # a serial thread between its operations: what held when
            for part in self._between():      # every thread was idle, for what only it changes
                out.append(Candidate(f"{self.decls[k].name} when idle: {self.p.sources.snippet(part.span)}",
                                     self._idle(one, self._global_fact(part, True)), True,
                                     reads=Reads(_globals(part), point=IDLE)))
        for pc in self.labels[1:]:   # a thread at the head of a loop of the spec's loop invariants
            ins, op = self.code[pc], self.low.op_of_pc[pc]
            if ins.kind == FOR and (op, ins.rem) in self.pre.slots:
                for li in self._loop_invariants(ins):
                    out.append(Candidate(f"{self._thread_at(pc)}: {li.name}",
                                         self._at(pc, self._loop_fact(ins, li, op, False)), True,
                                         reads=Reads(_globals(li.expr), point=pc), thorough=True))
        for pc, facts in self._flow_facts().items():
            for text, fn, read, locks, thorough in facts:
                out.append(Candidate(f"{self._thread_at(pc)}: {text}",
                                     self._at(pc, fn), True, reads=Reads(read, locks, point=pc),
                                     thorough=thorough))
        return out + self._removed_later()

    def _removed_later(self) -> list[Candidate]:
        """At each point of an operation before it removes an element of its own from a set
        (`mdevs -= {m}`), that the element is still there: a removal keeps what others add back
        away (a probe of the same mdev refuses while it is allocated)."""
        out, seen = [], set()
        for q, ins in enumerate(self.code):
            st = ins.effect.stmt if ins.kind == EXEC and isinstance(ins.effect, Assign) else None
            if st is None or st.op != "-=" or st.indices or not isinstance(st.target, P.Var) \
                    or not isinstance(st.value, P.SetLiteral) or len(st.value.items) != 1 \
                    or _globals(st.value.items[0]):
                continue
            item = st.value.items[0]
            member = P.Op(type=BoolT(), span=st.span, op="in", args=[item, P.GlobalRef(type=st.target.type,
                                                                                       span=st.span, var=st.target)])
            op = self.low.op_of_pc[q]
            text = f"{self.p.sources.snippet(item.span)} in {st.target.name} (removed at {self._line(ins.span)})"
            for pc in self.labels[1:]:
                if self.low.op_of_pc[pc] == op and pc < q and (pc, text) not in seen:
                    seen.add((pc, text))
                    out.append(Candidate(f"{self._thread_at(pc)}: {text}",
                                         self._at(pc, self._local_fact(ins, member, True, op)), True,
                                         reads=Reads(frozenset({st.target}), point=pc)))
        return out

    def _writers(self, props: list[P.Property]) -> set[int]:
        """The operations that write a state variable one of these invariants reads."""
        reads = set()
        for prop in props:
            reads |= {v.name for v in P.globals_read(prop.expr)}
        out = set()
        for pc, ins in enumerate(self.code):
            eff = ins.effect
            if isinstance(eff, Assign) and isinstance(eff.stmt.target, P.Var) and eff.stmt.target.name in reads:
                out.add(self.low.op_of_pc[pc])
        return out

    def _invariant(self, prop: P.Property, unlocked):
        def fn(st: _State, t):
            ex = Executor(self.u, st.globals)
            ex.cut_nulls = False
            body = ex.boolean(prop.expr)
            masked = []  # where it is not judged: a thread holds all the guards, or is not idle
            for classes in unlocked:
                for c in classes:
                    if self.low.locks[c].per is not None or self.low.locks[c].kind == "rwsem":
                        raise NotTranslatable(prop.span, f"unlocked() over {self.low.locks[c].name}, which is "
                                                         "not a single mutex")
                first, *rest = sorted(classes)
                masked.append(z3.And([st.owner[first] != self.nobody]
                                     + [st.owner[c] == st.owner[first] for c in rest]))
            if prop.between:  # judged only where every thread is idle (`nobody` always is: see _solver)
                masked.append(st.pc != z3.K(self.T, z3.IntVal(IDLE)))
            return z3.Implies(z3.Not(z3.Or(masked)), body) if masked else body
        return fn

    def _owns_only_at(self, c: int, may: list[int]):
        cls = self.low.locks[c]

        def fn(st: _State, t):
            at = z3.Or([st.pc[t] == pc for pc in may]) if may else z3.BoolVal(False)
            if cls.per is None:
                owns = st.owner[c] == t
                if c in st.readers:
                    owns = z3.Or(owns, z3.Select(st.readers[c], t))
                return z3.Implies(owns, at)
            x = z3.Const(f"inst{next(self.names)}", self.u.sorts[cls.per])
            owns = z3.Select(st.owner[c], x) == t
            if c in st.readers:
                owns = z3.Or(owns, z3.Select(z3.Select(st.readers[c], x), t))
            return z3.ForAll([x], z3.Implies(owns, z3.And(at, self.u.real(cls.per, x))))
        return fn

    def _owns_at(self, c: int, pc: int):
        def fn(st: _State, t):
            owns = st.owner[c] == t
            if c in st.readers:
                owns = z3.Or(owns, z3.Select(st.readers[c], t))
            return z3.Implies(st.pc[t] == pc, owns)
        return fn

    def _idle(self, one, fact):
        def fn(st: _State, t):
            return z3.Implies(z3.And(t == one, st.pc[t] == IDLE), fact(st, t))
        return fn

    def _at(self, pc: int, fact):
        def fn(st: _State, t):
            return z3.Implies(st.pc[t] == pc, fact(st, t))
        return fn

    def _flow_facts(self) -> dict[int, list[tuple[str, object, frozenset, frozenset, bool]]]:
        """Per label: the facts a thread there may keep, (text, fn(state, thread), the state
        variables it reads): what some path of its operation from the entry to the label
        establishes, and no write of a local it reads has undone since (a forward data flow over
        the operation's instructions, so a label gets only the facts of the code before it).
        Established: at the entry, each conjunct of the `between operations` invariants (they
        held where the thread was idle); after a branch, each conjunct of its condition, or the
        negation of each disjunct (so `a in host_apm` outlives a write of `bound`); after a
        `let` or a store of a local, `x == e`; after an assignment to a state variable, that it
        is still in effect (doing it again would change nothing: `bound[a, d] := vfio` gives
        `bound[a, d] == vfio`, `linked -= {(a, d)}` that (a, d) is not in `linked`), and each
        conjunct of the model's invariants that reads the variable, and its negation; after
        taking a lock of an invariant's `unlocked(...)` set, each conjunct of it (it held while
        the lock was free), and after an acquire of a lock per element under a branch condition,
        "where <condition>, holds <instance>" (`_held_where`); after a `for` loop takes an
        element, that it is in the loop's set, and where the loop ends, that it took every
        element (with the copy of the set made at its entry, a loop that returns from its first
        round ends only where the set was empty) and, in its body, that the element taken is no
        longer in the remaining set, and at its head and in its body, that the remaining set is
        within the set it was copied from (read again), and the spec's loop invariants of the loop,
        in its body with the element taken not done yet and, as the round's work may need until
        its end, with it done (one may hold where the other fails), and after it with every
        element done
        (`_loop_fact`; at the loop's head they are candidates of their own); and from an
        operation's entry to each of its loops, the loop's invariants with nothing done.
        A local keeps its facts where it is dead: the induction, unlike the explorer, does not
        reset it."""
        facts: list[tuple] = []   # (text, fn, globals, local slots and ("lock", class) it dies with, locks,
                                  # asked with MBQI too: `Candidate.thorough`, the label establishing it)
        here = IDLE   # the instruction whose facts `add` makes (IDLE: the operation's entry)

        def add(text, fn, reads, slots, locks=frozenset(), thorough=False) -> frozenset[int]:
            facts.append((text, fn, reads, frozenset(slots), locks, thorough, here))
            return frozenset([len(facts) - 1])

        entry = frozenset()
        conjuncts = [part for prop, _ in self.low.invariants for part in _conjuncts(prop.expr)]
        for part in self._between():
            entry |= add(self.p.sources.snippet(part.span), self._global_fact(part, True), _globals(part), ())
        edges: dict[int, list[tuple]] = {}   # pc -> (successor, facts established, local slots written)
        domains: dict[int, tuple] = {}   # slot -> (the instruction storing a loop's set there, the set)
        tests: dict[int, frozenset[int]] = {}   # pc -> the conditions of the branches that jump there
        ahead: dict[int, frozenset[int]] = {}   # operation -> its loops' invariants as at their entry
        rests = {(self.low.op_of_pc[pc], ins.rem) for pc, ins in enumerate(self.code) if ins.kind == FOR}
        own: dict[int, frozenset[int]] = {}   # loop head -> its invariants with the element taken done, which
        # come round to it: the head's own candidate (`candidates`), not a flow fact there
        for pc, ins in enumerate(self.code):
            op, k, eff, here = self.low.op_of_pc[pc], ins.kind, ins.effect, pc
            gen: frozenset[int] = frozenset()
            wr: set[int] = set()   # a dead slot keeps its value here (no reset, unlike the explorer)
            taken = used_up = frozenset()
            if k == EXEC and isinstance(eff, Store):
                wr.add(eff.slot)
                if eff.value is not None:
                    domains[eff.slot] = (ins, eff.value)
                if eff.value is not None and isinstance(self.slot_types[op].get(eff.slot), (ElemT, BoolT, SetT)) \
                        and (op, eff.slot) in self.pre.slots:
                    name = _local_name(ins, eff.slot).replace("$rest", " (the loop's set)")
                    gen = add(f"{name} == {self.p.sources.snippet(eff.value.span)}",
                              self._copy_fact(ins, eff.slot, eff.value, op), _globals(eff.value),
                              ins.reads | {eff.slot})
                    if (op, eff.slot) in rests:   # a loop's set: what it has left, too
                        gen |= self._within(ins, eff.slot, eff.value, op, add)
            elif k == EXEC and isinstance(eff, Assign) and isinstance(eff.stmt.target, P.Local):
                st = eff.stmt
                slot = ins.env.get(st.target)
                if slot is not None:
                    wr.add(slot)
                if slot is not None and st.op == ":=" and not st.indices \
                        and isinstance(st.target.type, (ElemT, BoolT)):
                    gen = add(f"{st.target.name} == {self.p.sources.snippet(st.value.span)}",
                              self._copy_fact(ins, slot, st.value, op), _globals(st.value), ins.reads | {slot})
            elif k == EXEC and isinstance(eff, Assign):
                st = eff.stmt
                read = _globals(st.value) | {st.target} | {v for i in st.indices for v in _globals(i)}
                gen = add(f"{self.p.sources.snippet(st.span)} still in effect", self._in_effect(ins, op),
                          frozenset(read), ins.reads)
                for part in conjuncts:
                    if st.target in _globals(part):
                        text = self.p.sources.snippet(part.span)
                        gen |= add(text, self._global_fact(part, True), _globals(part), ())
                        gen |= add(f"not {text}", self._global_fact(part, False), _globals(part), ())
            elif k == FOR:   # the element taken writes its slot and the remaining set: `edges`
                wr.add(("loop", pc))
                for li in self._loop_invariants(ins):   # from the operation's entry to the loop's
                    ahead[op] = ahead.get(op, frozenset()) | add(
                        f"{li.name}, as at the entry of the loop at {self._line(ins.span)}",
                        self._loop_fact(ins, li, op, None), _globals(li.expr),
                        local_slots(ins.env, [li.expr], frozenset({li.done})) | {("loop", pc)}, thorough=True)
                if (op, ins.rem) in self.pre.slots:
                    used_up = add(f"the loop at {self._line(ins.span)} has taken every element",
                                  self._used_up(ins.rem, op), frozenset(), {ins.rem})
                    if (op, ins.slot) in self.pre.slots:
                        taken |= add(f"{_local_name(ins, ins.slot)} is no longer in the loop's set",
                                     self._taken(ins, op), frozenset(), {ins.slot, ins.rem})
                    for li in self._loop_invariants(ins):   # the spec's, in the body and after
                        slots = local_slots(ins.env, [li.expr], frozenset({li.done})) | {ins.rem}
                        if (op, ins.slot) in self.pre.slots:
                            taken |= add(f"{li.name}, the element taken not done yet",
                                         self._loop_fact(ins, li, op, True), _globals(li.expr),
                                         slots | {ins.slot}, thorough=True)
                        done = add(f"{li.name}, the element taken done", self._loop_fact(ins, li, op, False),
                                   _globals(li.expr), slots, thorough=True)
                        taken, own[pc] = taken | done, own.get(pc, frozenset()) | done
                        used_up |= add(f"{li.name}, every element done", self._loop_fact(ins, li, op, False),
                                       _globals(li.expr), slots, thorough=True)
                if ins.rem in domains and (op, ins.slot) in self.pre.slots:   # the element taken is in
                    # the loop's set (read again)
                    at, dom = domains[ins.rem]
                    taken |= self._within(at, ins.rem, dom, op, add)
                    taken |= add(f"{_local_name(ins, ins.slot)} in {self.p.sources.snippet(dom.span)}",
                                self._member_fact(at, dom, ins.slot, op), _globals(dom), at.reads | {ins.slot})
            if k in (ACQUIRE, TRY, RELEASE) and self.low.locks[ins.lock].per is not None:
                wr.add(("lock", ins.lock))   # which instances the thread holds: `_holds_only`
                gen = self._holds_only(ins, op, add, released=k == RELEASE)
                if k != RELEASE and ins.instance is not None and pc in tests:
                    gen |= self._held_where(ins, op, facts, tests[pc], add)
            if k in (ACQUIRE, TRY):
                for prop, unlocked in self.low.invariants:
                    if any(ins.lock in classes for classes in unlocked):
                        for part in _conjuncts(prop.expr):
                            gen |= add(self.p.sources.snippet(part.span), self._global_fact(part, True),
                                       _globals(part), ())
            if k == BRANCH and ins.cond is not None:
                yes = no = frozenset()   # a conjunct each, or each disjunct's negation: one may
                for part in _conjuncts(ins.cond):                  # outlive the others
                    yes |= add(self.p.sources.snippet(part.span), self._local_fact(ins, part, True, op),
                               _globals(part), ins.reads)
                for part in _conjuncts(ins.cond, "||"):
                    no |= add(f"not {self.p.sources.snippet(part.span)}", self._local_fact(ins, part, False, op),
                              _globals(part), ins.reads)
                edges[pc] = [(pc + 1, yes, wr), (ins.target, no, wr)]
                tests[pc + 1] = tests.get(pc + 1, frozenset()) | yes
                tests[ins.target] = tests.get(ins.target, frozenset()) | no
            elif k == JUMP:
                edges[pc] = [(ins.target, gen, wr)]
            elif k == TRY:
                edges[pc] = [(pc + 1, gen, wr), (ins.target, frozenset(), wr - {("lock", ins.lock)})]
            elif k == FOR:
                edges[pc] = [(pc + 1, taken, wr | {ins.slot, ins.rem}), (ins.target, used_up, wr)]
            elif k == BRANCH:
                edges[pc] = [(pc + 1, gen, wr), (ins.target, gen, wr)]
            elif k == RETURN:
                edges[pc] = []
            else:
                edges[pc] = [(pc + 1, gen, wr)]
        held: dict[int, frozenset[int]] = {op.entry: entry | ahead.get(i, frozenset())
                                           for i, op in enumerate(self.low.ops)}
        work = list(held)
        while work:
            pc = work.pop()
            for succ, gen, written in edges[pc]:
                new = frozenset(i for i in held[pc] if not facts[i][3] & written) | gen
                if succ not in held or not new <= held[succ]:
                    held[succ] = held.get(succ, frozenset()) | new
                    work.append(succ)
        out = {}
        for pc in self.labels[1:]:
            texts = {}   # one fact per text and locals (two branches may test the same condition)
            for i in sorted(held.get(pc, frozenset()) - own.get(pc, frozenset())):
                text, fn, reads, slots, locks, thorough, at = facts[i]
                texts.setdefault((text, slots), (text, fn, reads, locks, thorough, at))
            out[pc] = self._told_apart(list(texts.values()))
        return out

    def _told_apart(self, facts: list[tuple]) -> list[tuple]:
        """The facts of one label with one text each, as a facts file names them: a text that
        reads other locals than another of the same text (an `m` of a callee's and the loop's `m`)
        says where the fact was made ("(from line N)", and "#2" on after that)."""
        by_text = Counter(text for text, *_ in facts)
        seen: Counter = Counter()
        out = []
        for text, fn, reads, locks, thorough, at in facts:
            if by_text[text] > 1:
                text = f"{text} (from {'the entry' if at == IDLE else self._line(self.code[at].span)})"
                seen[text] += 1
                text = text if seen[text] == 1 else f"{text} #{seen[text]}"
            out.append((text, fn, reads, locks, thorough))
        return out

    def _held_where(self, ins, op: int, facts: list[tuple], tests: frozenset[int], add) -> frozenset[int]:
        """For an acquire of a lock per element that a branch jumps to: per condition of the
        branch (`tests`, fact indices), "where <condition>, holds the instance". Unlike "holds the
        instance", it outlives the join with the path that skipped the acquire because the
        condition was false: `if mdev_kvm[m] != null { acquire kvm->lock[mdev_kvm[m]] }` leaves
        "where mdev_kvm[m] != null, holds kvm->lock[mdev_kvm[m]]" on both paths."""
        c, cls = ins.lock, self.low.locks[ins.lock]
        which = self.p.sources.snippet(ins.instance.span)
        held, out = self._held(ins, op), frozenset()
        for i in sorted(tests):
            text, test, reads, slots = facts[i][:4]
            out |= add(f"where {text}, holds {cls.name}[{which}]",
                       lambda st, t, test=test: z3.Implies(test(st, t), held(st, t)),
                       reads | _globals(ins.instance), slots | ins.reads | {("lock", c)}, frozenset({c}))
        return out

    def _held(self, ins, op: int):
        """A thread holds the instance that the lock instruction `ins` names."""
        def held(st: _State, t):
            return self._holds(ins.lock, self._instance(self._thread_executor(ins, st, t, op), ins),
                               st.owner, st.readers, t)
        return held

    def _holds_only(self, ins, op: int, add, released: bool = False) -> frozenset[int]:
        """After taking an instance of a lock per element: that the thread holds it, and no other
        instance of the class; after releasing one: that it holds none (true where it takes one
        at a time). Until its next acquire or release of the class, or a write of a local the
        instance reads."""
        c, cls = ins.lock, self.low.locks[ins.lock]
        if ins.instance is None:
            return frozenset()
        which = self.p.sources.snippet(ins.instance.span)
        read, slots, locks = _globals(ins.instance), ins.reads | {("lock", c)}, frozenset({c})
        held = self._held(ins, op)

        def held_only(st: _State, t):
            x = z3.Const(f"inst{next(self.names)}", self.u.sorts[cls.per])
            inst = self._instance(self._thread_executor(ins, st, t, op), ins)
            return z3.ForAll([x], z3.Implies(self._holds(c, x, st.owner, st.readers, t), x == inst))

        def held_none(st: _State, t):
            x = z3.Const(f"inst{next(self.names)}", self.u.sorts[cls.per])
            return z3.ForAll([x], z3.Not(self._holds(c, x, st.owner, st.readers, t)))
        if released:
            return add(f"holds no {cls.name}", held_none, frozenset(), slots, locks)
        return add(f"holds {cls.name}[{which}]", held, read, slots, locks) | \
            add(f"holds no {cls.name} but [{which}]", held_only, read, slots, locks)

    def _between(self) -> list[P.Expr]:
        """The conjuncts of the `between operations` invariants."""
        return [part for prop, _ in self.low.invariants if prop.between for part in _conjuncts(prop.expr)]

    def _loop_invariants(self, ins) -> list[P.LoopInvariant]:
        """The spec's loop invariants at the `for` loop of the FOR instruction `ins`."""
        return [li for li in self.p.loop_invariants if li.loop.span == ins.span]

    def _loop_fact(self, ins, li: P.LoopInvariant, op: int, inside: bool | None):
        """The loop invariant `li` of the FOR instruction `ins`, with `done` the elements the loop
        has taken: those not remaining, and where `inside` (in the body), not the one taken either;
        where `inside` is None (before the loop), none. (An element never in the loop's set counts
        as taken too: the set copied at the loop's entry is not kept. The candidate is checked
        as any other.)"""
        sort = self.u.sort_of(li.done.type).domain()

        def fn(st: _State, t):
            ex = self._thread_executor(ins, st, t, op)
            x = z3.Const(f"done{next(self.names)}", sort)
            if inside is None:
                taken = z3.BoolVal(False)
            else:   # a lambda, so that a read of `done` is a read of the remaining set (what
                taken = z3.Not(z3.Select(self._local(st, op, ins.rem, t), x))   # E-matching matches)
            if inside:
                taken = z3.And(taken, x != self._local(st, op, ins.slot, t))
            ex.frame.env[li.done] = z3.Lambda([x], taken)
            return ex.boolean(li.expr)
        return fn

    def _taken(self, ins, op: int):
        """The element a for loop (the FOR instruction `ins`) took is not in its remaining set."""
        def fn(st: _State, t):
            return z3.Not(z3.Select(self._local(st, op, ins.rem, t), self._local(st, op, ins.slot, t)))
        return fn

    def _used_up(self, rem: int, op: int):
        """A for loop's remaining set (in slot `rem`) is empty."""
        sort = self.pre.slots[(op, rem)].sort().range()

        def fn(st: _State, t):
            return self._local(st, op, rem, t) == z3.K(sort.domain(), z3.BoolVal(False))
        return fn

    def _member_fact(self, at, dom: P.Expr, slot: int, op: int):
        """The element in `slot` is in the set `dom` (read by the instruction `at`)."""
        def fn(st: _State, t):
            ex = self._thread_executor(at, st, t, op)
            return z3.Select(ex.expr(dom), self._local(st, op, slot, t))
        return fn

    def _within(self, at, slot: int, value: P.Expr, op: int, add) -> frozenset[int]:
        """The set in `slot` is within `value` (read again) where the store `at` put it: true
        after a `for` loop takes an element from its set, so the element is in `value` too."""
        t_slot = self.slot_types[op][slot]

        def fn(st: _State, t):
            ex = self._thread_executor(at, st, t, op)
            return z3.IsSubset(self._local(st, op, slot, t), ex.expr(value, t_slot))
        name = _local_name(at, slot).replace("$rest", " (the loop's set)")
        return add(f"{name} <= {self.p.sources.snippet(value.span)}", fn, _globals(value), at.reads | {slot})

    def _in_effect(self, ins, op: int):
        """Doing the assignment of `ins` again would leave its state variable as it is."""
        st = ins.effect.stmt

        def fn(state: _State, t):
            ex = self._thread_executor(ins, state, t, op)
            ex.assign(st, z3.BoolVal(True))
            return ex.state[st.target] == state.globals[st.target]
        return fn

    def _global_fact(self, e: P.Expr, positive: bool):
        """A fact of the state variables alone: translated once per state (the same conjunct is a
        candidate at many points)."""
        def fn(st: _State, t):
            if id(e) not in st.facts:
                ex = Executor(self.u, st.globals)
                ex.cut_nulls = False
                st.facts[id(e)] = ex.boolean(e)
            b = st.facts[id(e)]
            return b if positive else z3.Not(b)
        return fn

    def _thread_executor(self, ins, st: _State, t, op: int) -> Executor:
        ex = Executor(self.u, st.globals)
        ex.cut_nulls = False
        ex.frame.env = {local: self._local(st, op, slot, t) for local, slot in ins.env.items()
                        if (op, slot) in st.slots}
        return ex

    def _local(self, st: _State, op: int, slot: int, t) -> z3.ExprRef:
        """Thread t's local in `slot` of operation `op`, built once per state."""
        key = (op, slot, t.get_id())
        if key not in st.locals:
            st.locals[key] = z3.Select(st.slots[(op, slot)], t)
        return st.locals[key]

    def _local_fact(self, ins, e: P.Expr, positive: bool, op: int):
        def fn(st: _State, t):
            b = self._thread_executor(ins, st, t, op).boolean(e)
            return b if positive else z3.Not(b)
        return fn

    def _copy_fact(self, ins, slot: int, value: P.Expr, op: int):
        """The local in `slot` still equals `value` (a `let` or a store of it, read again)."""
        t_slot = self.slot_types[op][slot]

        def fn(st: _State, t):
            ex = self._thread_executor(ins, st, t, op)
            return self._local(st, op, slot, t) == ex.expr(value, t_slot)
        return fn

    # ---- the fixpoint ----------------------------------------------------------------------

    def run(self, budget_s: float | None = None, progress: Callable[[str], None] | None = None,
            jobs: int = 1, start: Collection[str] | None = None,
            ask_again: Collection[str] = ()) -> InterleavedResult:
        if not self.low.invariants:
            return InterleavedResult(status="not-proved", message="no invariants")
        cands = self.candidates()
        if start is None:
            return self._fixpoint(cands, budget_s, progress, jobs, ask_again)
        res = self._fixpoint([c for c in cands if c.prop or c.text in start], budget_s, progress, jobs, ask_again)
        res.unmatched = sorted(set(start) - {c.text for c in cands})
        return res

    def _fixpoint(self, cands: list[Candidate], budget_s: float | None, progress: Callable[[str], None] | None,
                  jobs: int, ask_again: Collection[str] = ()) -> InterleavedResult:
        """Houdini from `cands`: drop what a step path breaks until nothing is; then the defect
        obligations."""
        paths = [p for label in self.labels for p in self.paths(label)]
        if budget_s is None and len(cands) * len(paths) > MAX_WORK:
            return InterleavedResult(status="unknown", message=f"not tried: {len(cands):,} candidate facts "
                                     f"over {len(paths):,} step paths, more than this induction takes on "
                                     f"({MAX_WORK:,} pairs) within its default budget (--interleaved-budget)",
                                     tried=False)
        started = time.monotonic()
        budget = f"{BUDGET_FACTOR} times the --smt-timeout" if budget_s is None else \
            f"the --interleaved-budget of {budget_s:g} s"
        deadline = started + (BUDGET_FACTOR * self.timeout / 1000 if budget_s is None else budget_s)
        if progress:
            progress(f"interleaved induction: {len(cands):,} candidate facts over {len(paths):,} step paths")
        init = self._initial()
        initially = [self._initially(c, init) if time.monotonic() <= deadline else z3.unknown for c in cands]
        alive = [c for c, res in zip(cands, initially) if res == z3.unsat]
        dropped: dict[str, str] = {c.prop: "false in the initial state" if res == z3.sat else
                                   "unknown: Z3 gave up on the initial state (--smt-timeout)"
                                   for c, res in zip(cands, initially) if c.prop and res != z3.unsat}
        self._told = started
        jobs = max(1, jobs or os.cpu_count() or 1)
        alive, lost, rounds = self._houdini(alive, paths, dropped, deadline, jobs, started, progress, 0)
        if alive is None:   # some candidates counted as given up: no fixpoint
            return InterleavedResult(status="unknown", message=f"stopped after {budget}, before "
                                     "the fixpoint", dropped=dropped)
        again = _asked_again(lost, set(ask_again))
        if again and time.monotonic() < deadline:
            alive = self._second_chance(alive, again, cands, paths, dropped, deadline, jobs, started, progress,
                                        rounds)
        proved = [c.prop for c in alive if c.prop]
        if not proved:
            return InterleavedResult(status="not-proved", message="no invariant of the model is inductive "
                                     "for the interleaved system with the candidates found", dropped=dropped)
        with_obligations = [path for path in paths if path.obligations]
        for path, what in self._each_path("_undischarged", with_obligations, alive, deadline, jobs,
                                          "defect obligations", started, progress):
            if isinstance(what, Crashed):
                return InterleavedResult(status="unknown", message=f"Z3 crashed on the defect obligations of "
                                         f"{self._step(path.start)} (its process died)", dropped=dropped)
            if what is not None:
                return InterleavedResult(
                    status="not-proved", message=f"a defect may be reachable in {self._step(path.start)}: "
                    f"{what} is not implied by the invariants", kept=[c.text for c in alive], dropped=dropped)
        if time.monotonic() > deadline:
            return InterleavedResult(status="unknown", message=f"stopped after {budget}, in the defect "
                                     "obligations", dropped=dropped)
        serial = ", ".join(self.decls[k].name for k in self.serial)
        one = f"; one thread of each serial declaration: {serial}" if serial else ""
        return InterleavedResult(status="proved", message="inductive for every size and any number of "
                                 f"threads (interleaved steps{one}; Z3 {time.monotonic() - started:.0f} s)",
                                 proved=proved,
                                 kept=[c.text for c in alive], dropped=dropped)

    def _houdini(self, alive: list[Candidate], paths: list[Path], dropped: dict[str, str], deadline: float,
                 jobs: int, started: float, progress: Callable[[str], None] | None, rounds: int,
                 wanted: set[int] | None = None) -> tuple[list[Candidate] | None,
                                                          list[tuple[int, Candidate, bool | str | None]], int]:
        """Rounds from `alive` until no step path breaks a candidate left: those left (None where
        the deadline came first, or where none of the candidates `wanted` (ids) is left), those
        dropped (the round, the candidate, and what `_broken` said: True shown broken, False or
        TIMED_OUT given up, None crashed), and the rounds so far. A model invariant dropped gets
        its reason in `dropped`."""
        lost: list[tuple[int, Candidate, bool | str | None]] = []
        while True:
            broken: set[int] = set()
            for path, found in self._each_path("_broken", paths, alive, deadline, jobs, f"round {rounds + 1}",
                                               started, progress):
                if isinstance(found, Crashed):
                    found = {i: None for goals in self._goals(path, alive).values() for i in goals}
                for i, shown in found.items():
                    if i not in broken:
                        lost.append((rounds + 1, alive[i], shown))
                    broken.add(i)
                    c = alive[i]
                    if c.prop and c.prop not in dropped:
                        dropped[c.prop] = (
                            f"not inductive: {self._step(path.start)} breaks it" if shown is True else
                            f"unknown: Z3 crashed on {self._step(path.start)} (its process died)" if shown is None
                            else f"unknown: Z3 gave up on {self._step(path.start)} (--smt-timeout)")
            if time.monotonic() > deadline:
                return None, lost, rounds
            rounds += 1
            if progress:
                progress(f"interleaved induction: round {rounds}: {len(broken):,} of {len(alive):,} facts "
                         f"dropped, {time.monotonic() - started:.0f} s")
            if not broken:
                return alive, lost, rounds
            self.track_proofs = True
            alive = [c for i, c in enumerate(alive) if i not in broken]
            if wanted is not None and not any(id(c) in wanted for c in alive):
                return None, lost, rounds

    def _second_chance(self, first: list[Candidate], again: list[Candidate], cands: list[Candidate],
                       paths: list[Path], dropped: dict[str, str], deadline: float, jobs: int, started: float,
                       progress: Callable[[str], None] | None, rounds: int) -> list[Candidate]:
        """At the fixpoint `first`, the facts `again` (`_asked_again`: the invariants whose query
        timed out and that the explorer found to hold, and what went after them) are asked again,
        once: a fixpoint from both. Its facts and `first`'s are inductive together (each was shown
        kept under a subset of them), so the union is the result. The second fixpoint gets half
        the time left, and stops as soon as it has dropped every invariant asked again (Z3 is
        deterministic: it would go on as the first did); then `first` stands."""
        if progress:
            progress(f"interleaved induction: a query about an invariant timed out: {len(again):,} facts "
                     f"dropped since asked again with the {len(first):,} left")
        back = {id(c) for c in first} | {id(c) for c in again}
        for path in paths:   # a proof kept for a path did not ask the facts added back
            changed = self._changed(path)
            if any(_affected(c.reads, path, changed) for c in again):
                self._proofs.pop(id(path), None)
        until = time.monotonic() + (deadline - time.monotonic()) / 2
        tried: dict[str, str] = {}
        second, _, _ = self._houdini([c for c in cands if id(c) in back], paths, tried, until, jobs, started,
                                     progress, rounds, {id(c) for c in again if c.prop})
        if second is None:
            if progress:
                why = "ran out of its time" if time.monotonic() > until else "dropped the invariants again"
                progress(f"interleaved induction: the second fixpoint {why}: the one before stands")
            return first
        keep = {id(c) for c in first} | {id(c) for c in second}
        for c in second:
            dropped.pop(c.prop or "", None)
        for prop, why in tried.items():   # shown broken this time: the better reason
            if prop in dropped and why.startswith("not inductive"):
                dropped[prop] = why
        return [c for c in cands if id(c) in keep]

    def _each_path(self, method: str, paths: list[Path], alive: list[Candidate], deadline: float, jobs: int,
                   what: str, started: float, progress: Callable[[str], None] | None) -> list[tuple[Path, object]]:
        """Each step path with what `method` (`_broken`: a round; `_undischarged`) says of it, in
        path order. With more than one job, forked processes share the paths: each inherits the
        translated state (warmed here first) and sends back plain data only, the answer and the
        path's unsat core (`_proofs`, by the same key: a fork keeps the objects' ids)."""
        for path in paths:   # the same terms in the same order, however many jobs
            self._hypothesis(alive, path)
        for c in alive:
            if c.threaded and c.reads.point is not None:
                self._pre_fact(c, self.t1)
        if jobs == 1 or len(paths) < 2 or "fork" not in multiprocessing.get_all_start_methods():
            found = {}
            for k, path in enumerate(paths):
                found[k] = getattr(self, method)(path, alive, deadline)
                self._tell(progress, what, k + 1, len(paths), started)
        else:
            found = self._in_children(method, paths, alive, deadline, jobs, what, started, progress)
        return [(paths[k], found[k]) for k in range(len(paths))]

    def _in_children(self, method: str, paths: list[Path], alive: list[Candidate], deadline: float, jobs: int,
                     what: str, started: float, progress: Callable[[str], None] | None) -> dict[int, object]:
        """`_each_path`'s answers from forked processes. A process that dies (libz3 has crashed
        in one) loses only its path: the paths it may have had are asked again one at a time in a
        process of their own, so that the one that kills it is found and answered `Crashed`; the
        others are asked again as before. (multiprocessing.Pool would wait for a lost answer for ever.)"""
        global _ROUND
        _ROUND = (self, method, paths, alive, deadline)
        found: dict[int, object] = {}
        todo, suspects = list(range(len(paths))), []
        try:
            while todo or suspects:
                one = bool(suspects)   # suspects: one process, in order, so the first lost one killed it
                ask = suspects if one else todo
                before = set(multiprocessing.active_children())
                with ProcessPoolExecutor(1 if one else min(jobs, len(ask)), multiprocessing.get_context("fork"),
                                         _quiet_child) as pool:
                    futures = [pool.submit(_path_in_child, k) for k in ask]
                    try:
                        for future in as_completed(futures):
                            k, answer, used = future.result()
                            found[k] = answer
                            if used is not None:
                                self._proofs[id(paths[k])] = used
                            self._tell(progress, what, len(found), len(paths), started)
                    except BrokenProcessPool:
                        pass
                    except BaseException:   # Ctrl-C, SIGTERM: the pool's processes go at once, not after
                        for proc in set(multiprocessing.active_children()) - before:   # their path
                            proc.kill()
                        raise
                lost = [k for k in ask if k not in found]
                if one:
                    if lost:
                        found[lost[0]] = Crashed()
                    todo, suspects = lost[1:] + todo, []
                else:   # the lost paths a process had: the first ones not answered, as they go in order
                    suspects, todo = lost[:2 * jobs + 2], lost[2 * jobs + 2:]
        finally:
            _ROUND = None
        return found

    def _tell(self, progress: Callable[[str], None] | None, what: str, done: int, total: int,
              started: float) -> None:
        """A line of progress in a long pass over the step paths, at most one a minute."""
        now = time.monotonic()
        if progress and done < total and now - self._told >= 60:
            self._told = now
            progress(f"interleaved induction: {what}: {done:,} of {total:,} step paths, "
                     f"{now - started:.0f} s")

    def _step(self, label: int) -> str:
        return "a step that starts an operation" if label == IDLE else \
            f"a step from {self._line(self.code[label].span)}"

    def _solver(self) -> z3.Solver:
        s = z3.Solver()
        s.set("timeout", self.timeout)
        for sort in self.p.sorts:
            x = self.u.bound([sort])[0]
            s.add(z3.Exists([x], self.u.real(sort, x)))
        s.add([self.u.wf(v.type, self.pre.globals[v]) for v in self.p.vars])
        s.add(self.t0 != self.nobody, self.t1 != self.nobody)
        s.add(self.pre.pc[self.nobody] == IDLE)  # no step is nobody's: "every thread idle" is pc == K(IDLE)
        for k, one in self.serial.items():
            u = z3.Const(f"u{k}", self.T)
            s.add(one != self.nobody, self.ctx(one) == k,
                  z3.ForAll([u], z3.Implies(self.ctx(u) == k, u == one), patterns=[self.ctx(u)]))
        return s

    def _initial(self) -> _State:
        g = initial_state(self.u, self.p)
        pc = z3.K(self.T, z3.IntVal(IDLE))
        owner, readers = {}, {}
        for c, cls in enumerate(self.low.locks):
            owner[c] = z3.K(self.u.sorts[cls.per], self.nobody) if cls.per else self.nobody
            if cls.kind == "rwsem":
                none = z3.K(self.T, z3.BoolVal(False))
                readers[c] = z3.K(self.u.sorts[cls.per], none) if cls.per else none
        return _State(g, pc, dict(self.pre.slots), owner, readers)

    def _initially(self, c: Candidate, init: _State):
        """Z3's answer to "can the candidate be false in the initial state?" (unsat: it holds there)."""
        s = self._solver()
        s.add(z3.Not(c.fn(init, self.t1)))
        return s.check()

    def _hypothesis(self, alive: list[Candidate], path: Path) -> list:
        """The candidates in the pre-state, instantiated where they can matter (fewer hypotheses
        only weaken it: a proof stays a proof): the global ones; the stepping thread's facts at
        its point (its others are vacuous there); every fact of each serial thread; the
        ownership facts of each lock's owner; and t1's facts at no particular point (its facts
        at a point are added with the goals at that point, `_broken`)."""
        owners = [o for c, o in self.pre.owner.items() if self.low.locks[c].per is None]
        threads = [self.t0, self.t1, *self.serial.values(), *owners]
        out = [self._in_its_declaration(t) for t in threads]
        for cand in alive:
            if not cand.threaded:
                out.append(self._pre_fact(cand, None))
                continue
            point = cand.reads.point
            at = [*self.serial.values()]
            if point is None or point == path.start:
                at.append(self.t0)
            if point is None:
                at.append(self.t1)
            if point is None or cand.reads.locks:
                at.extend(owners)
            out.extend(self._pre_fact(cand, t) for t in at)
        return out

    def _pre_fact(self, cand: Candidate, t) -> z3.BoolRef:
        """The candidate in the pre-state at thread t (None: a global one), translated once."""
        key = (id(cand), None if t is None else t.get_id())
        if key not in self._pre_cache:
            f = cand.fn(self.pre, t)
            f = f if t is None else z3.Implies(t != self.nobody, f)
            self._pre_cache[key] = z3.Implies(self._lit(cand), f)
        return self._pre_cache[key]

    def _in_its_declaration(self, t) -> z3.BoolRef:
        """A thread inside an operation belongs to a declaration that runs it: true in every
        reachable state (`ctx` is fixed, a thread enters an operation only from its entry, which
        checks it, and its steps stay inside), so a lemma, not a candidate."""
        key = ("ctx", t.get_id())
        if key not in self._pre_cache:
            by_op: dict[int, list[int]] = {}
            for pc in self.labels[1:]:
                by_op.setdefault(self.low.op_of_pc[pc], []).append(pc)
            self._pre_cache[key] = z3.And([
                z3.Implies(z3.Or([self.pre.pc[t] == pc for pc in pcs]),
                           z3.Or([self.ctx(t) == k for k in self.decls_of[op]]))
                for op, pcs in sorted(by_op.items())])
        return self._pre_cache[key]

    def _post(self, path: Path) -> _State:
        pc = z3.Store(self.pre.pc, self.t0, path.end)
        slots = dict(self.pre.slots)
        for s, term in path.slots.items():
            key = (path.op, s)
            if key in slots:
                slots[key] = z3.Store(slots[key], self.t0, term)
        return _State(path.globals, pc, slots, path.owner, path.readers)

    def _broken(self, path: Path, alive: list[Candidate], deadline: float = float("inf")) -> dict[int, bool | str]:
        """The candidates this step path may break, each with whether Z3 showed it (True) or gave up
        on it (False, or TIMED_OUT where --smt-timeout ran out: dropped all the same, but not
        shown to be broken). Only the candidates whose
        inputs the path changes are asked (`_affected`): first all of them in one query (t1's
        facts at each point are implications from its pc, so they go together); where that
        fails, all of a point's at once; then one query each (a model that breaks one is
        searched for others it breaks too). From the second round on, the first query assumes
        a literal per candidate (`_lit`); where it is unsat, its unsat core (the candidates the
        proof used) is kept, and in a later round, while every one of them is still a
        candidate, the proof stands and the path is not asked again (the goals are fewer, the
        hypotheses the same). The other queries take the literals as facts: with thousands of
        them assumed, each check costs more than its proof saves. Past the deadline, the rest
        count as given up."""
        lits, here = self._lit_keys(alive)
        if self._proofs.get(id(path), {None}) <= here:
            return {}
        groups = self._goals(path, alive)
        if not groups:
            return {}
        if time.monotonic() > deadline:
            return {i: False for goals in groups.values() for i in goals}
        s = self._solver()
        s.add(self.pre.pc[self.t0] == path.start)
        s.add(self._hypothesis(alive, path))
        s.add(path.cond)
        s.add([f for f, _ in path.obligations])
        if not self.track_proofs:   # the literals as facts: no unsat cores, and no cost for them
            s.add(lits)
            lits = []
        post = self._post(path)
        after = {i: alive[i].fn(post, self.t1 if alive[i].threaded else None)
                 for goals in groups.values() for i in goals}
        at: dict[int, list[int]] = {}   # t1's facts at each goal's point (the others are in `s`)
        for j, c in enumerate(alive):
            if c.threaded and c.reads.point is not None and c.reads.point in groups:
                at.setdefault(c.reads.point, []).append(j)
        s.push()
        s.add([self._pre_fact(alive[j], self.t1) for point in groups for j in at.get(point, [])])
        s.add(z3.Or([z3.Not(after[i]) for goals in groups.values() for i in goals]))
        whole = self._check(s, False, lits)
        if whole == z3.unsat and self.track_proofs:
            self._proofs[id(path)] = {self._cand_of[str(x)] for x in s.unsat_core()}
        s.pop()
        if whole == z3.unsat:
            return {}
        s.add(lits)
        out: dict[int, bool] = {}
        for point, goals in groups.items():
            if time.monotonic() > deadline:
                out.update((i, False) for i in goals if i not in out)
                continue
            s.push()
            s.add([self._pre_fact(alive[j], self.t1) for j in at.get(point, [])])
            if len(groups) > 1:
                s.push()
                s.add(z3.Or([z3.Not(after[i]) for i in goals]))
                whole = self._check(s, False, [])
                s.pop()
            for i in goals if whole != z3.unsat else ():
                if i in out:
                    continue
                if time.monotonic() > deadline:
                    out[i] = False
                    continue
                s.push()
                s.add(z3.Not(after[i]))
                res = self._check(s, alive[i].prop is not None or alive[i].thorough, [])
                if res == z3.sat:
                    m = s.model()
                    out.update((j, True) for j in goals
                               if j not in out and z3.is_false(m.eval(after[j], model_completion=True)))
                    out[i] = True
                elif res == z3.unknown:
                    out[i] = TIMED_OUT if s.reason_unknown() in ("timeout", "canceled") else False
                s.pop()
            s.pop()
        return out

    def _goals(self, path: Path, alive: list[Candidate]) -> dict[int | None, list[int]]:
        """The candidates whose inputs the path changes (`_affected`), by the point whose facts t1
        gets (None: a global candidate)."""
        changed = self._changed(path)
        groups: dict[int | None, list[int]] = {}
        for i, c in enumerate(alive):
            if _affected(c.reads, path, changed):
                groups.setdefault(c.reads.point if c.threaded else None, []).append(i)
        return groups

    def _lit(self, cand: Candidate):
        """The literal that switches a candidate's hypotheses on (an assumption of each query from
        the second round on, so that an unsat core names the candidates a proof used; one literal
        for all of a point's facts kept no proof, as some fact of each point goes every round)."""
        key = id(cand)
        if key not in self._lits:
            self._lits[key] = z3.Bool(f"cand!{len(self._lits)}")
            self._cand_of[str(self._lits[key])] = key
        return self._lits[key]

    def _lit_keys(self, alive: list[Candidate]) -> tuple[list, set]:
        """The literals of the candidates left, and their keys."""
        return [self._lit(c) for c in alive], {id(c) for c in alive}

    def _check(self, s: z3.Solver, thorough: bool, lits: list):
        """Z3's answer with quantifiers instantiated by E-matching only (MBQI off): where the
        candidate is inductive that proves it as fast, and where it is not Z3 says "unknown" at
        once instead of searching the whole timeout for a model of the quantified hypotheses
        (merged_2026's steps: 0.3 s instead of 15 s). A model invariant (`thorough`) is asked
        again with MBQI, so that its message can say "not inductive" with the step that breaks
        it where Z3 finds the counterexample."""
        s.set("smt.mbqi", False)
        res = s.check(*lits)
        if res == z3.unknown and thorough:
            s.set("smt.mbqi", True)
            res = s.check(*lits)
            s.set("smt.mbqi", False)
        return res

    def _changed(self, path: Path) -> tuple[set, set]:
        """The state variables and lock classes whose post terms on this path are not their pre
        terms (syntactically: a term rebuilt to the same value counts as changed)."""
        return ({v for v, term in path.globals.items() if not term.eq(self.pre.globals[v])},
                {c for c, term in path.owner.items() if not term.eq(self.pre.owner[c])}
                | {c for c, term in path.readers.items() if not term.eq(self.pre.readers[c])})

    def _undischarged(self, path: Path, alive: list[Candidate], deadline: float = float("inf")) -> str | None:
        """The first of the path's defect obligations the invariants left do not imply (all of
        them in one query first); None where they imply every one. Past the deadline: None (the
        caller says it stopped)."""
        if time.monotonic() > deadline:
            return None
        s = self._solver()
        s.add(self.pre.pc[self.t0] == path.start)
        s.add(self._hypothesis(alive, path))
        s.add(self._lit_keys(alive)[0])
        s.add(path.cond)
        s.push()
        s.add(z3.Or([z3.Not(f) for f, _ in path.obligations]))
        if self._check(s, True, []) == z3.unsat:
            return None
        s.pop()
        for formula, what in path.obligations:
            s.push()
            s.add(z3.Not(formula))
            if self._check(s, True, []) != z3.unsat:
                return what
            s.pop()
        return None


_ROUND: tuple | None = None   # (the induction, the method, its step paths, the candidates left, the
                              # deadline): what a forked process of `_each_path` inherits


def _quiet_child() -> None:
    """A forked process ends without a word when the round's pool terminates it (SIGTERM), and
    leaves Ctrl-C to the parent, which stops the pool (the CLI's handlers would raise here)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _path_in_child(k: int) -> tuple[int, object, set | None]:
    """In a process forked by `_each_path`: what its method says of step path k, and the path's
    unsat core."""
    ind, method, paths, alive, deadline = _ROUND
    path = paths[k]
    answer = getattr(ind, method)(path, alive, deadline)
    return k, answer, ind._proofs.get(id(path))


def _asked_again(lost: list[tuple[int, Candidate, bool | str | None]], names: set[str]) -> list[Candidate]:
    """Of the candidates a fixpoint dropped (round, candidate, what `_broken` said), those to ask
    again: each model invariant of `names` whose query ran out of --smt-timeout (on a loaded
    machine, a proof may take longer than it), and every fact dropped in a later round than the
    first of them (it may have needed it), but those whose process crashed. Not where E-matching
    gave up at once (asked again, it gives up again), nor an invariant outside `names` (one the
    explorer violates: MBQI's search for a counterexample times out again). None where no
    invariant of `names` timed out."""
    def timed_out(c: Candidate, said) -> bool:
        return said == TIMED_OUT and c.prop in names
    first = min((r for r, c, said in lost if timed_out(c, said)), default=None)
    if first is None:
        return []
    return [c for r, c, said in lost if said is not None and (r > first or timed_out(c, said))]


def _affected(reads: Reads, path: Path, changed: tuple[set, set]) -> bool:
    """Can this step path change the candidate's truth (at the thread it is instantiated at after
    the step, t1)? Only through what it reads: for a fact at a point, when t1 is the stepping
    thread that lands there (elsewhere its implication is vacuous, and another thread's point and
    locals are as they were)."""
    if reads.pcs or reads.globals & changed[0] or reads.locks & changed[1]:
        return True
    return reads.point is not None and reads.point == path.end


def _local_name(ins, slot: int) -> str:
    """The name of the local an instruction keeps in `slot` (`slot N` for a compiler's own); a
    procedure's parameter with its line (a call passes `a` to a parameter `a`)."""
    here = [local for local, sl in ins.env.items() if sl == slot]   # shared with a callee's locals:
    local = min(here, key=lambda lc: lc.kind != "param", default=None)   # a parameter first
    if local is None:
        return f"slot {slot}"
    return f"{local.name} (parameter, line {local.span.line})" if local.kind == "param" else local.name


def _globals(e: P.Expr) -> frozenset:
    return frozenset(P.globals_read(e))


def _conjuncts(e: P.Expr, op: str = "&&") -> list[P.Expr]:
    """The operands of a chain of `op` (`&&`: the conjuncts; `||`: the disjuncts)."""
    if isinstance(e, P.Op) and e.op == op:
        return _conjuncts(e.args[0], op) + _conjuncts(e.args[1], op)
    return [e]
