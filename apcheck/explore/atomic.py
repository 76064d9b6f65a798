"""One operation run to completion by itself, in the concrete semantics.

Used to replay Z3's counterexamples to induction: lock operations are taken
without contention, a trylock may succeed or fail, a wait whose condition is
false and a defect (null instance, failed assert) end the path, and loops
take every iteration order. Returns every final state.
"""
from __future__ import annotations

from apcheck.ir.compile import NullDeref
from apcheck.ir.lower import AssertionFailed
from apcheck.ir.system import (ACQUIRE, BRANCH, EXEC, FOR, JUMP, RELEASE, RETURN, TRY, WAIT, YIELD, System)

MAX_PATHS = 200_000


def run_atomically(system: System, op_id: int, args: tuple, g: tuple) -> tuple[list[tuple], bool]:
    """The globals after every path of the operation from globals `g`; the flag says all paths were run."""
    op = system.ops[op_id]
    code = system.code
    local = op.start_locals(args)
    finals: list[tuple] = []
    stack = [(op.entry, list(g), local)]
    paths = 0
    while stack:
        paths += 1
        if paths > MAX_PATHS:
            return finals, False
        pc, g2, l2 = stack.pop()
        try:
            while True:
                ins = code[pc]
                k = ins.kind
                if k == EXEC:
                    ins.fn(g2, l2)
                    pc += 1
                elif k == BRANCH:
                    pc = pc + 1 if ins.fn(g2, l2) else ins.target
                elif k == JUMP:
                    pc = ins.target
                elif k == FOR:
                    rem = l2[ins.rem]
                    if not rem:
                        pc = ins.target
                        continue
                    bits = [b for b in range(rem.bit_length()) if rem >> b & 1]
                    for b in bits[1:]:
                        other = list(l2)
                        other[ins.slot], other[ins.rem] = b, rem & ~(1 << b)
                        stack.append((pc + 1, list(g2), other))
                    l2[ins.slot], l2[ins.rem] = bits[0], rem & ~(1 << bits[0])
                    pc += 1
                elif k in (ACQUIRE, RELEASE, TRY):
                    if ins.index is not None:
                        ins.index(g2, l2)
                    if k == TRY:
                        stack.append((ins.target, list(g2), list(l2)))
                    pc += 1
                elif k == WAIT:
                    if not ins.fn(g2, l2):
                        break
                    pc += 1
                elif k == YIELD:
                    pc += 1
                elif k == RETURN:
                    if ins.fn is not None:
                        ins.fn(g2, l2)
                    finals.append(tuple(g2))
                    break
                else:  # pragma: no cover - every kind is handled above
                    raise AssertionError(k)
        except (NullDeref, AssertionFailed):
            continue
    return finals, True
