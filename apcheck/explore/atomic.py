"""One operation run to completion by itself, in the concrete semantics (explore.semantics).

Used to replay Z3's counterexamples to induction. The operation runs as the
only thread, so its locks are never contended; a trylock may succeed or fail
(Semantics' `trylocks_may_fail` mode); a wait whose condition is false and a
defect end the path; loops take every iteration order. Returns every final
state.
"""
from __future__ import annotations

from apcheck.explore.semantics import IDLE, Semantics
from apcheck.explore.system import System, instantiate
from apcheck.ir.lowered import Lowered, ThreadInst

MAX_STATES = 200_000


def alone(lowered: Lowered, sizes: dict[str, int], op_id: int) -> System:
    """The system in which one thread runs only operation op_id."""
    return instantiate(lowered, sizes, [ThreadInst("alone", "alone", [op_id])], "alone")


def run_atomically(system: System, op_id: int, args: tuple, g: tuple) -> tuple[list[tuple], bool]:
    """The globals after every path of the operation from globals `g` (a system made by `alone`);
    the flag says that all paths were run."""
    sem = Semantics(system, merge_private_releases=True, trylocks_may_fail=True)
    idle = (g, (0,) * len(system.inst_class), ((IDLE, (), ()),))
    out = []
    sem.start(idle, 0, op_id, args, tuple(system.ops[op_id].start_locals(args)), out)
    finals: list[tuple] = []
    seen: set[tuple] = set()
    while out:
        if len(seen) > MAX_STATES:
            return finals, False
        o = out.pop()
        if o.defect is not None or o.state in seen:  # a defect ends the path
            continue
        seen.add(o.state)
        if o.end_pc == IDLE:
            finals.append(o.state[0])
        else:
            sem.thread_steps(o.state, 0, out)
    return finals, True
