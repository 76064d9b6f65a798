"""Lock-order certificates with Z3: integer ranks, one tracked constraint per edge."""
from __future__ import annotations

from dataclasses import dataclass

import z3

from apcheck.locks.graph import shortest_cycle


@dataclass
class OrderProof:
    order: list[int] | None        # classes, lowest rank first (satisfiable)
    cycle: list[int] | None        # a smallest cycle from the unsat core (unsatisfiable)
    core: list[tuple[int, int]]    # the edges Z3 named
    status: str                    # sat | unsat | unknown
    reason: str = ""


def prove_order(classes: list[int], edges: set[tuple[int, int]], timeout_ms: int = 10000) -> OrderProof:
    """Find ranks with rank(A) < rank(B) for every edge A -> B, or a cycle that forbids them."""
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    rank = {c: z3.Int(f"rank_{c}") for c in classes}
    tracks: dict[str, tuple[int, int]] = {}
    for a, b in sorted(edges):
        name = f"edge_{a}_{b}"
        tracks[name] = (a, b)
        solver.assert_and_track(rank[a] < rank[b], z3.Bool(name))
    res = solver.check()
    if res == z3.sat:
        model = solver.model()
        value = {c: model.eval(rank[c], model_completion=True).as_long() for c in classes}
        return OrderProof(sorted(classes, key=lambda c: (value[c], c)), None, [], "sat")
    if res == z3.unsat:
        core = sorted(tracks[str(x)] for x in solver.unsat_core())
        return OrderProof(None, shortest_cycle(set(core)), core, "unsat")
    return OrderProof(None, None, [], "unknown", solver.reason_unknown())
