"""Z3 lock-order certificates: orders that respect every edge; cycles from unsat cores."""
from apcheck.smt.lockorder import prove_order


def test_certificate_respects_every_edge():
    edges = {(0, 2), (2, 1), (0, 1), (3, 0)}
    proof = prove_order([0, 1, 2, 3], edges)
    assert proof.status == "sat"
    pos = {c: i for i, c in enumerate(proof.order)}
    assert all(pos[a] < pos[b] for a, b in edges)


def test_unsat_core_gives_exactly_the_three_edges():
    edges = {(0, 1), (1, 2), (2, 0), (3, 0), (1, 3), (3, 4)}
    proof = prove_order([0, 1, 2, 3, 4], edges)
    assert proof.status == "unsat"
    assert len(proof.cycle) == 3
    cyc = proof.cycle
    pairs = {(cyc[i], cyc[(i + 1) % len(cyc)]) for i in range(len(cyc))}
    assert pairs <= edges
    assert len(pairs) == 3
