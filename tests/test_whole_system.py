"""Verdicts about the whole system: a defect ends only its thread, coverage and vacuity, scenarios
as parts of the system, and properties at the bounds they need."""
import json

from conftest import run_main

from apcheck.commands.model import VerifyConfig, load_program
from apcheck.commands.verify import verify, verify_at_needed_bounds
from apcheck.explore.engine import ExploreConfig
from apcheck.report.html import render_html
from apcheck.report.json_report import render_json


def result(path: str, specs=(), **config):
    program = load_program(path, list(specs))
    return verify(program, VerifyConfig(**config), list(specs))


def prop(res, name):
    return next(p for p in res.properties if p.name == name)


def test_a_violation_after_another_threads_defect_is_reported_with_the_defect():
    for engine in ("python", "native"):
        res = result("tests/models/after_defect.apm", explore=ExploreConfig(engine=engine))
        assert prop(res, "defects").verdict == "violated"
        assert prop(res, "defects").message == "assert: assertion failed"
        inv = prop(res, "never_half_done")
        assert inv.verdict == "violated" and inv.message == "violated after 2 steps"
        first, second = inv.trace.steps
        assert first.thread == "t1" and first.outcome.startswith("DEFECT at tests/models/after_defect.apm:13:5")
        assert first.outcome.endswith("the thread ends here, holding its locks")
        assert first.held == ["state_lock"]  # as an oops leaves it
        assert second.thread == "t2" and [(c.var, c.new) for c in second.changes] == [("seen_half_done", "true")]
        # the dead thread holds state_lock forever, but nobody waits for it: no deadlock
        assert prop(res, "deadlock").verdict == "holds"
        assert res.stats.states == 3 and res.stats.transitions == 4


def test_threads_waiting_behind_a_dead_thread_are_not_a_deadlock():
    """tests/models/spin_sleep.apm: the thread that sleeps holding the spinlock dies holding it; the
    one that then waits for the spinlock waits because of the defect, which is reported."""
    res = result("tests/models/spin_sleep.apm")
    assert prop(res, "defects").verdict == "violated"
    assert prop(res, "deadlock").verdict == "holds"


def test_an_invariant_whose_writer_never_completes_is_vacuous():
    res = result("tests/models/vacuous.apm")
    p = prop(res, "active_are_present")
    assert p.verdict == "holds" and p.vacuous == "retire never completes"
    assert p.verdict_text == "holds (vacuous: retire never completes)"
    assert p.judged_verdict == "vacuous"
    (cov,) = res.coverage
    assert cov.scenario == "whole system" and cov.complete
    assert [(o.op, o.started, o.returned, o.succeeded) for o in cov.operations] == [
        ("activate", 6, 6, 6), ("retire", 6, 6, 0)]
    assert [(s.span.line, s.text) for s in cov.never_executed] == [
        (27, "present -= {d}"), (28, "release list_lock"), (29, "return 0")]
    doc = json.loads(render_json([res]))["results"][0]
    jp = next(p for p in doc["properties"] if p["name"] == "active_are_present")
    assert jp["vacuous"] == "retire never completes" and jp["verdict"] == "holds"
    assert doc["coverage"][0]["operations"][1] == {"op": "retire", "started": 6, "returned": 6, "succeeded": 0,
                                                   "completes": None, "trace": None}
    assert doc["coverage"][0]["statements"][0]["span"]["file"] == "tests/models/vacuous.apm"
    html = render_html([res])
    assert "Coverage of the whole system" in html and "3 of 12 statements never executed" in html


def test_a_vacuous_holds_fails_an_expected_holds_and_meets_an_expected_vacuous(tmp_path):
    spec = tmp_path / "s.aps"
    spec.write_text("expect vacuous {\n    active_are_present: holds\n    deadlock: holds\n    defects: holds\n"
                    "    lock_order: proved\n}\n")
    done = run_main("verify", "tests/models/vacuous.apm", "--spec", str(spec), "--no-induction", "-q", "--brief")
    assert done.returncode == 1, done.stdout
    assert "holds (vacuous: retire never completes)  holds (!)" in done.stdout
    spec.write_text(spec.read_text().replace("active_are_present: holds", "active_are_present: vacuous"))
    done = run_main("verify", "tests/models/vacuous.apm", "--spec", str(spec), "--no-induction", "-q", "--brief")
    assert done.returncode == 0, done.stdout


def test_coverage_is_the_same_from_both_cores():
    py = result("tests/models/report_demo.apm", explore=ExploreConfig(engine="python"), induction=False)
    nat = result("tests/models/report_demo.apm", explore=ExploreConfig(engine="native"), induction=False)
    assert py.coverage == nat.coverage
    assert [(o.op, o.succeeded) for o in py.coverage[0].operations] == [
        ("claim", 48), ("give_back", 128), ("reset_table", 8), ("reset_slots", 8)]


def test_a_scenario_verdict_is_the_scenarios(tmp_path):
    """rwsem_inversion: the whole system is r, w, again; scenario `recursive` is `again` alone. Its
    holds is that scenario's and decides no expectation; its violation is the system's."""
    whole = result("tests/models/rwsem_inversion.apm", induction=False)
    assert list(whole.scenarios) == ["whole system"]
    part = result("tests/models/rwsem_inversion.apm", scenario="recursive", induction=False)
    assert part.scenarios == {"recursive": ["again"]}
    assert prop(part, "deadlock").verdict == "violated"  # the self-deadlock of reread: the system's too
    dl = prop(part, "defects")
    assert dl.verdict == "holds" and dl.verdict_text == "holds in scenario recursive" and dl.partial
    spec = tmp_path / "s.aps"
    spec.write_text("expect rwsem_inversion {\n    defects: holds\n}\n")
    done = run_main("verify", "tests/models/rwsem_inversion.apm", "--spec", str(spec), "--scenario", "recursive",
                    "--no-induction", "-q", "--brief")
    assert "holds in scenario recursive  holds (whole model, not decided by this run)" in done.stdout


def test_a_property_below_the_bounds_it_needs_is_trivial_and_ci_runs_it_at_them(tmp_path):
    spec = tmp_path / "s.aps"
    spec.write_text("invariant at_most_two needs Dev=3: forall a: Dev, b: Dev :: a in opened && b in opened "
                    "==> a == b || true\n")
    program = load_program("tests/models/tutorial.apm", [str(spec)])
    res = verify(program, VerifyConfig(induction=False), [str(spec)])
    p = prop(res, "at_most_two")
    assert p.verdict == "holds" and p.trivial == "needs Dev=3, explored at Dev=2"
    assert p.verdict_text == "holds (trivial: needs Dev=3, explored at Dev=2)"
    raised = verify_at_needed_bounds(program, VerifyConfig(induction=False), [str(spec)])
    q = prop(raised, "at_most_two")
    assert q.verdict == "holds" and q.trivial is None
    assert q.message.endswith("(at Dev=3, the bounds it needs)")
    assert dict(q.method.bounds) == {"Dev": 3}
    assert [c.bounds for c in raised.coverage] == [{"Dev": 2}, {"Dev": 3}]
    assert any(n.startswith("at_most_two explored at Dev=3, the bounds it needs") for n in raised.stats.notes)


def test_every_operation_gets_a_cover_that_it_completes_with_its_shortest_trace():
    """The automatic cover "OP completes" of each operation: the fewest steps to its first
    successful return, and the trace (ending with that return), in both cores alike; an operation
    that never completes has none, and the coverage says so in every format."""
    for engine in ("python", "native"):
        res = result("tests/models/vacuous.apm", explore=ExploreConfig(engine=engine))
        (cov,) = res.coverage
        activate, retire = cov.operations
        assert activate.completes == 1 and retire.completes is None
        (last,) = activate.trace.steps
        assert (last.thread, last.op, last.outcome) == ("user", "activate", "returns 0; released list_lock")
        assert [(c.var, c.new) for c in last.changes] == [("active", "{Dev0}")]
    doc = json.loads(render_json([res]))["results"][0]["coverage"][0]["operations"]
    assert doc[0]["completes"] == 1 and len(doc[0]["trace"]["steps"]) == 1
    assert doc[1]["completes"] is None and doc[1]["trace"] is None
    html = render_html([res])
    assert "first completes" in html and "never" in html
    assert "<details><summary>activate completes after 1 step</summary><svg" in html   # its trace, folded
    assert "retire completes" not in html
