"""Z3 induction for every size: proofs, counterexamples to induction, and their concrete replay."""
import pytest

from apcheck.diagnostics import InternalError
from apcheck.explore.engine import ExploreConfig, explore
from apcheck.explore.system import scenario_system
from apcheck.ir.lower import lower
from apcheck.smt import induction
from apcheck.smt.induction import prove_invariants
from apcheck.commands.model import VerifyConfig, load_program
from apcheck.commands.verify import verify

MODEL = "tests/models/passthrough.apm"
AUX = "tests/models/passthrough_aux.aps"


def by_name(result):
    return {p.name: p for p in result.properties}


def test_inductive_invariant_is_proved_for_every_size():
    props = by_name(verify(load_program(MODEL)))
    p = props["assigned_once"]
    assert p.induction.status == "proved"
    # the operations of this model have no scheduling point: the proof is the verdict
    assert p.verdict == "proved"
    assert str(p.method).startswith("Z3 induction (every size)") and p.method.engine == "z3-induction"


def test_invariant_needing_auxiliary_shows_cti_without_it():
    p = by_name(verify(load_program(MODEL)))["guest_exclusive"]
    assert p.verdict == "holds"            # true within the bounds ...
    ind = p.induction
    assert ind.status == "cti"             # ... but not inductive by itself
    cti = ind.cti
    assert cti.op == "start"
    state = dict(cti.state)
    # another mdev's guest already sees an adapter that this mdev has assigned: unreachable, but
    # nothing in guest_exclusive alone rules it out
    assert state["in_guest"] != "{}" and state["assigned"] != "{}"
    assert "in_guest" in [c.var for c in cti.changes]


def test_invariant_is_proved_with_the_auxiliary_invariants():
    props = by_name(verify(load_program(MODEL, [AUX]), specs=[AUX]))
    for name in ("assigned_once", "guest_exclusive", "guest_sees_assigned", "stopped_sees_nothing"):
        assert props[name].verdict == "proved", name
        assert props[name].induction.status == "proved"
    assert "guest_sees_assigned" in props["guest_exclusive"].induction.hypothesis


def test_false_invariant_is_refuted_from_a_reachable_state():
    program = load_program(MODEL)
    found = prove_invariants(lower(program))["one_guest_at_a_time"]
    assert found.status == "cti" and found.cti.op == "start"
    # the explorer, at the counterexample's sizes, reaches the state Z3 started from
    system = scenario_system(lower(program), found.cti.sizes, program.system)
    res = explore(system, ExploreConfig(symmetry=False))
    assert found.cti.globals in {s[0] for s in res.states}
    assert res.invariant_violations.get("one_guest_at_a_time") is not None


def test_untranslatable_construct_is_named_with_its_position():
    found = prove_invariants(lower(load_program("tests/models/untranslatable.apm")))
    assert found["pending_is_items"].status == "untranslatable"
    assert "tests/models/untranslatable.apm:10: while loop" in found["pending_is_items"].message
    assert found["flag_stays_false"].status == "proved"


def test_counterexample_that_does_not_replay_is_an_internal_error(monkeypatch):
    # a concrete semantics in which operations change nothing cannot reproduce Z3's counterexample
    monkeypatch.setattr(induction, "run_atomically", lambda system, op, args, g: ([g], True))
    with pytest.raises(InternalError, match="does not replay"):
        prove_invariants(lower(load_program(MODEL)))


@pytest.mark.slow
def test_merged_2026_configuration_invariants_are_proved_for_every_size():
    """With the spec's auxiliary and loop invariants of the design, and the bus scan's and
    configuration callbacks' loops cut at their heads."""
    found = prove_invariants(lower(load_program("models/vfio_ap_merged_2026.apm", ["specs/vfio_ap.aps"])))
    for name in ("no_host_guest_sharing", "no_guest_guest_sharing", "guest_apqn_configured",
                 "guest_apqn_bound_to_vfio", "no_apqn_assigned_twice", "removed_unlinked", "added_unlinked"):
        assert found[name].status == "proved", (name, found[name].message)
    assert found["no_stale_pqap_hook"].status != "proved"   # the explorer violates it


def test_no_induction_option_leaves_bounded_verdicts():
    cfg = VerifyConfig(induction=False)
    p = by_name(verify(load_program(MODEL), cfg))["assigned_once"]
    assert p.verdict == "holds" and p.induction is None


LOOP = "tests/models/unplug_loop.apm"
LOOP_SPEC = "tests/models/unplug_loop.aps"


def test_dependent_loop_is_proved_with_its_loop_invariant():
    res = verify(load_program(LOOP, [LOOP_SPEC]), specs=[LOOP_SPEC])
    props = by_name(res)
    for name in ("guest_configured", "shadow_configured", "crycb_is_shadow"):
        assert props[name].verdict == "proved", name
        assert "unplugged" in props[name].induction.hypothesis
    assert ("loop invariant unplugged (tests/models/unplug_loop.aps:3): proved: holds at every head of the "
            "loop at line 47 (each operation atomic, every size)") in res.stats.notes


def test_dependent_loop_without_its_loop_invariant_is_not_proved():
    found = prove_invariants(lower(load_program(LOOP)), timeout_s=5)
    ind = found["guest_configured"]
    # Z3 finds the counterexample to induction after the loop, or gives up on it (its quantifier
    # instantiation is incomplete, and which one it does depends on its state): never a proof
    assert ind.status in ("cti", "unknown") and ind.cti is None
    if ind.status == "cti":  # over-approximated: not replayed, and said so
        assert ind.message.startswith("not inductive: unplug(a=Adapter0) breaks it from a state where the "
                                      "invariants hold, going on after the loop at line 47")
        assert "(not replayed: the loop is taken through its loop invariant)" in ind.message
    else:
        assert ind.message.startswith("Z3 gave up on unplug: ")
    assert found["crycb_is_shadow"].status == "proved"


def test_false_loop_invariants_are_refuted_at_the_entry_and_after_an_iteration(tmp_path):
    spec = tmp_path / "wrong.aps"
    spec.write_text("loop invariant at_entry at unplug.m: forall x: Mdev :: a not in shadow[x]\n"
                    "loop invariant after_one at unplug.m: done == {}\n")
    found = prove_invariants(lower(load_program(LOOP, [str(spec)])))
    assert found["at_entry"].status == "cti"
    assert found["at_entry"].message.startswith("not inductive: it is false where unplug(a=Adapter0) enters the "
                                                "loop at line 47, from a state where the invariants hold")
    assert found["after_one"].status == "cti"
    assert found["after_one"].message.startswith("not inductive: an iteration of the loop at line 47 in "
                                                 "unplug(a=Adapter0) breaks it, from a head of the loop")
    # a false loop invariant proves nothing else
    assert found["guest_configured"].status != "proved"


def test_loop_invariant_of_an_independent_loop_is_unused(tmp_path):
    model = tmp_path / "independent.apm"
    model.write_text("sort Item bound 2\nvar on: set<Item> = {}\n"
                     "op clear(xs: set<Item>) {\n    for x in xs {\n        on -= {x}\n    }\n}\n"
                     "thread t runs clear\ninvariant sub: on <= Item\n"
                     "loop invariant none at clear.x: done <= xs\n")
    found = prove_invariants(lower(load_program(str(model))))
    assert found["none"].status == "unused"
    assert found["sub"].status == "proved"
