"""Static lock-order edges (locks/static.py): every acquisition path of every operation, data
ignored, computed once from the lowered program. Edges are lockdep's (check_prevs_add): from the
most recent held lock and the trylocks held above it to the one acquired, none into a trylock,
the read flag kept; sites carry their call chains."""
import pytest

from apcheck.explore.trace import lock_site
from apcheck.ir.lower import lower
from apcheck.lang.check import check
from apcheck.lang.parser import parse
from apcheck.locks.static import static_edges


def edges_of(text: str):
    lowered = lower(check([parse(text, "static.apm")]))
    found = static_edges(lowered)
    names = [c.name for c in lowered.locks]
    return lowered, found, {(names[a], names[b]) for a, b in found.edges}


def test_every_held_lock_gets_an_edge_and_call_chains_are_kept():
    lowered, found, edges = edges_of(open("tests/models/three_locks.apm").read())
    assert edges == {("la", "lb"), ("lb", "lc"), ("lc", "la")}
    a, b = found.edges[(lowered.class_id("la"), lowered.class_id("lb"))]
    site = lock_site(lowered, b)
    assert site.lock == "lb" and [f.function for f in site.chain] == ["inner_b", "ab"]
    assert lock_site(lowered, a).text == "acquire la"


def test_nested_locks_add_an_edge_from_the_most_recent_held_lock():
    _, _, edges = edges_of("""
lock x: mutex
lock y: mutex
lock z: mutex
op nest() {
    acquire x
    acquire y
    acquire z
    release z
    release y
    release x
}
""")
    assert edges == {("x", "y"), ("y", "z")}  # x -> z is implied, as lockdep leaves it


def test_trylock_adds_no_edge_into_the_lock_it_tries_and_edges_pass_over_it():
    _, _, edges = edges_of("""
lock x: mutex
lock y: mutex
lock z: mutex
op t() {
    acquire x
    if trylock y {
        acquire z
        release z
        release y
    }
    release x
}
""")
    assert edges == {("x", "z"), ("y", "z")}  # from the trylock y, and on to x, the blocking acquire below


def test_paths_are_taken_both_ways_and_released_locks_add_nothing():
    _, _, edges = edges_of("""
lock x: mutex
lock y: mutex
var flag: bool = false
op t() {
    if flag {
        acquire x
        release x
    }
    acquire y
    release y
}
op u() {
    acquire x
    if flag {
        acquire y
        release y
    }
    release x
}
""")
    assert edges == {("x", "y")}  # from u only; t releases x before y on every path


def test_read_acquisitions_are_marked():
    lowered, found, edges = edges_of("""
lock sem: rwsem
lock m: mutex
op r() {
    acquire m
    acquire read sem
    release sem
    release m
}
""")
    key = (lowered.class_id("m"), lowered.class_id("sem"))
    assert edges == {("m", "sem")} and key in found.read


def test_release_that_no_path_holds_is_a_diagnostic():
    _, found, _ = edges_of("""
lock x: mutex
var flag: bool = false
op t() {
    if flag {
        acquire x
    }
    release x
}
op u() {
    release x
}
""")
    assert [(d.code, d.span.line) for d in found.diagnostics] == [("E402", 11)]


CORRELATED = """
sort Dev bound 2
sort Guest bound 1
lock big: mutex
lock small: mutex
lock guest[Guest]: mutex
var owner: map<Dev -> Guest?> = null guarded_by big%s
var loose: map<Dev -> Guest?> = null

proc get_locks(d: Dev) {
    if owner[d] != null {
        acquire guest[owner[d]]
    }
    acquire small
}

proc put_locks(d: Dev) {
    release small
    if owner[d] != null {
        release guest[owner[d]]
    }
}

op walk() {
    acquire big
    for d in Dev {
        call get_locks(d)
        %s
        call put_locks(d)
    }
    release big
}

op attach(d: Dev, g: Guest) {
    %s
    owner[d] := g
    %s
}
"""


def correlated(guard="", between="", attach_lock=("acquire big", "release big")):
    return edges_of(CORRELATED % ((guard, between) + attach_lock))


def test_a_repeated_condition_no_thread_can_change_is_taken_the_same_way():
    """The conditional acquire and the conditional release of guest[] pair up: no path keeps
    guest[] held into the next iteration, so there is no guest -> guest or guest -> small ... edge
    from a path no thread can run. The parameters of the two calls are copies of the loop's d."""
    _, found, edges = correlated()
    assert edges == {("big", "guest"), ("big", "small"), ("guest", "small")}
    assert found.pruned == 2 and not found.diagnostics


def test_a_condition_on_an_unguarded_variable_is_not_known():
    text = CORRELATED.replace("owner[d]", "loose[d]") % ("", "", "acquire big", "release big")
    _, found, edges = edges_of(text)
    assert ("guest", "guest") in edges and found.pruned == 0


def test_a_condition_is_forgotten_when_the_guard_is_dropped_in_between():
    _, found, edges = correlated(between="release big\n        acquire big")
    assert found.pruned == 0 and ("small", "big") in edges


def test_a_condition_is_forgotten_when_the_thread_writes_what_it_reads():
    _, _, edges = correlated(between="owner[d] := null")
    assert ("guest", "guest") in edges


def test_a_variable_written_without_its_guards_is_never_known():
    """attach writes owner without big: the guard does not exclude it, so nothing is pruned."""
    _, found, edges = correlated(attach_lock=("", ""))
    assert ("guest", "guest") in edges and found.pruned == 0


@pytest.mark.slow  # loads the shipped models
def test_the_merged_designs_static_order_is_acyclic():
    from apcheck.commands.model import build, load_program
    from apcheck.smt.lockorder import prove_order
    for model in ("models/vfio_ap_merged.apm", "models/vfio_ap_merged_2026.apm"):
        lowered, static = build(load_program(model))
        names = [c.name for c in lowered.locks]
        assert ("kvm->lock", "kvm->lock") not in {(names[a], names[b]) for a, b in static.edges}
        proof = prove_order(list(range(len(names))), set(static.edges))
        order = [names[c] for c in proof.order]
        assert order.index("matrix_dev->guests_lock") < order.index("kvm->lock") < order.index(
            "matrix_dev->mdevs_lock")
