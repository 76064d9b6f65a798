"""Counterexample traces: replay a path through the concrete semantics and describe each step."""
from __future__ import annotations

from apcheck.diagnostics import Sources, Span
from apcheck.explore.engine import ExploreResult
from apcheck.explore.semantics import IDLE, Outcome
from apcheck.explore.compile import NullDeref, set_elements
from apcheck.explore.system import System
from apcheck.ir.lowered import ACQUIRE, RELEASE, Lowered
from apcheck.ir.types import (BoolT, ElemT, EnumT, ErrT, MapT, SetT, TupleT, Type, errno_text)
from apcheck.results import Change, Frame, Site, Trace, TraceStep


class ReplayMismatch(Exception):
    """A stored path could not be replayed: an internal error, never a silent verdict."""


def path_to(result: ExploreResult, target: int) -> list[int]:
    path = [target]
    while result.parent[path[-1]] != -1:
        path.append(result.parent[path[-1]])
    return list(reversed(path))


def replay(result: ExploreResult, target: int) -> list[tuple[tuple, Outcome]]:
    """Concrete (state before, step) pairs from the initial state to states[target]."""
    sem, canon = result.semantics, result.canon
    cur = sem.initial()
    out = []
    for nxt in path_to(result, target)[1:]:
        want = result.states[nxt]
        for o in sem.successors(cur):
            if (canon(o.state) if canon else o.state) == want:
                break
        else:
            raise ReplayMismatch(f"no step from the replayed state reaches state {nxt}")
        out.append((cur, o))
        cur = o.state
    return out


def final_state(result: ExploreResult, steps: list[tuple[tuple, Outcome]]) -> tuple:
    return steps[-1][1].state if steps else result.semantics.initial()


def concrete_failure(result: ExploreResult, state: tuple, recorded: Outcome) -> Outcome:
    """The failing step of `recorded` (found on a canonical state), taken from the concrete `state`."""
    for o in result.semantics.successors(state):
        if o.defect is not None and o.thread == recorded.thread and o.defect.kind == recorded.defect.kind:
            return o
    raise ReplayMismatch("the failing step does not occur in the replayed state")


def concrete_completion(result: ExploreResult, state: tuple, recorded: Outcome) -> Outcome:
    """The step of `recorded` (a successful return, found on a canonical state) from the concrete
    `state`."""
    for o in result.semantics.successors(state):
        if o.thread == recorded.thread and o.op == recorded.op and o.succeeded:
            return o
    raise ReplayMismatch("the completing step does not occur in the replayed state")


class Describer:
    """Turns states and steps into readable text."""

    def __init__(self, system: System):
        self.sys = system
        self.sz = system.sizes

    def value(self, t: Type, v) -> str:
        if isinstance(t, BoolT):
            return "true" if v else "false"
        if isinstance(t, EnumT):
            return t.members[v]
        if isinstance(t, ErrT):
            return errno_text(v)
        if isinstance(t, ElemT):
            return "null" if v < 0 else f"{t.sort}{v}"
        if isinstance(t, TupleT):
            return self.tuple_text(t.sorts, v)
        if isinstance(t, SetT):
            return "{" + ", ".join(self.tuple_text(t.sorts, i) for i in set_elements(v)) + "}"
        if isinstance(t, MapT):
            return "[" + ", ".join(self.value(t.value, x) for x in v) + "]"
        return str(v)

    def tuple_text(self, sorts, flat: int) -> str:
        parts = []
        for s in reversed(sorts):
            n = self.sz.n[s]
            parts.append(f"{s}{flat % n}")
            flat //= n
        parts.reverse()
        return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"

    def globals_text(self, g: tuple) -> list[tuple[str, str]]:
        return [(v.name, self.value(v.type, g[v.slot])) for v in self.sys.program.vars]

    def changes(self, before: tuple, after: tuple) -> list[Change]:
        out = []
        for v in self.sys.program.vars:
            a, b = before[v.slot], after[v.slot]
            if a == b:
                continue
            if isinstance(v.type, MapT):
                keys = list(self.sz.tuples(v.type.keys))
                for k, (x, y) in enumerate(zip(a, b)):
                    if x != y:
                        key = ", ".join(f"{s}{i}" for s, i in zip(v.type.keys, keys[k]))
                        out.append(Change(var=f"{v.name}[{key}]", old=self.value(v.type.value, x),
                                          new=self.value(v.type.value, y)))
            else:
                out.append(Change(var=v.name, old=self.value(v.type, a), new=self.value(v.type, b)))
        return out

    def held(self, thread: tuple) -> list[str]:
        held = thread[2]
        return [self.sys.lock_instance_name(held[i]) for i in range(0, len(held), 2)]

    def frames(self, pc: int) -> list[Frame]:
        return frames(self.sys.lowered, pc)

    def source(self, span: Span) -> str:
        return source_text(span, self.sys.program.sources)

    def site(self, pc: int) -> Site:
        return lock_site(self.sys.lowered, pc)

    def step(self, n: int, before: tuple, o: Outcome, after: tuple | None, args: tuple) -> TraceStep:
        op = self.sys.ops[o.op]
        thread_before = before[2][o.thread]
        arg_text = [(name, self.value(t, v)) for (name, t), v in zip(op.params, args)]
        ins = self.sys.code[o.start_pc]
        if o.defect is not None:
            bad = self.sys.code[o.defect.pc]
            outcome = f"DEFECT at {o.defect.span}: {o.defect.message} [{self.source(bad.span)}]"
            if after is not None:  # the trace goes on: the others run, this thread is dead
                outcome += "; the thread ends here, holding its locks"
        elif o.end_pc == IDLE:
            outcome = f"returns {errno_text(o.result)}"
        else:
            outcome = f"next: {self.source(self.sys.code[o.end_pc].span)} (line {self.sys.code[o.end_pc].span.line})"
        # after the step, or, at a defect, where the thread stopped (a defect ends the step midway)
        held = self.held(after[2][o.thread]) if after is not None else self.held((None, None, o.defect.held))
        if after is not None:
            first = self.lock_of(ins, before[0], thread_before, op, args)
            took = first if ins.kind == ACQUIRE else []
            shown = first if ins.kind == RELEASE else []  # the step's own statement says it
            released = [n for n in self.held(thread_before) + took if n not in held and n not in shown]
            if released:  # releases taken within the step (the reduction merges them into it)
                outcome += f"; released {', '.join(dict.fromkeys(released))}"
        changes = self.changes(before[0], after[0]) if after is not None else []
        return TraceStep(index=n, thread=self.sys.threads[o.thread].name, op=op.name, args=arg_text, span=ins.span,
                         text=self.source(ins.span), chain=self.frames(o.start_pc), outcome=outcome, held=held,
                         changes=changes)

    def lock_of(self, ins, g: tuple, thread: tuple, op, args: tuple) -> list[str]:
        """The lock instance the step's first instruction acquires or releases, if it does."""
        if ins.kind not in (ACQUIRE, RELEASE):
            return []
        # a step that starts the operation begins with the initial locals
        loc = op.start_locals(args) if thread[0] == IDLE else list(thread[1])
        try:
            idx = ins.index(g, loc) if ins.index is not None else 0
        except NullDeref:
            return []
        return [self.sys.lock_instance_name(self.sys.locks[ins.lock].base + idx)]

    def trace(self, steps: list[tuple[tuple, Outcome]], failing: tuple[tuple, Outcome] | None = None) -> Trace:
        """Describe a replayed path (every step from the initial state) and an optional failing step."""
        init = steps[0][0] if steps else (failing[0] if failing else None)
        args_of: dict[int, tuple] = {}  # each thread's current arguments, from the step that started its op
        rows = []
        for before, o in steps + ([failing] if failing else []):
            if o.args is not None:
                args_of[o.thread] = o.args
            after = o.state if o is not (failing[1] if failing else None) else None
            rows.append(self.step(len(rows) + 1, before, o, after, args_of.get(o.thread, ())))
        return Trace(initial=self.globals_text(init[0]) if init else [], steps=rows)


def frames(lowered: Lowered, pc: int) -> list[Frame]:
    """Call chain of an instruction, innermost first, each frame at the line it was executing."""
    ins = lowered.code[pc]
    chain = ins.chain
    out = []
    for i in range(len(chain) - 1, -1, -1):
        where = ins.span if i == len(chain) - 1 else chain[i + 1].span
        out.append(Frame(function=chain[i].function, file=where.file, line=where.line))
    return out


def lock_site(lowered: Lowered, pc: int) -> Site:
    """Where a lock instruction takes its lock, with its call chain."""
    ins = lowered.code[pc]
    return Site(lock=lowered.locks[ins.lock].name, span=ins.span,
                text=source_text(ins.span, lowered.program.sources), chain=frames(lowered, pc))


def source_text(span: Span, sources: Sources) -> str:
    return sources.snippet(span)
