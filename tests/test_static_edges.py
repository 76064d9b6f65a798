"""Static lock-order edges (locks/static.py): every acquisition path of every operation, data
ignored, computed once from the lowered program. Edges are lockdep's (check_prevs_add): from the
most recent held lock and the trylocks held above it to the one acquired, none into a trylock,
the read flag kept; sites carry their call chains."""
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
