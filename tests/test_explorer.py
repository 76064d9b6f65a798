"""The explorer on small models written for the purpose: exact state counts and traces."""
from apcheck.explore.engine import ExploreConfig
from apcheck.commands.model import VerifyConfig, load_program
from apcheck.commands.verify import verify


def run(path, symmetry=True, reduction=True, induction=True, **bounds):
    program = load_program(path)
    return verify(program, VerifyConfig(bounds=bounds, induction=induction,
                                        explore=ExploreConfig(symmetry=symmetry, reduction=reduction)))


def props(res):
    return {p.name: p for p in res.properties}


def test_abba_cycle_and_deadlock_trace():
    res = run("tests/models/abba.apm")
    p = props(res)
    assert res.stats.states == 6
    assert p["lock_order"].verdict == "violated"
    assert [(e.src, e.dst) for e in p["lock_order"].cycle] == [("a_lock", "b_lock"), ("b_lock", "a_lock")]
    dl = p["deadlock"]
    assert dl.verdict == "violated"
    steps = [(s.thread, s.op, s.text) for s in dl.trace.steps]
    assert steps == [("t1", "take_ab", "acquire a_lock"), ("t2", "take_ba", "acquire b_lock")]
    assert dl.trace.final == ["t1 waits forever at tests/models/abba.apm:9: acquire b_lock (held by t2)",
                              "t2 waits forever at tests/models/abba.apm:16: acquire a_lock (held by t1)",
                              "wait-for cycle: t1 for t2 (b_lock), t2 for t1 (a_lock)"]
    assert dl.trace.certain_at is None  # both are blocked where the deadlock becomes certain
    assert "reachable deadlock was also found" in p["lock_order"].notes[0]


def test_trylock_breaks_the_cycle():
    res = run("tests/models/trylock.apm")
    p = props(res)
    assert res.stats.states == 2  # each operation is one step: its releases are merged into it
    assert p["lock_order"].verdict == "proved"
    assert p["lock_order"].certificate == ["a_lock", "b_lock"]
    assert p["deadlock"].verdict == "holds"
    assert not any(e.src == "b_lock" and e.dst == "a_lock" for e in res.lock_edges)


def test_three_lock_cycle_with_call_chain():
    res = run("tests/models/three_locks.apm")
    p = props(res)
    cyc = p["lock_order"].cycle
    assert [(e.src, e.dst) for e in cyc] == [("la", "lb"), ("lb", "lc"), ("lc", "la")]
    assert [f.function for f in cyc[0].dst_site.chain] == ["inner_b", "ab"]
    assert p["deadlock"].verdict == "violated"
    assert len(p["deadlock"].trace.steps) == 3
    assert p["declared"].verdict == "violated"


def test_invariant_broken_by_one_interleaving():
    res = run("tests/models/lost_update.apm")
    p = props(res)
    assert res.stats.states == 28
    bad = p["no_lost_update"]
    assert bad.verdict == "violated"
    assert [(s.thread, s.text) for s in bad.trace.steps] == [
        ("w0", "let before = count"), ("w1", "let before = count"), ("w0", "yield"), ("w1", "yield")]
    assert p["counter_full"].verdict == "reached"
    assert len(p["counter_full"].trace.steps) == 2
    assert p["never_twice"].verdict == "unreachable"


def test_missed_unlock_on_error_path():
    res = run("tests/models/missed_unlock.apm")
    d = props(res)["defects"]
    assert d.verdict == "violated"
    assert d.message == "lock-held-at-return: claim returns -EBUSY with dev_lock still held"
    assert d.span.line == 9
    assert [(s.op, s.outcome.split(":")[0]) for s in d.trace.steps] == [
        ("claim", "returns 0; released dev_lock"), ("claim", "DEFECT at tests/models/missed_unlock.apm")]


def test_symmetry_keeps_verdicts_with_fewer_states():
    for path in ("tests/models/abba.apm", "tests/models/trylock.apm", "tests/models/three_locks.apm",
                 "tests/models/lost_update.apm", "tests/models/missed_unlock.apm", "tests/models/tutorial.apm"):
        # the reductions are the explorer's: its verdicts compared, Z3's proofs left out
        on, off = run(path, induction=False), run(path, symmetry=False, induction=False)
        assert {p.name: p.verdict for p in on.properties} == {p.name: p.verdict for p in off.properties}, path
        assert on.stats.states <= off.stats.states
    assert run("tests/models/tutorial.apm").stats.states < run("tests/models/tutorial.apm", symmetry=False).stats.states


def test_reduction_keeps_verdicts():
    import glob
    for path in sorted(glob.glob("tests/models/*.apm")):
        on, off = run(path, induction=False), run(path, reduction=False, induction=False)
        assert {p.name: p.verdict for p in on.properties} == {p.name: p.verdict for p in off.properties}, path
        assert on.stats.states <= off.stats.states


def test_limits_give_unknown_never_holds():
    program = load_program("tests/models/tutorial.apm")
    res = verify(program, VerifyConfig(explore=ExploreConfig(max_states=5)))
    p = props(res)
    assert p["opened_are_present"].verdict == "unknown"
    assert "max states 5" in p["opened_are_present"].message
    assert p["deadlock"].verdict == "unknown"
    assert not res.stats.complete


def test_deterministic():
    a, b = run("tests/models/lost_update.apm"), run("tests/models/lost_update.apm")
    assert [s.text for s in props(a)["no_lost_update"].trace.steps] == \
        [s.text for s in props(b)["no_lost_update"].trace.steps]


def test_the_tutorial_explores_the_states_its_documentation_says():
    import re
    doc = open("docs/language.md", encoding="utf-8").read()
    m = re.search(r"tutorial\.apm` explores (\d+) states \((\d+) with\s+`--no-reduction`, (\d+) with `--no-symmetry`\)",
                  doc)
    assert m, "docs/language.md no longer states the tutorial's state counts"
    program = load_program("tests/models/tutorial.apm")
    got = [verify(program, VerifyConfig(explore=ExploreConfig(reduction=r, symmetry=s), induction=False)).stats.states
           for r, s in ((True, True), (False, True), (True, False))]
    assert got == [int(x) for x in m.groups()]


def test_a_loop_that_never_exits_is_a_defect_not_a_hang(tmp_path):
    model = tmp_path / "spin.apm"
    model.write_text("var pending: bool = false\nop drain() {\n    while !pending {\n    }\n}\nthread t runs drain\n")
    p = props(verify(load_program(str(model))))["defects"]
    assert p.verdict == "violated"
    assert p.message == ("endless-step: a loop goes round 131,072 times without reaching a scheduling point: "
                         "it never exits")


def test_sleeping_with_a_spinlock_held_is_a_defect():
    res = run("tests/models/spin_sleep.apm")
    p = {x.name: x for x in res.properties}["defects"]
    assert p.verdict == "violated"
    assert p.message == ("sleep-in-atomic: acquires mutex config_mutex while holding spinlock state_lock "
                         "(sleeping function called from invalid context)")
    assert [s.op for s in p.trace.steps] == ["update", "update"]


def test_spinlocks_nest_and_a_mutex_outside_them_is_fine(tmp_path):
    model = tmp_path / "spin_ok.apm"
    model.write_text("lock outer: mutex\nlock a: spinlock\nlock b: spinlock\nvar x: bool = false\n"
                     "op nest() {\n    acquire outer\n    acquire a\n    acquire b\n    x := true\n"
                     "    release b\n    release a\n    release outer\n}\n"
                     "op try_under_spin() {\n    acquire a\n    if trylock outer {\n        release outer\n    }\n"
                     "    release a\n}\nthread t runs nest, try_under_spin\nthread u runs nest\n")
    res = verify(load_program(str(model)))
    assert {p.name: p.verdict for p in res.properties}["defects"] == "holds"


def test_a_guard_per_instance_catches_the_wrong_instance():
    """`guarded_by dev->lock[Dev]`: mark(a, b) touches b's entry holding a's lock, a defect; with the
    per-class guard the same model passes the data-race check (the soundness trap)."""
    res = run("tests/models/wrong_instance.apm")
    p = {x.name: x for x in res.properties}["defects"]
    assert p.verdict == "violated"
    assert p.message == ("unguarded: reads 'claimed' without holding dev->lock[Dev1] (the entry's lock "
                         "instance guards it)")
    assert [(s.op, s.args) for s in p.trace.steps] == [("mark", [("a", "Dev0"), ("b", "Dev1")])]


def test_the_same_race_under_a_per_class_guard_is_unseen(tmp_path):
    text = open("tests/models/wrong_instance.apm").read().replace("guarded_by dev->lock[Dev]", "guarded_by dev->lock")
    model = tmp_path / "per_class.apm"
    model.write_text(text)
    assert {p.name: p.verdict for p in verify(load_program(str(model))).properties}["defects"] == "holds"


def test_lock_order_edges_follow_lockdeps_rule():
    """The cycle is reported as lockdep records it (check_prevs_add: edges from the most recent held
    lock), a -> b -> c -> a, not through the closure's shortcut a -> c."""
    res = run("tests/models/lockdep_chain.apm")
    order = {p.name: p for p in res.properties}["lock_order"]
    assert order.verdict == "violated"
    assert order.message == "circular lock dependency: a -> b -> c -> a"
    assert {(e.src, e.dst) for e in res.lock_edges} == {("a", "b"), ("b", "c"), ("c", "a")}


def test_the_holds_line_of_a_defect_step_is_what_the_thread_held_there():
    """The step acquires dev_lock and then returns with it held: the defect's own step holds it."""
    res = run("tests/models/missed_unlock.apm")
    step = {p.name: p for p in res.properties}["defects"].trace.steps[-1]
    assert "returns -EBUSY with dev_lock still held" in step.outcome
    assert step.held == ["dev_lock"]


def test_a_deadlock_on_a_hidden_lock_is_explained_to_the_end():
    """The trace goes on past the point of no return until both threads are blocked, and ends with
    the wait-for cycle, naming the flag as a lock lockdep cannot see."""
    dl = props(run("tests/models/hidden_lock.apm"))["deadlock"]
    assert dl.verdict == "violated"
    assert dl.trace.certain_at is not None and len(dl.trace.steps) > dl.trace.certain_at
    assert dl.trace.final == [
        "a waits forever at tests/models/hidden_lock.apm:12: acquire m (held by b)",
        "b waits forever at tests/models/hidden_lock.apm:22 until !busy: a lock lockdep cannot see, to be let go by a",
        "wait-for cycle: a for b (m), b for a (until !busy)"]
    assert dl.trace.waiting == {"a": "acquire m (held by b)", "b": "until !busy (a lock lockdep cannot see)"}


def test_a_cycle_of_four_locks_is_reported_as_lockdep_does():
    from apcheck.report import render_format
    res = run("tests/models/four_locks.apm")
    p = props(res)
    assert p["lock_order"].message == "circular lock dependency: w -> x -> y -> z -> w"
    text = render_format(res, "text")
    assert "Chain exists of:\n  w --> x --> y --> z --> w" in text
    assert "CPU3" in text and text.count("lock(w);") == 2
    assert p["deadlock"].trace.final[-1] == "wait-for cycle: t1 for t2 (x), t2 for t3 (y), t3 for t4 (z), t4 for t1 (w)"


def test_rwsem_reads_follow_lockdeps_rules(tmp_path):
    """down_read is a non-recursive read for lockdep: a cycle through it is reported (a queued writer
    would make it a deadlock), while the readers alone never deadlock; a read/write inversion deadlocks."""
    reads = ("lock sem: rwsem\nlock m: mutex\n"
             "op a() {\n    acquire read sem\n    acquire m\n    release m\n    release sem\n}\n"
             "op b() {\n    acquire m\n    acquire read sem\n    release sem\n    release m\n}\n"
             "thread t1 runs a\nthread t2 runs b\nlockorder lock_order: acyclic\n")
    model = tmp_path / "reads.apm"
    model.write_text(reads)
    p = props(verify(load_program(str(model))))
    assert p["lock_order"].verdict == "violated" and p["deadlock"].verdict == "holds"
    model.write_text(reads.replace("op b() {\n    acquire m\n    acquire read sem", "op b() {\n    acquire m\n    acquire write sem"))
    p = props(verify(load_program(str(model))))
    assert p["lock_order"].verdict == "violated" and p["deadlock"].verdict == "violated"


def test_the_closure_of_held_locks_stays_an_option():
    from conftest import run_main
    assert "circular lock dependency: a -> c -> a" in run_main(
        "verify", "tests/models/lockdep_chain.apm", "-q", "--brief", "--lock-edges", "closure").stdout
    assert "circular lock dependency: a -> b -> c -> a" in run_main(
        "verify", "tests/models/lockdep_chain.apm", "-q", "--brief").stdout


def test_invariant_between_operations_is_judged_where_every_thread_is_idle():
    # `work` raises `busy` inside its operation and lowers it before it returns
    for engine in ("python", "native"):
        config = VerifyConfig(explore=ExploreConfig(engine=engine), induction=False)
        res = verify(load_program("tests/models/between_ops.apm"), config)
        props = {p.name: p for p in res.properties}
        assert props["idle_between"].verdict == "holds", engine
        assert props["idle_between"].message == ("holds in all 40 reachable states of the whole system (judged "
                                                 "where no operation is in progress)")
        assert props["idle_always"].verdict == "violated" and props["idle_always"].message == "violated after 1 steps"


def test_an_uncontended_leading_acquire_is_taken_with_the_start(tmp_path):
    """tests/models/device_lock.apm: only ctl takes dev->mutex, so probe and remove take it with their
    start (6 states; 84 with the reduction off, 24 with only the private releases merged); the
    verdicts and the lock-order edge dev->mutex -> set_lock are the same either way. With two ctl
    threads the lock is contended and it is a scheduling point again."""
    from apcheck.commands.model import build
    from apcheck.explore.system import leading_acquires
    on, off = run("tests/models/device_lock.apm"), run("tests/models/device_lock.apm", reduction=False)
    assert (on.stats.states, off.stats.states) == (6, 84)
    assert {p.name: p.verdict for p in on.properties} == {p.name: p.verdict for p in off.properties}
    assert props(on)["seen_present"].verdict == "proved"
    for res in (on, off):
        assert {(e.src, e.dst) for e in res.lock_edges} == {("dev->mutex", "set_lock")}
    text = open("tests/models/device_lock.apm").read()
    for ctl, leads in (("thread ctl runs", 1), ("thread ctl[2] runs", 0)):
        model = tmp_path / "m.apm"
        model.write_text(text.replace("thread ctl runs", ctl))
        low, _ = build(load_program(str(model)))
        threads = low.threads(low.program.system)
        got = {low.ops[i].name: len(lead) for i, lead in enumerate(leading_acquires(low, threads))}
        assert got == {"probe": leads, "remove": leads, "walk": 0}, ctl
