"""Every acquisition path of every operation, ignoring data: the static lock-order edges.

Edges follow lockdep's rule (the most recent held lock, and the trylocks held above it); the
closure over all held locks is implied, since on one path each held lock was itself acquired
after the one below it: an order of these edges orders the closure too.

Also finds releases that no path can reach holding the lock (E402).
"""
from __future__ import annotations

from dataclasses import dataclass

from apcheck.diagnostics import Diagnostic
from apcheck.ir.lowered import ACQUIRE, BRANCH, FOR, JUMP, READ, RELEASE, RETURN, TRY, Lowered

MAX_NESTING = 2  # copies of one class kept on a path's held stack (loops that nest one class)


@dataclass
class StaticEdges:
    edges: dict[tuple[int, int], tuple[int, int]]   # (A, B) -> (site of A, site of B)
    read: set[tuple[int, int]]                      # edges whose B was a read acquisition
    diagnostics: list[Diagnostic]


def static_edges(lowered: Lowered, closure: bool = False) -> StaticEdges:
    """Once per model: lock classes and paths do not depend on sizes or scenarios. With `closure`, an
    edge from every held lock (apcheck verify --lock-edges closure)."""
    code = lowered.code
    edges: dict[tuple[int, int], tuple[int, int]] = {}
    read: set[tuple[int, int]] = set()
    release_ok: dict[int, bool] = {}
    for op in lowered.ops:
        seen: set[tuple[int, tuple]] = set()
        stack = [(op.entry, ())]
        while stack:
            pc, held = stack.pop()
            if (pc, held) in seen:
                continue
            seen.add((pc, held))
            ins = code[pc]
            k = ins.kind
            if k == RETURN:
                continue
            if k == JUMP:
                stack.append((ins.target, held))
            elif k in (BRANCH, FOR):
                stack.append((pc + 1, held))
                stack.append((ins.target, held))
            elif k in (ACQUIRE, TRY):
                cid = ins.lock
                if k == ACQUIRE:  # lockdep's rule, as the explorer records reached edges (Semantics._acquire)
                    for hc, hpc in reversed(held):
                        if (hc, cid) not in edges:
                            edges[(hc, cid)] = (hpc, pc)
                        if ins.mode == READ:
                            read.add((hc, cid))
                        if code[hpc].kind != TRY and not closure:
                            break
                nested = sum(1 for hc, _ in held if hc == cid)
                taken = held + ((cid, pc),) if nested < MAX_NESTING else held
                stack.append((pc + 1, taken))
                if k == TRY:
                    stack.append((ins.target, held))
            elif k == RELEASE:
                cid = ins.lock
                for i in range(len(held) - 1, -1, -1):
                    if held[i][0] == cid:
                        release_ok[pc] = True
                        stack.append((pc + 1, held[:i] + held[i + 1:]))
                        break
                else:
                    release_ok.setdefault(pc, False)
            else:
                stack.append((pc + 1, held))
    diags = []
    for pc, ok in sorted(release_ok.items()):
        if not ok:
            ins = code[pc]
            name = lowered.locks[ins.lock].name
            diags.append(Diagnostic("E402", f"release of {name}, which no path to this statement holds",
                                    ins.span, notes=tuple((f"in {f.function}", f.span) for f in ins.chain[1:])))
    return StaticEdges(edges, read, diags)
