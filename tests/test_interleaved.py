"""Induction over the interleaved steps, for every size and any number of threads
(smt/interleaved.py): proofs where the explorer's bounded search agrees, never a proof the
explorer refutes (random models), and what it cannot translate named with its position."""
import random

import pytest
from interleaved_models import random_interleaved_model

from apcheck.commands.model import VerifyConfig, build, load_program
from apcheck.commands.verify import verify
from apcheck.ir.lower import lower
from apcheck.lang.check import check
from apcheck.lang.parser import parse
from apcheck.smt.interleaved import TIMED_OUT, _Interleaved, prove_interleaved


def results(text_or_path: str, **config):
    if text_or_path.endswith(".apm"):
        program = load_program(text_or_path)
    else:
        program = check([parse(text_or_path, "t.apm")])
    res = verify(program, VerifyConfig(**config))
    return {p.name: p for p in res.properties}, res


def test_a_mutex_held_across_both_writes_is_proved_for_any_number_of_threads():
    p, _ = results("tests/models/locked_flip.apm")
    same = p["same"]
    assert same.verdict == "proved" and same.method.engine == "z3-interleaved"
    assert same.message.startswith("inductive for every size and any number of threads (interleaved steps; Z3 ")
    assert str(same.method).startswith("Z3 induction over interleaved steps (every size, any number of threads)")


def test_a_reader_holding_the_guard_keeps_the_invariant():
    """`unlocked(a, b)` lets the invariant be false while some thread holds l; a thread that holds
    it and writes neither keeps it true there, a fact the proof needs (tests/models/locked_peek.apm)."""
    p, _ = results("tests/models/locked_peek.apm")
    assert p["same"].verdict == "proved" and p["same"].method.engine == "z3-interleaved"


def test_the_lock_dropped_between_read_and_write_is_refuted_by_the_explorer_and_not_proved():
    p, _ = results("tests/models/racy_flip.apm")
    same = p["same"]
    assert same.verdict == "violated" and same.trace is not None and len(same.trace.steps) == 4
    assert [s.thread for s in same.trace.steps] == ["w0", "w1", "w0", "w1"]


def test_one_thread_holding_is_not_a_proof_for_any_number():
    """With one thread the racy flip holds; the proof is for any number of threads, so none."""
    text = open("tests/models/racy_flip.apm").read().replace("thread w[2] runs flip", "thread w runs flip")
    p, _ = results(text)
    same = p["same"]
    assert same.verdict == "holds"
    assert "any number of threads: not inductive: a step from line 12 breaks it (induction over the interleaved " \
        "steps)" in same.notes


def test_a_serial_thread_is_one_thread_in_the_proof_for_any_number():
    """`serial`: the kernel runs one instance of the thread at a time (the AP bus's work). The racy
    flip is then safe for any number of threads of every other declaration, and the proof says
    it counted one of the serial one; with two declarations running flip, it is not proved."""
    racy = open("tests/models/racy_flip.apm").read()
    p, _ = results(racy.replace("thread w[2] runs flip", "thread w serial runs flip"))
    same = p["same"]
    assert same.verdict == "proved" and same.method.engine == "z3-interleaved"
    assert same.message.startswith("inductive for every size and any number of threads (interleaved steps; "
                                   "one thread of each serial declaration: w; Z3 ")
    p, _ = results(racy.replace("thread w[2] runs flip", "thread w serial runs flip\nthread v runs flip"))
    assert p["same"].verdict == "violated"
    p, _ = results(racy.replace("thread w[2] runs flip", "thread w serial runs flip\nthread v runs flip")
                   .replace("op flip() {", "op other() {\n}\n\nop flip() {").replace("thread v runs flip",
                                                                                    "thread v runs other"))
    assert p["same"].verdict == "proved"


class _GivingUp:
    """A Z3 solver that gives up on every query asked inside a push (the steps; not the initial
    state), or on every query (`always`)."""

    def __init__(self, solver, always: bool):
        self.solver, self.always = solver, always

    def __getattr__(self, name):
        return getattr(self.solver, name)

    def check(self, *args):
        import z3
        if self.always or self.solver.num_scopes() > 0:
            return z3.unknown
        return self.solver.check(*args)


@pytest.mark.parametrize("always, reason", [
    (False, "unknown: Z3 gave up on a step that starts an operation (--smt-timeout)"),
    (True, "unknown: Z3 gave up on the initial state (--smt-timeout)")])
def test_where_z3_gives_up_the_invariant_is_dropped_as_unknown_never_as_refuted(monkeypatch, always, reason):
    """A query Z3 gives up on drops what it asked about (nothing is proved on it), and the reason says
    so: never "not inductive" or "false in the initial state", which claim a counterexample."""
    import apcheck.smt.interleaved as interleaved
    real = interleaved._Interleaved._solver
    monkeypatch.setattr(interleaved._Interleaved, "_solver", lambda self: _GivingUp(real(self), always))
    program = load_program("tests/models/locked_flip.apm")
    res = prove_interleaved(build(program)[0], 10.0)
    assert res.status == "not-proved" and res.dropped == {"same": reason}


def test_a_defect_inside_a_step_is_an_obligation():
    text = """
lock l: mutex
var a: bool = false guarded_by l
var b: bool = false guarded_by l
op f() {
    acquire l
    a := !a
    assert a
    b := !b
    release l
}
thread w[2] runs f
invariant same unlocked(a, b): a == b
"""
    r = prove_interleaved(lower(check([parse(text, "t.apm")])))
    assert r.status == "not-proved"
    assert r.message == ("a defect may be reachable in a step that starts an operation: line 8: the assertion "
                         "is not implied by the invariants")


def test_what_is_not_translated_is_named_with_its_position():
    text = """
lock l: mutex
var xs: set<S> = {} guarded_by l
sort S bound 2
op f(s: S) {
    acquire l
    xs += {s}
    release l
}
thread w runs f
invariant small: #xs <= 1
"""
    r = prove_interleaved(lower(check([parse(text, "t.apm")])))
    assert r.status == "untranslatable" and r.message == "not translatable (t.apm:11: set cardinality (#) for every size)"


def test_loops_translate():
    """A loop head is a step boundary (more interleavings than the explorer's, so a proof still
    holds): passthrough's shutdown loop translates."""
    r = prove_interleaved(build(load_program("tests/models/passthrough.apm"))[0])
    assert r.status == "proved" and r.proved == ["assigned_once"]


@pytest.mark.slow
def test_the_shipped_models_are_too_large_yet():
    """The shipped models translate, but their candidate facts times step paths exceed what the
    fixpoint takes on: unknown, never a verdict."""
    lowered, _ = build(load_program("models/vfio_ap_merged_2026.apm", ["specs/vfio_ap.aps"]))
    r = prove_interleaved(lowered)
    assert r.status == "unknown" and r.message.startswith("not tried: ") and "step paths" in r.message


@pytest.mark.slow
def test_never_a_proof_the_explorer_refutes_on_random_models():
    proved = violated = 0
    for seed in range(12):
        text = random_interleaved_model(random.Random(seed))
        program = check([parse(text, f"r{seed}.apm")])
        r = prove_interleaved(lower(program))
        res = verify(program, VerifyConfig(induction=False))
        verdicts = {p.name: p.verdict for p in res.properties}
        for name in r.proved:
            assert verdicts[name] != "violated", f"seed {seed}: {name} proved but violated\n{text}"
        proved += len(r.proved)
        violated += sum(1 for n in ("sub", "same", "keyed") if verdicts[n] == "violated")
    assert proved >= 3 and violated >= 5


def test_beyond_its_default_size_the_induction_is_tried_only_with_a_budget(monkeypatch):
    """By default the fixpoint is not tried beyond MAX_WORK candidate-path pairs (the note says so);
    `--interleaved-budget` tries it at any size, and tells the progress of each round."""
    import apcheck.smt.interleaved as interleaved
    monkeypatch.setattr(interleaved, "MAX_WORK", 1)
    p, res = results("tests/models/locked_flip.apm")
    assert p["same"].verdict == "holds"
    assert "induction over the interleaved steps (any number of threads): not tried: 11 candidate facts over " \
        "3 step paths, more than this induction takes on (1 pairs) within its default budget " \
        "(--interleaved-budget)" in res.stats.notes
    told: list[str] = []
    p, res = results("tests/models/locked_flip.apm", interleaved_budget=60.0, smt_progress=told.append)
    assert p["same"].verdict == "proved" and p["same"].method.engine == "z3-interleaved"
    assert told[0].startswith("interleaved induction: ") and " candidate facts over " in told[0]
    assert told[-1].startswith("interleaved induction: round ") and " 0 of " in told[-1]


def test_a_serial_thread_when_idle_keeps_what_only_it_changes():
    """The flag a serial thread raises for the length of an operation is down whenever every thread is
    idle: proved with the fact that the serial thread, idle, left it down (tests/models/serial_busy.apm)."""
    p, _ = results("tests/models/serial_busy.apm")
    assert p["quiet"].verdict == "proved" and p["quiet"].method.engine == "z3-interleaved"
    assert p["quiet"].message.startswith("inductive for every size and any number of threads (interleaved "
                                         "steps; one thread of each serial declaration: bus; Z3 ")


@pytest.mark.parametrize("model", ["locked_flip", "locked_peek", "serial_busy", "passthrough", "racy_flip"])
def test_processes_that_share_a_round_find_the_same_facts(model):
    """`jobs`: forked processes share each round's step paths; the facts kept and dropped, the
    invariants proved and the messages are those of one process."""
    lowered, _ = build(load_program(f"tests/models/{model}.apm"))
    one, two = (prove_interleaved(lowered, jobs=jobs) for jobs in (1, 2))
    assert (one.status, one.proved, one.kept, one.dropped) == (two.status, two.proved, two.kept, two.dropped)
    assert one.message.split("; Z3 ")[0] == two.message.split("; Z3 ")[0]


def test_a_branch_gives_a_fact_per_conjunct_and_per_negated_disjunct():
    """`if a not in on || b { return }`: after it, `not a not in on` and `not b` are facts each, so the
    first outlives a write of b (the shipped probe path needs `a in host_apm` after `bound := vfio`)."""
    from apcheck.smt.interleaved import _Interleaved
    text = """
sort A bound 2
lock l: mutex
var on: set<A> = A guarded_by l
var b: bool = false guarded_by l

op probe(a: A) {
    acquire l
    if a not in on || b {
        release l
        return 0
    }
    b := true
    release l
    return 0
}

thread t[2] runs probe

invariant sane: true
"""
    texts = [c.text for c in _Interleaved(lower(check([parse(text, "t.apm")])), 1000).candidates()]
    assert "a thread in probe at line 14: not a not in on" in texts and "a thread in probe at line 14: not b" in texts
    assert "a thread in probe at line 10: a not in on" not in texts   # a disjunct alone is not established


def test_what_a_removal_takes_out_later_is_still_there_until_it_does(monkeypatch):
    """tests/models/uuid_reuse.apm: create refuses a device still allocated, so while a removal has
    unregistered its device and not yet freed it, no create registers it again. The proof needs
    the removal's "d in allocated (removed at line 42)" at its points before line 42."""
    p, _ = results("tests/models/uuid_reuse.apm")
    reg = p["registered_listed"]
    assert reg.verdict == "proved" and reg.method.engine == "z3-interleaved"
    assert "one thread of each serial declaration: remover" in reg.message
    monkeypatch.setattr(_Interleaved, "_removed_later", lambda self: [])
    p, _ = results("tests/models/uuid_reuse.apm")
    assert p["registered_listed"].verdict == "holds"
    assert "any number of threads: not inductive: a step from line 40 breaks it (induction over the interleaved " \
        "steps)" in p["registered_listed"].notes


def test_a_create_that_checks_only_the_registration_slips_into_a_removal():
    text = open("tests/models/uuid_reuse.apm").read().replace("if d in allocated {", "if d in registered {")
    p, _ = results(text)
    reg = p["registered_listed"]
    assert reg.verdict == "violated" and len(reg.trace.steps) == 6
    assert [(s.thread, s.op) for s in reg.trace.steps] == [   # the second create between the unregistration
        ("creator0", "create"), ("creator0", "create"), ("remover", "remove"),   # and the unlisting
        ("creator0", "create"), ("creator0", "create"), ("remover", "remove")]


def test_a_lock_taken_under_a_condition_is_held_where_the_condition_holds():
    """`if mdev_guest[m] != null { acquire guest->lock[mdev_guest[m]] }`, then the shadow lock, then
    the guarded write where the condition holds (tests/models/conditional_lock.apm): the step from
    the shadow lock's acquire needs "where <condition>, holds <instance>", which outlives the join
    with the path that skipped the acquire."""
    p, _ = results("tests/models/conditional_lock.apm")
    assert p["shadow_off"].verdict == "proved" and p["shadow_off"].method.engine == "z3-interleaved"
    texts = {c.text for c in _Interleaved(build(load_program("tests/models/conditional_lock.apm"))[0],
                                          5000).candidates()}
    assert "a thread in clear at line 34: where mdev_guest[m] != null, holds guest->lock[mdev_guest[m]]" in texts
    assert "a thread in clear at line 34: holds guest->lock[mdev_guest[m]]" in texts   # one the fixpoint drops


def test_a_fact_s_text_names_one_candidate():
    """A fact's text names one candidate, so that a facts file starts the induction from exactly the
    facts it lists: the operation, the calls that inlined the line there, the file of a line in an
    imported file, and, for two facts of one text at a label that read different locals (the
    loop's `m` and a callee's), the line that made each."""
    cands = _Interleaved(build(load_program("models/vfio_ap_merged_2026.apm"))[0], 5000).candidates()
    texts = [c.text for c in cands]
    assert len(set(texts)) == len(texts)
    where = "a thread in vfio_ap_unbind_store at line 249 of common/vfio_ap_merged_core.apm (vfio_ap_queue_remove " \
        "called at line 123 of common/ap_bus.apm, vfio_ap_mdev_remove_queue called at line 238 of " \
        "common/vfio_ap_merged_core.apm): "
    assert where + "where mdev_kvm[m] != null, holds kvm->lock[mdev_kvm[m]]" in texts
    removed = "a thread in ap_scan_bus_adapter_removed at line 249 of common/vfio_ap_merged_core.apm (" \
        "vfio_ap_queue_remove called at line 148 of common/ap_bus.apm, vfio_ap_mdev_remove_queue called at " \
        "line 238 of common/vfio_ap_merged_core.apm): where mdev_kvm[m] != null, holds kvm->lock[mdev_kvm[m]]"
    assert {removed + " (from line 14)", removed + " (from line 247 of common/vfio_ap_merged_core.apm)"} <= set(texts)
    assert "a thread in ap_scan_bus_adapter_removed at line 45 (vfio_ap_on_scan_complete called at line 152 of " \
        "common/ap_bus.apm): not a not in host_apm" in texts   # line 45 of vfio_ap_merged_2026.apm itself
    texts = [c.text for c in _Interleaved(build(load_program("tests/models/hidden_lock.apm"))[0], 5000).candidates()]
    assert len(set(texts)) == len(texts)   # `wait until !busy releasing l`: four labels of one line
    assert {f"a thread in b_side at line 22 (point {k} of 4) owns m" for k in (1, 2, 3, 4)} <= set(texts)


def test_the_spec_s_loop_invariant_carries_the_proof_across_a_loop_head():
    """A loop head is a step boundary of the induction. unplug (tests/models/unplug_locked.apm)
    makes guest_configured false until its loop ends, holding the lock; from the operation's entry
    to the loop (nothing done), at the head, in the body and after the loop, the loop invariant of
    unplug_locked.aps says what the loop has done, and
    with it both invariants are proved for any number of threads. Without it, they are not."""
    program = load_program("tests/models/unplug_locked.apm", ["tests/models/unplug_locked.aps"])
    res = verify(program, VerifyConfig(interleaved_budget=300))   # about 40 s: past the default
    p = {r.name: r for r in res.properties}
    assert p["guest_configured"].verdict == p["shadow_configured"].verdict == "proved"
    texts = {c.text for c in _Interleaved(build(program)[0], 5000).candidates()}
    assert {"a thread in unplug at line 57: unplugged", "a thread in unplug at line 63: unplugged, every element done",
            "a thread in unplug at line 63: unplugged, the element taken done",
            "a thread in unplug at line 57: unplugged, as at the entry of the loop at line 57"} <= texts
    # at the head, "the element taken done" of the round before is the head's own candidate
    assert "a thread in unplug at line 57: unplugged, the element taken done" not in texts
    p, _ = results("tests/models/unplug_locked.apm", smt_timeout=2.0)
    assert p["guest_configured"].verdict == "holds" and p["shadow_configured"].verdict == "holds"


@pytest.mark.slow   # two fixpoints in which Z3 gives up on some candidates: a minute or two
def test_a_loop_invariant_with_the_element_taken_done_outlives_the_round_s_work():
    """scan_probe (tests/models/scan_probe.apm) links the queue each round takes, then ends the
    round with a step of its own. There, "not done yet" is false for the queue just linked; the
    loop invariant with the queue done (with the fact that it is no longer in the loop's set)
    carries the proof to the loop's head, and linked_to_guest
    is proved for any number of threads. Without it, linked_to_guest is not."""
    program = load_program("tests/models/scan_probe.apm", ["tests/models/scan_probe.aps"])
    lowered = build(program)[0]
    every = [c.text for c in _Interleaved(lowered, 10000).candidates()]
    assert "a thread in scan_adapter_added at line 51: added_unlinked, the element taken done" in every
    assert "a thread in scan_adapter_added at line 51: added_unlinked, the element taken not done yet" in every
    res = prove_interleaved(lowered, 10.0, 300.0)
    assert res.status == "proved" and "linked_to_guest" in res.proved
    res = prove_interleaved(lowered, 2.0, 300.0, start=[t for t in every if not t.endswith("taken done")])
    assert "linked_to_guest" not in res.proved


@pytest.mark.parametrize("model", ["models/vfio_ap_5_12.apm", "models/vfio_ap_v15.apm", "models/vfio_ap_merged.apm",
                                   "models/vfio_ap_merged_2026.apm"])
def test_every_candidate_of_a_shipped_model_translates(model):
    """A candidate Z3 cannot translate makes the whole induction `untranslatable` (5.12 once was,
    from a set-within fact on `vfio_ap_on_config_changed({}, {a})`'s untyped `{}`)."""
    ind = _Interleaved(build(load_program(model, ["specs/vfio_ap.aps"]))[0], 5000)
    for c in ind.candidates():
        c.fn(ind.pre, ind.t1 if c.threaded else None)


def _times_out_on(prop: str, monkeypatch, said=TIMED_OUT, times: int = 1) -> None:
    """Z3's query about `prop` at the first `times` step paths that ask it gives up (TIMED_OUT: its
    --smt-timeout runs out, as on a loaded machine), and it answers as usual after that."""
    broken, asked = _Interleaved._broken, []

    def flaky(self, path, alive, deadline=float("inf")):
        out = broken(self, path, alive, deadline)
        goals = [i for group in self._goals(path, alive).values() for i in group if alive[i].prop == prop]
        if goals and len(asked) < times:
            asked.append(path)
            out[goals[0]] = said
        return out
    monkeypatch.setattr(_Interleaved, "_broken", flaky)


def test_an_invariant_whose_query_timed_out_is_asked_again_at_the_fixpoint(monkeypatch):
    """locked_flip's `same`, dropped in round 1 where its query ran out of --smt-timeout, is asked
    again at the fixpoint with the facts dropped after it, and proved (`ask_again`: the explorer found
    it to hold). Where it times out every time, the second fixpoint stops after that round and the
    first stands. Not asked again: an invariant outside `ask_again`, and one where E-matching gave up
    (it would again)."""
    lowered, _ = build(load_program("tests/models/locked_flip.apm"))
    usual = prove_interleaved(lowered, 10.0, 60.0, jobs=1)
    _times_out_on("same", monkeypatch)
    told = []
    res = prove_interleaved(lowered, 10.0, 60.0, told.append, jobs=1, ask_again=["same"])
    assert res.status == "proved" and res.proved == ["same"] and res.dropped == {}
    assert res.kept == usual.kept and len(res.kept) == 6
    assert [t.rsplit(",", 1)[0] for t in told] == [   # the seconds at the end of each round's line
        "interleaved induction: 11 candidate facts over 3 step paths",
        "interleaved induction: round 1: 3 of 11 facts dropped",
        "interleaved induction: round 2: 4 of 8 facts dropped",
        "interleaved induction: round 3: 1 of 4 facts dropped",
        "interleaved induction: round 4: 0 of 3 facts dropped",
        "interleaved induction: a query about an invariant timed out: 6 facts dropped since asked again with the "
        "3 left",
        "interleaved induction: round 5: 3 of 9 facts dropped",
        "interleaved induction: round 6: 0 of 6 facts dropped"]
    _times_out_on("same", monkeypatch, times=99)   # every time
    told = []
    res = prove_interleaved(lowered, 10.0, 60.0, told.append, jobs=1, ask_again=["same"])
    assert res.status == "not-proved" and "same" in res.dropped
    assert [t.rsplit(",", 1)[0] for t in told[5:]] == [
        "interleaved induction: a query about an invariant timed out: 6 facts dropped since asked again with the "
        "3 left",
        "interleaved induction: round 5: 4 of 9 facts dropped",
        "interleaved induction: the second fixpoint dropped the invariants again: the one before stands"]
    _times_out_on("same", monkeypatch)
    assert prove_interleaved(lowered, 10.0, 60.0, jobs=1).status == "not-proved"   # the explorer violates it
    _times_out_on("same", monkeypatch, said=False)
    told = []
    res = prove_interleaved(lowered, 10.0, 60.0, told.append, jobs=1, ask_again=["same"])
    assert res.status == "not-proved" and len(told) == 5
    assert res.dropped == {"same": "unknown: Z3 gave up on a step that starts an operation (--smt-timeout)"}
