"""The slice of a system that can affect some invariants and covers: an exact reduction.

An operation is in the slice when it writes a state variable that the properties,
or an operation of the slice, read (a condition, a value, an index, a lock
instance, a wait), or when it takes a lock that an operation of the slice tries
(a trylock's result depends on who holds the lock). Every other operation can
only hold locks and write what nobody in the slice reads: whatever it does, the
slice's threads could have done by staying idle instead. So the states of the
sliced system, projected on what the properties read, are exactly those of the
whole system: an invariant holds (a cover is reachable) in one if and only if in
the other, and a trace of the slice is a trace of the whole system. Deadlocks,
defects and lock order are not preserved (they depend on every operation's locks);
a run of a slice reports only these properties.
"""
from __future__ import annotations

from dataclasses import replace

from apcheck.explore.system import System, instantiate
from apcheck.ir import program as P
from apcheck.ir.lowered import ACQUIRE, TRY, Assert, Assign, Store


def _reads_writes(system: System) -> tuple[list[set], list[set], list[set], list[set]]:
    """Per operation: the state variables it reads, those it writes, the lock classes it tries and
    those it takes (acquires or tries)."""
    n = len(system.ops)
    reads, writes, tries, takes = [set() for _ in range(n)], [set() for _ in range(n)], \
        [set() for _ in range(n)], [set() for _ in range(n)]
    for pc, ins in enumerate(system.lowered.code):
        op = system.op_of_pc[pc]
        parts = [ins.cond, ins.value, ins.instance]
        eff = ins.effect
        if isinstance(eff, Assign):
            parts += [eff.stmt.value, *eff.stmt.indices]
            if isinstance(eff.stmt.target, P.Var):
                writes[op].add(eff.stmt.target)
                if eff.stmt.op != ":=":
                    reads[op].add(eff.stmt.target)
        elif isinstance(eff, Store):
            parts.append(eff.value)
        elif isinstance(eff, Assert):
            parts.append(eff.cond)
        reads[op] |= set(P.globals_in([p for p in parts if p is not None]))
        if ins.kind == TRY:
            tries[op].add(ins.lock)
        if ins.kind in (ACQUIRE, TRY):
            takes[op].add(ins.lock)
    return reads, writes, tries, takes


def relevant_ops(system: System, props: list[P.Property]) -> set[int]:
    """The operations (ids) of the system's threads that can affect what the properties read."""
    reads, writes, tries, takes = _reads_writes(system)
    ran = {op for th in system.threads for op in th.ops}
    rvars = set(P.globals_in([p.expr for p in props]))
    rlocks: set[int] = set()
    relevant: set[int] = set()
    changed = True
    while changed:
        changed = False
        for op in sorted(ran - relevant):
            if writes[op] & rvars or takes[op] & rlocks:
                relevant.add(op)
                rvars |= reads[op]
                rlocks |= tries[op]
                changed = True
    return relevant


def slice_for(system: System, props: list[P.Property]) -> tuple[System, list[str]]:
    """The system with only the operations that can affect the properties (threads left with none
    dropped), and what was left out, by operation name."""
    keep = relevant_ops(system, props)
    threads = [replace(th, ops=[op for op in th.ops if op in keep]) for th in system.threads]
    dropped = sorted({system.ops[op].name for th in system.threads for op in th.ops if op not in keep})
    sliced = instantiate(system.lowered, dict(system.sizes.n), [th for th in threads if th.ops], system.scenario)
    return sliced, dropped
