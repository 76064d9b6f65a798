"""The concrete semantics: initial state and the steps each thread can take.

A state is (globals, locks, threads): globals a tuple of encoded values; locks
one int per lock instance (0 free, h+1 held exclusively by thread h, -mask
held for read by the threads in mask); threads a tuple of (pc, locals, held)
with pc -1 when idle, -2 when dead, and held a flat tuple (instance, acquiring pc, ...).

A defect ends the thread that hits it where it stands: the step's effects so
far stay, the thread is dead (it never moves again) and keeps the locks it
holds, as an oops leaves them; the other threads go on.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple

from apcheck.diagnostics import Span
from apcheck.explore.compile import NullDeref
from apcheck.explore.system import AssertionFailed, System
from apcheck.ir.lowered import ACQUIRE, BRANCH, EVERY, EXEC, FOR, JUMP, READ, RELEASE, RETURN, TRY, WAIT
from apcheck.ir.types import ElemT, errno_text

IDLE = -1
DEAD = -2   # a thread a defect ended: it holds its locks forever
MAX_LOOP_ROUNDS = 1 << 17  # loop rounds within one atomic step before it counts as endless

# who holds a lock instance, as seen by a thread that wants it (see _holder)
FREE, MINE, OTHER = 0, 1, 2


def _holder(v: int, t: int, mode: int) -> int:
    """Lock word v (0 free, t+1 writer t, -mask readers): MINE if thread t holds it, OTHER if
    another thread holds it in a mode that excludes `mode`, else FREE."""
    if v == t + 1 or (v < 0 and -v >> t & 1):
        return MINE
    if v > 0 or (v < 0 and mode != READ):
        return OTHER
    return FREE


@dataclass(frozen=True)
class Defect:
    """A model defect found while running a step."""

    kind: str      # release-not-held | lock-held-at-return | self-deadlock | unguarded | null-instance | assert
                   # | sleep-in-atomic | endless-step
    message: str
    pc: int
    span: Span
    held: tuple = ()   # what the thread held where it hit the defect (instance, acquiring pc, ...)

    @property
    def property(self) -> str:
        return "deadlock" if self.kind == "self-deadlock" else "defects"


class Outcome(NamedTuple):
    thread: int
    op: int
    args: tuple | None   # set when the step starts an operation
    start_pc: int        # the instruction the step began with (the op entry when starting)
    end_pc: int          # where the thread stopped (IDLE when it returned)
    result: int | None   # the operation's return code when it returned
    state: tuple         # the state after the step; at a defect, with the thread dead
    defect: Defect | None

    @property
    def succeeded(self) -> bool:
        """The step returned from its operation with a result that is not an error code."""
        return self.defect is None and self.end_pc == IDLE and self.result >= 0


class _DefectSignal(Exception):
    def __init__(self, kind: str, message: str, pc: int, span: Span):
        super().__init__(message)
        self.defect = Defect(kind, message, pc, span)


class Semantics:
    """The steps of the system's threads. With `trylocks_may_fail`, a trylock also takes its failing
    branch when the lock is free (another thread might hold it): the mode in which one operation
    is run alone (run_alone), for the replay of Z3's counterexamples to induction."""

    def __init__(self, system: System, merge_private_releases: bool = False, trylocks_may_fail: bool = False,
                 closure_edges: bool = False):
        self.sys = system
        self.closure_edges = closure_edges  # an edge from every held lock, not only lockdep's
        self.trylocks_may_fail = trylocks_may_fail
        self.limit_check: Callable[[], None] | None = None  # raises LimitReached (set by the search)
        self.forks = 0
        # coverage: per instruction, the times a step executed it (a scheduling point: took it); per
        # operation, the returns and the successful returns (a result that is not an error code)
        self.executed = [0] * len(system.code)
        self.returned = [0] * len(system.ops)
        self.succeeded = [0] * len(system.ops)
        # A release whose continuation touches nothing shared until the next scheduling point is a
        # left mover (Lipton): taking it at the end of the step before it, instead of as a step of
        # its own, keeps every reachable valuation, lock-order edge and deadlock. So does taking an
        # operation's uncontended leading acquires with its start (System.leads).
        self.merge = merge_private_releases
        self.code = system.code
        self.inst_class = system.inst_class
        self.lock_base = [info.base for info in system.locks]
        self.edges: dict[tuple[int, int], tuple[int, int, int]] = {}  # (A, B) -> (site A, site B, origin)
        self.origin = 0
        # op -> (origin, step): its first successful return, in the order states were expanded
        self.completed: dict[int, tuple[int, Outcome]] = {}
        # per instruction with guards: ((write?, class mask), ...) for the fast check
        self.guard_masks = [tuple((gd.write, gd.mask) for gd in ins.guards) for ins in system.code]
        # Sleeping in atomic context: acquiring a sleeping lock (mutex, rw-semaphore) or waiting while
        # a spinlock is held is a defect, as the kernel's might_sleep() reports it.
        self.spin_classes = [c for c, info in enumerate(system.locks) if info.cls.kind == "spinlock"]
        self.sleeps = [bool(self.spin_classes) and (ins.kind == WAIT or (ins.kind == ACQUIRE and
                       system.locks[ins.lock].cls.kind != "spinlock")) for ins in system.code]
        # each operation's locals at its start, per argument tuple (copied, never mutated)
        self.start_locals = [[(args, tuple(op.start_locals(args))) for args in arg_tuples]
                             for op, arg_tuples in zip(system.ops, system.arg_tuples)]

    def initial(self) -> tuple:
        n_locks = len(self.sys.inst_class)
        threads = tuple((IDLE, (), ()) for _ in self.sys.threads)
        return (self.sys.init_globals, (0,) * n_locks, threads)

    # ---- steps -------------------------------------------------------------

    def successors(self, state: tuple) -> list[Outcome]:
        out: list[Outcome] = []
        for t in range(len(self.sys.threads)):
            self.thread_steps(state, t, out)
        return out

    def thread_steps(self, state: tuple, t: int, out: list[Outcome]) -> None:
        g, locks, threads = state
        pc, l, held = threads[t]
        if pc == DEAD:
            return
        if pc != IDLE:
            self._sched_step(state, t, self.sys.op_of_pc[pc], None, pc, l, held, out)
            return
        for op_id in self.sys.threads[t].ops:
            for args, start in self.start_locals[op_id]:
                self.start(state, t, op_id, args, start, out)

    def start(self, state: tuple, t: int, op_id: int, args: tuple, start: tuple, out: list[Outcome]) -> None:
        """Idle thread t starts operation op_id with these arguments (`start`: its initial locals).
        With the reduction on, its leading acquires that no other thread contends (System.leads)
        are taken with the start."""
        entry = self.sys.ops[op_id].entry
        lead = self.sys.leads[op_id] if self.merge else ()
        first = entry + len(lead)
        if self.code[first].kind == ACQUIRE:
            # Choosing an operation has no visible effect, so the start merges with its first
            # acquire. While that lock is taken the operation cannot start: the thread stays
            # idle, holding nothing, so it can be no part of a deadlock.
            self._sched_step(state, t, op_id, args, first, start, (), out, lead)
            return
        g, locks, _ = state
        g2, locks2, l2, held2 = list(g), list(locks), list(start), []
        if lead:
            if not self._take_lead(state, t, op_id, args, lead, g2, locks2, l2, held2, out):
                return
            for pc in lead:
                self.executed[pc] += 1
        self._run(state, t, op_id, args, entry, first, g2, locks2, l2, held2, out)

    def _take_lead(self, state, t, op_id, args, lead, g, locks, l, held, out) -> bool:
        """Take an operation's leading acquires in g, locks, l, held (they never wait: where the
        acquire after them does, the operation has started and holds them in the unreduced
        system, which no other thread can tell); False where one is a defect, which ends the
        thread at its start. The caller counts them as executed once the step is taken."""
        for pc in lead:
            try:
                self._acquire(self.code[pc], pc, g, l, locks, held, t, blocking=True)
            except _DefectSignal as sig:
                out.append(self._death(state, t, op_id, args, lead[0], pc, g, locks, held,
                                       replace(sig.defect, held=tuple(held))))
                return False
            except (NullDeref, AssertionFailed) as err:
                out.append(self._death(state, t, op_id, args, lead[0], pc, g, locks, held,
                                       self._defect_of(err, pc, l, held)))
                return False
        return True

    def _sched_step(self, state, t, op_id, args, pc, l, held, out, lead: tuple[int, ...] = ()) -> bool:
        """Take the scheduling point at pc and run on; False when the thread is blocked there.
        The state is copied only once the thread can move. `lead`: an operation's leading
        acquires, taken first where pc is the acquire after them (`start`)."""
        g, locks, _ = state
        ins = self.code[pc]
        k = ins.kind
        l2 = list(l)
        begin = pc
        if lead:
            begin, g, locks, held = lead[0], list(g), list(locks), list(held)
            if not self._take_lead(state, t, op_id, args, lead, g, locks, l2, held, out):
                return True
        try:
            self._check_guards(ins, held, pc, g, l2)
            if self.sleeps[pc] and held:
                self._check_atomic(ins, held, pc)
            inst = -1
            if k == ACQUIRE:
                inst = self.instance(ins, g, l2)
                if _holder(locks[inst], t, ins.mode) == OTHER:
                    return False
            elif k == WAIT and not ins.fn(g, l2):
                return False
            self.executed[pc] += 1
            for taken in lead:
                self.executed[taken] += 1
            g2, locks2, held2 = list(g), list(locks), list(held)
            if k == ACQUIRE:
                self._acquire(ins, pc, g2, l2, locks2, held2, t, blocking=True, inst=inst)
            elif k == RELEASE:
                self._release(ins, pc, g2, l2, locks2, held2, t)
        except _DefectSignal as sig:
            out.append(self._death(state, t, op_id, args, begin, pc, g, locks, held,
                                   replace(sig.defect, held=tuple(held))))
            return True
        except (NullDeref, AssertionFailed) as err:
            out.append(self._death(state, t, op_id, args, begin, pc, g, locks, held, self._defect_of(err, pc, l2, held)))
            return True
        self._run(state, t, op_id, args, begin, pc + 1, g2, locks2, l2, held2, out)
        return True

    def _run(self, state, t, op_id, args, start, pc, g, locks, l, held, out) -> None:
        """Run atomically from pc to the next scheduling point, forking at loops. A step whose loops
        go round MAX_LOOP_ROUNDS times without reaching a scheduling point is a defect (a loop
        that never exits: the kernel would spin there forever)."""
        code = self.code
        executed = self.executed  # coverage counts (the hot loop: a local)
        rounds = 0
        try:
            while True:
                ins = code[pc]
                k = ins.kind
                if ins.guards:
                    self._check_guards(ins, held, pc, g, l)
                if k == EXEC:
                    executed[pc] += 1
                    ins.fn(g, l)
                    pc += 1
                elif k == BRANCH:
                    executed[pc] += 1
                    pc = pc + 1 if ins.fn(g, l) else ins.target
                elif k == JUMP:
                    executed[pc] += 1
                    if ins.target < pc:  # a loop goes round
                        rounds += 1
                        if rounds & 4095 == 0:
                            if self.limit_check is not None:
                                self.limit_check()
                            if rounds >= MAX_LOOP_ROUNDS:
                                raise _DefectSignal("endless-step", f"a loop goes round {rounds:,} times without "
                                                    "reaching a scheduling point: it never exits", pc, ins.span)
                    pc = ins.target
                elif k == FOR:
                    executed[pc] += 1
                    rem = l[ins.rem]
                    if not rem:
                        pc = ins.target
                        continue
                    low = (rem & -rem).bit_length() - 1
                    rest = rem & ~(1 << low)
                    other = rest
                    while other:  # fork: every other element may come first
                        b = (other & -other).bit_length() - 1
                        other &= other - 1
                        self.forks += 1
                        if self.forks & 1023 == 0 and self.limit_check is not None:
                            self.limit_check()  # one expansion can take every order of a long loop
                        l2 = list(l)
                        l2[ins.slot], l2[ins.rem] = b, rem & ~(1 << b)
                        self._run(state, t, op_id, args, start, pc + 1, list(g), list(locks), l2, list(held), out)
                    l[ins.slot], l[ins.rem] = low, rest
                    pc += 1
                elif k == TRY:
                    executed[pc] += 1
                    if self.trylocks_may_fail:
                        self._run(state, t, op_id, args, start, ins.target, list(g), list(locks), list(l),
                                  list(held), out)
                    pc = pc + 1 if self._acquire(ins, pc, g, l, locks, held, t, blocking=False) else ins.target
                elif k == RETURN:
                    result = ins.fn(g, l) if ins.fn is not None else 0
                    if held:
                        names = ", ".join(self.sys.lock_instance_name(held[i]) for i in range(0, len(held), 2))
                        raise _DefectSignal("lock-held-at-return",
                                            f"{self.sys.ops[op_id].name} returns {errno_text(result)} "
                                            f"with {names} still held", pc, ins.span)
                    executed[pc] += 1
                    self.returned[op_id] += 1
                    done = self._outcome(state, t, op_id, args, start, IDLE, result, g, locks, (IDLE, (), ()))
                    if result >= 0:
                        self.succeeded[op_id] += 1
                        if op_id not in self.completed:
                            self.completed[op_id] = (self.origin, done)
                    out.append(done)
                    return
                elif k == RELEASE and self.merge and ins.private_release:
                    executed[pc] += 1
                    self._release(ins, pc, g, l, locks, held, t)
                    pc += 1
                else:  # a scheduling point: the step ends before it
                    for slot, value in ins.dead:
                        l[slot] = value
                    out.append(self._outcome(state, t, op_id, args, start, pc, None, g, locks,
                                             (pc, tuple(l), tuple(held))))
                    return
        except _DefectSignal as sig:
            out.append(self._death(state, t, op_id, args, start, pc, g, locks, held,
                                   replace(sig.defect, held=tuple(held))))
        except (NullDeref, AssertionFailed) as err:
            out.append(self._death(state, t, op_id, args, start, pc, g, locks, held, self._defect_of(err, pc, l, held)))

    def _death(self, state, t, op_id, args, start, pc, g, locks, held, defect: Defect) -> Outcome:
        """The step that hits a defect: what it did so far stays, and the thread dies holding its locks."""
        threads = state[2]
        dead = (DEAD, (), tuple(held))
        new_threads = threads[:t] + (dead,) + threads[t + 1:]
        return Outcome(t, op_id, args, start, pc, None, (tuple(g), tuple(locks), new_threads), defect)

    def _outcome(self, state, t, op_id, args, start, end, result, g, locks, thread) -> Outcome:
        threads = state[2]
        new_threads = threads[:t] + (thread,) + threads[t + 1:]
        return Outcome(t, op_id, args, start, end, result, (tuple(g), tuple(locks), new_threads), None)

    def _defect_of(self, err: Exception, pc: int, l: list, held) -> Defect:
        if isinstance(err, NullDeref):
            ins = self.code[pc]
            null = self.sys.program.sources.snippet(err.span)
            where = self._locals_text(pc, err, l)
            if ins.kind in (ACQUIRE, RELEASE, TRY):
                lock = self.sys.locks[ins.lock].cls.name
                msg = f"takes {lock} of {null}, which is null{where}: an instance that does not exist"
            else:
                msg = f"uses {null} as an element, but it is null{where}"
            return Defect("null-instance", msg, pc, err.span, tuple(held))
        return Defect("assert", "assertion failed", pc, err.span, tuple(held))

    def _locals_text(self, pc: int, err: NullDeref, l: list) -> str:
        """The values of the locals the null expression reads, e.g. ' (m = Mdev1)'."""
        ins = self.sys.lowered.code[pc]
        parts = []
        for name, (local, slot) in sorted({lc.name: (lc, s) for lc, s in ins.env.items()}.items()):
            t = local.type
            if local.kind == "binder" or slot >= len(l) or not isinstance(t, ElemT):
                continue
            text = self.sys.program.sources.snippet(err.span)
            if re.search(rf"\b{re.escape(name)}\b", text):
                parts.append(f"{name} = {t.sort}{l[slot]}" if l[slot] >= 0 else f"{name} = null")
        return f" ({', '.join(parts)})" if parts else ""

    # ---- locks -------------------------------------------------------------

    def instance(self, ins, g, l) -> int:
        return self.lock_base[ins.lock] + (ins.index(g, l) if ins.index is not None else 0)

    def _acquire(self, ins, pc, g, l, locks, held, t, blocking: bool, inst: int = -1) -> bool:
        if inst < 0:
            inst = self.instance(ins, g, l)
        v = locks[inst]
        holder = _holder(v, t, ins.mode)
        if holder == MINE and blocking:
            what = "acquired for read by a thread that already holds it" if ins.mode == READ else \
                "acquired again by the thread that holds it"
            raise _DefectSignal("self-deadlock", f"{self.sys.lock_instance_name(inst)} {what}", pc, ins.span)
        if holder != FREE:
            return False
        new = -((-v) | (1 << t)) if ins.mode == READ else t + 1
        if blocking and held:
            # lockdep's dependency rule (check_prevs_add): from the most recent held lock back, an
            # edge from each trylock and from the first lock a blocking acquire took, then stop
            cb = self.inst_class[inst]
            for i in range(len(held) - 2, -1, -2):
                key = (self.inst_class[held[i]], cb)
                if key not in self.edges:
                    self.edges[key] = (held[i + 1], pc, self.origin)
                if self.code[held[i + 1]].kind != TRY and not self.closure_edges:
                    break
        locks[inst] = new
        held.append(inst)
        held.append(pc)
        return True

    def _release(self, ins, pc, g, l, locks, held, t) -> None:
        inst = self.instance(ins, g, l)
        for i in range(len(held) - 2, -1, -2):
            if held[i] == inst:
                del held[i:i + 2]
                v = locks[inst]
                locks[inst] = 0 if v > 0 else -((-v) & ~(1 << t))
                return
        raise _DefectSignal("release-not-held", f"releases {self.sys.lock_instance_name(inst)}, "
                            "which this thread does not hold", pc, ins.span)

    def _check_atomic(self, ins, held, pc) -> None:
        """Raise the defect if a spinlock is held where the thread would sleep."""
        for i in range(0, len(held), 2):
            if self.inst_class[held[i]] in self.spin_classes:
                what = (f"acquires {self.sys.locks[ins.lock].cls.kind} {self.sys.locks[ins.lock].cls.name}"
                        if ins.kind == ACQUIRE else "waits")
                raise _DefectSignal("sleep-in-atomic", f"{what} while holding spinlock "
                                    f"{self.sys.lock_instance_name(held[i])} (sleeping function called "
                                    "from invalid context)", pc, ins.span)

    def _check_guards(self, ins, held, pc, g, l) -> None:
        if not ins.guards:
            return
        have = 0
        inst_class = self.inst_class
        for i in range(0, len(held), 2):
            have |= 1 << inst_class[held[i]]
        ok = True
        for write, mask in self.guard_masks[pc]:
            if (have & mask != mask) if write else not have & mask:
                ok = False
                break
        if ok:  # the classes are held; where a variable is guarded per instance, check the instances
            if ins.inst_guards:
                self._check_instances(ins, held, pc, g, l)
            return
        classes = {self.inst_class[held[i]] for i in range(0, len(held), 2)}
        for guard in ins.guards:
            have = [c in classes for c in guard.locks]
            if all(have) if guard.write else any(have):
                continue
            names = [self.sys.locks[c].cls.name for c in guard.locks]
            if guard.write:
                missing = [n for n, h in zip(names, have) if not h]
                msg = f"writes '{guard.var}' without holding {', '.join(missing)} (writers must hold {' and '.join(names)})"
            else:
                msg = f"reads '{guard.var}' without holding {' or '.join(names)}"
            raise _DefectSignal("unguarded", msg, pc, ins.span)

    def _check_instances(self, ins, held, pc, g, l) -> None:
        mine = {held[i] for i in range(0, len(held), 2)}
        for guard, at in ins.inst_guards:
            need = [self._instances_needed(c, a, g, l) for c, a in zip(guard.locks, at)]
            have = [bool(n & mine) if a is None else n <= mine for n, a in zip(need, at)]
            if all(have) if guard.write else any(have):
                continue
            names = [self._needed_text(c, n, a) for c, n, a in zip(guard.locks, need, at)]
            missing = [x for x, h in zip(names, have) if not h]
            verb = "writes" if guard.write else "reads"
            raise _DefectSignal("unguarded", f"{verb} '{guard.var}' without holding {' and '.join(missing)} "
                                f"(the entry's lock instance guards it)", pc, ins.span)

    def _instances_needed(self, c: int, at, g, l) -> set[int]:
        """The instances of class c a guard asks for: any (None), every one (EVERY), or the entry's."""
        info = self.sys.locks[c]
        if at is None or at == EVERY:
            return set(range(info.base, info.base + info.count))
        return {info.base + at(g, l)}

    def _needed_text(self, c: int, need: set[int], at) -> str:
        name = self.sys.locks[c].cls.name
        if at is None:
            return name
        if at == EVERY:
            return f"every instance of {name} (the entry is not known)"
        return self.sys.lock_instance_name(next(iter(need)))

    # ---- what a blocked thread waits for ---------------------------------------

    def waiting_for(self, state: tuple, t: int) -> tuple[int, list[int]] | None:
        """The lock instance thread t waits to acquire and the threads holding it; None where t is not
        at an acquire, (-1, []) for the lock of a null instance."""
        g, locks, threads = state
        pc, l, _ = threads[t]
        if pc < 0 or self.code[pc].kind != ACQUIRE:
            return None
        try:
            inst = self.instance(self.code[pc], g, list(l))
        except NullDeref:
            return -1, []
        v = locks[inst]
        return inst, [v - 1] if v > 0 else [i for i in range(len(threads)) if (-v >> i) & 1]

    def holders_waited_for(self, state: tuple) -> dict[int, int]:
        """Per thread blocked at an acquire, the mask of the other threads holding the lock it waits for."""
        locks, threads = state[1], state[2]
        waits = {}
        for t in range(len(threads)):
            got = self.waiting_for(state, t)
            if got is not None and got[0] >= 0 and \
                    _holder(locks[got[0]], t, self.code[threads[t][0]].mode) == OTHER:
                waits[t] = sum(1 << h for h in got[1] if h != t)
        return waits

    def waits_forever(self, state: tuple) -> int:
        """The threads blocked at an acquire that wait, directly or through others, on a wait-for
        cycle of lock holders: none of them can ever move again (--first finds deadlocks with it
        during the search). A mask; 0 when there is no such cycle."""
        waits = self.holders_waited_for(state)
        left = sum(1 << t for t, m in waits.items() if m)
        changed = True
        while changed:  # a thread none of whose holders is left can still get the lock
            changed = False
            for t, m in waits.items():
                if left >> t & 1 and not m & left:
                    left &= ~(1 << t)
                    changed = True
        return left

    def defect_bound(self, state: tuple) -> int:
        """The dead threads and the threads that wait, directly or through others, for a lock one of
        them holds: none of them moves again, and a defect, not a deadlock, is why. A mask."""
        threads = state[2]
        out = 0
        for t, th in enumerate(threads):
            if th[0] == DEAD:
                out |= 1 << t
        if not out:
            return 0
        waits = self.holders_waited_for(state)
        changed = True
        while changed:
            changed = False
            for t, m in waits.items():
                if not out >> t & 1 and m & out:
                    out |= 1 << t
                    changed = True
        return out

    def lock_waited_for(self, state: tuple, t: int) -> str:
        """The lock instance thread t waits to acquire, by name."""
        inst, _ = self.waiting_for(state, t)
        return self.sys.lock_instance_name(inst) if inst >= 0 else "a lock of a null instance"

    def blocked_on(self, state: tuple, t: int) -> str:
        pc = state[2][t][0]
        if pc == IDLE:
            return "idle"
        if pc == DEAD:
            return "dead (a defect ended it)"
        ins = self.code[pc]
        if ins.kind == ACQUIRE:
            inst, holders = self.waiting_for(state, t)
            if inst < 0:
                return "a lock of a null instance"
            names = ", ".join(self.sys.threads[h].name for h in holders)
            mode = " for read" if ins.mode == READ else ""
            return f"acquire{mode} {self.sys.lock_instance_name(inst)} (held by {names})"
        if ins.kind == WAIT:
            return f"wait at {ins.span.file}:{ins.span.line}"
        return "runnable"


