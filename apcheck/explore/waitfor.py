"""A deadlock explained to the end: the steps until every thread of it is blocked, and the cycle
of who waits for whom.

The search reports a deadlock at the first state from which some busy thread can never move
again (the point of no return). Other threads may still run into it: `continuation` finds the
shortest way on (a breadth-first search over the explored graph) to a state where every thread
that can never move again is blocked, and every lock such a thread waits for is held by another
of them. `wait_for` then says, per blocked thread, what it waits for and who holds it; a thread
waiting for a condition (a flag used as a lock) waits for the blocked threads whose operations
write what the condition reads: "a lock lockdep cannot see".
"""
from __future__ import annotations

from collections import deque

from apcheck.explore.engine import ExploreResult
from apcheck.explore.semantics import Outcome
from apcheck.ir import program as P
from apcheck.ir.lowered import WAIT

MAX_STATES = 100_000  # a continuation longer than this search is not shown (the trace ends at no return)


def _busy(state: tuple) -> int:
    return sum(1 << t for t, (pc, _, _) in enumerate(state[2]) if pc >= 0)


def _blocked(result: ExploreResult, state: tuple, t: int) -> bool:
    out: list[Outcome] = []
    result.semantics.thread_steps(state, t, out)
    return not out


def stuck_threads(result: ExploreResult, state: tuple) -> int | None:
    """The threads that can never move again from this (concrete) state, if the search stored it."""
    key = result.canon(state) if result.canon else state
    j = result.index.get(key)
    if j is None or result.can_move is None:
        return None
    return _busy(state) & ~result.can_move[j]


def continuation(result: ExploreResult, state: tuple) -> list[tuple[tuple, Outcome]]:
    """The shortest steps from `state` to one where the deadlock is complete (see the module doc);
    none if it already is, or if no such state is found within MAX_STATES."""
    start = (state, [])
    seen = {state}
    todo = deque([start])
    while todo and len(seen) <= MAX_STATES:
        cur, path = todo.popleft()
        stuck = stuck_threads(result, cur)
        if stuck and _complete(result, cur, stuck):
            return path
        for o in result.semantics.successors(cur):
            if o.state not in seen:
                seen.add(o.state)
                todo.append((o.state, path + [(cur, o)]))
    return []


def _complete(result: ExploreResult, state: tuple, stuck: int) -> bool:
    sem = result.semantics
    for t in range(len(state[2])):
        if not stuck >> t & 1:
            continue
        if not _blocked(result, state, t):
            return False
        waits = sem.waiting_for(state, t)
        if waits is not None and not all(stuck >> h & 1 for h in waits[1]):
            return False
    return True


def wait_for(result: ExploreResult, state: tuple, stuck: int) -> tuple[list[str], dict[str, str]]:
    """Per stuck thread, what it waits for and who would have to let it go, then the cycle (lines of
    text); and per stuck thread, what it waits for."""
    sem = result.semantics
    system = sem.sys
    names = [th.name for th in system.threads]
    edges: dict[int, list[int]] = {}
    what: dict[int, str] = {}   # what each thread waits for, as the cycle line names it
    waiting: dict[str, str] = {}
    lines = []
    for t in range(len(names)):
        if not stuck >> t & 1:
            continue
        pc, l, _ = state[2][t]
        ins = sem.code[pc]
        where = f"{ins.span.file}:{ins.span.line}"
        if ins.kind == WAIT:
            waiters = _writers(system, state, stuck, pc)
            edges[t] = waiters
            who = ", ".join(names[w] for w in waiters) or "no thread of the deadlock"
            cond = system.program.sources.snippet(system.lowered.code[pc].cond.span)
            what[t] = f"until {cond}"
            waiting[names[t]] = f"until {cond} (a lock lockdep cannot see)"
            lines.append(f"{names[t]} waits forever at {where} until {cond}: a lock lockdep cannot see, "
                         f"to be let go by {who}")
        else:
            edges[t] = (sem.waiting_for(state, t) or (-1, []))[1]
            what[t] = sem.lock_waited_for(state, t)
            waiting[names[t]] = sem.blocked_on(state, t)
            lines.append(f"{names[t]} waits forever at {where}: {sem.blocked_on(state, t)}")
    cycle = _cycle(edges)
    if cycle:
        hops = [f"{names[t]} for {names[u]} ({what[t]})" for t, u in zip(cycle, cycle[1:] + cycle[:1])]
        lines.append("wait-for cycle: " + ", ".join(hops))
    return lines, waiting


def _writers(system, state: tuple, stuck: int, pc: int) -> list[int]:
    """The stuck threads, in the middle of an operation that writes what the wait's condition reads."""
    reads = P.globals_read(system.lowered.code[pc].cond)
    out = []
    for u, (upc, _, _) in enumerate(state[2]):
        if stuck >> u & 1 and upc >= 0:
            op = system.ops[system.op_of_pc[upc]].name
            if P.globals_written(system.program.procs, op) & reads:
                out.append(u)
    return out


def _cycle(edges: dict[int, list[int]]) -> list[int]:
    """A cycle in the wait-for graph (threads), the first found from the lowest thread."""
    for start in sorted(edges):
        path, seen = [start], {start}
        while True:
            nxt = next((u for u in edges.get(path[-1], []) if u in edges), None)
            if nxt is None:
                break
            if nxt in seen:
                return path[path.index(nxt):]
            path.append(nxt)
            seen.add(nxt)
    return []
