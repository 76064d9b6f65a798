"""`apcheck ci` as a gate and `apcheck diff` between model versions, on small projects in tmp dirs."""
import json
import os
import textwrap

import pytest

from conftest import ROOT, run_cli

V1 = """
lock a_lock: mutex
lock b_lock: mutex
var x: bool = false guarded_by a_lock

op one() {
    acquire a_lock
    acquire b_lock
    x := true
    release b_lock
    release a_lock
}

op two() {
    acquire b_lock
    release b_lock
}

thread t[2] runs one, two

lockorder order: acyclic
"""

# the change under review: two() now takes a_lock inside b_lock
V2 = V1.replace("""    acquire b_lock
    release b_lock
}""", """    acquire b_lock
    acquire a_lock
    release a_lock
    release b_lock
}""")

SPEC = """
expect m {
    order: proved
    deadlock: holds
    defects: holds
}
"""


def project(tmp_path, model: str, spec: str = SPEC):
    (tmp_path / "m.apm").write_text(textwrap.dedent(model))
    (tmp_path / "s.aps").write_text(textwrap.dedent(spec))
    (tmp_path / "apcheck.toml").write_text('models = ["m.apm"]\nspecs = ["s.aps"]\n')
    return str(tmp_path / "apcheck.toml")


def test_ci_passes_when_every_verdict_matches(tmp_path):
    done = run_cli("ci", "--config", project(tmp_path, V1), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS" in done.stdout


def test_ci_fails_when_a_change_closes_a_lock_cycle(tmp_path):
    done = run_cli("ci", "--config", project(tmp_path, V2), "-q")
    assert done.returncode == 1
    out = done.stdout
    assert "m: order: expected proved, got violated -- new violation: circular lock dependency" in out
    assert "b_lock -> a_lock" in out or "a_lock -> b_lock -> a_lock" in out
    assert "m: deadlock: expected holds, got violated -- new violation" in out
    assert out.rstrip().endswith("FAIL")


def test_ci_writes_junit_sarif_and_html(tmp_path):
    cfg = project(tmp_path, V2)
    out = {ext: str(tmp_path / f"report.{ext}") for ext in ("xml", "sarif", "html")}
    done = run_cli("ci", "--config", cfg, "-q", "--junit", out["xml"], "--sarif", out["sarif"], "--html", out["html"])
    assert done.returncode == 1
    html = open(out["html"]).read()
    assert 'class="edge cycle-edge"' in html and "<svg class=\"sequence\"" in html
    assert json.load(open(out["sarif"]))["runs"][0]["results"]
    assert "<testsuite name=\"m\"" in open(out["xml"]).read()


def test_ci_fails_on_a_stale_expectation(tmp_path):
    stale = SPEC.replace("deadlock: holds", "deadlock: violated")
    done = run_cli("ci", "--config", project(tmp_path, V1, stale), "-q")
    assert done.returncode == 1
    assert "m: deadlock: expected violated, got holds -- stale expectation" in done.stdout


def test_ci_reuses_unchanged_verdicts_and_reverifies_changed_inputs(tmp_path):
    cfg = project(tmp_path, V1)
    assert run_cli("ci", "--config", cfg, "-q").returncode == 0
    again = run_cli("ci", "--config", cfg, "-q")
    assert "m (cached)" in again.stdout and again.returncode == 0
    (tmp_path / "m.apm").write_text(textwrap.dedent(V2))
    changed = run_cli("ci", "--config", cfg, "-q")
    assert changed.returncode == 1 and "(cached)" not in changed.stdout


def test_ci_gives_a_model_its_interleaved_budget(tmp_path, monkeypatch):
    """`interleaved_budget` (per model) tries the induction over the interleaved steps beyond its
    default size, as `verify --interleaved-budget` does."""
    import apcheck.smt.interleaved as interleaved
    from apcheck.commands.ci import run_ci
    monkeypatch.setattr(interleaved, "MAX_WORK", 1)
    model = open(os.path.join(ROOT, "tests", "models", "locked_flip.apm")).read()
    spec = "expect m {\n    same: holds\n    deadlock: holds\n    defects: holds\n}\n"
    cfg = project(tmp_path, model, spec)
    verdict = {p.name: p.verdict for p in run_ci(cfg, use_cache=False).runs[0].result.properties}
    assert verdict["same"] == "holds"
    (tmp_path / "apcheck.toml").write_text('models = ["m.apm"]\nspecs = ["s.aps"]\n'
                                           'interleaved_budget = { "m.apm" = 60 }\n')
    outcome = run_ci(cfg, use_cache=False)
    verdict = {p.name: p.verdict for p in outcome.runs[0].result.properties}
    assert verdict["same"] == "proved" and not outcome.mismatches



def test_an_expected_proved_is_decided_only_by_a_run_that_tries_the_proof(tmp_path, monkeypatch):
    """`same: proved` (tests/models/locked_flip.apm): a run that tries no proof for any number of threads
    (the induction too large without a budget, or --no-induction) has `holds`, which does not decide
    the expectation; a run that tries the proof and does not finish it fails it."""
    import apcheck.smt.interleaved as interleaved
    from apcheck.commands.model import VerifyConfig, load_program
    from apcheck.commands.verify import verify
    from apcheck.report.text import expected_cell
    monkeypatch.setattr(interleaved, "MAX_WORK", 1)
    (tmp_path / "m.apm").write_text(open(os.path.join(ROOT, "tests", "models", "locked_flip.apm")).read())
    (tmp_path / "s.aps").write_text("expect m {\n    same: proved\n}\n")
    program = load_program(str(tmp_path / "m.apm"), [str(tmp_path / "s.aps")])

    def same(**config):
        return {p.name: p for p in verify(program, VerifyConfig(**config)).properties}["same"]
    untried = same()
    assert untried.verdict == "holds" and not untried.judged and not untried.is_failure
    assert expected_cell(untried) == "proved (not decided by this run: the induction over the interleaved steps " \
        "is not tried at this size without --interleaved-budget)"
    assert same(induction=False).proof_not_tried == "--no-induction" and not same(induction=False).is_failure
    assert same(interleaved_budget=60).verdict == "proved"
    stopped = same(interleaved_budget=0)   # tried, and stopped before the fixpoint
    assert stopped.verdict == "holds" and stopped.proof_not_tried is None and stopped.is_failure
    assert expected_cell(stopped) == "proved (!)"


def test_ci_starts_a_model_s_induction_from_its_facts_file(tmp_path, monkeypatch):
    """`interleaved_facts` (per model with a budget): the induction starts from the file's facts, as
    `verify --interleaved-facts` does; a change of the file is a change of the inputs."""
    import apcheck.smt.interleaved as interleaved
    from apcheck.commands.ci import _load_cache, run_ci
    monkeypatch.setattr(interleaved, "MAX_WORK", 1)
    model = open(os.path.join(ROOT, "tests", "models", "locked_flip.apm")).read()
    spec = "expect m {\n    same: proved\n    deadlock: holds\n    defects: holds\n}\n"
    cfg = project(tmp_path, model, spec)
    (tmp_path / "m.facts").write_text("a thread owns l only where a path holds it\na thread in flip at line 8 owns l\n"
                                      "a thread in flip at line 10 owns l\na thread in flip at line 8: not a == b\n"
                                      "a thread in flip at line 10: a == b\n")
    (tmp_path / "apcheck.toml").write_text('models = ["m.apm"]\nspecs = ["s.aps"]\n'
                                           'interleaved_budget = { "m.apm" = 60 }\n'
                                           'interleaved_facts = { "m.apm" = "m.facts" }\n')
    told = []
    outcome = run_ci(cfg, progress=told.append)
    same = {p.name: p for p in outcome.runs[0].result.properties}["same"]
    assert same.verdict == "proved" and not outcome.mismatches
    assert same.message.count("m.facts)") == 1
    assert "interleaved induction: 6 candidate facts over 3 step paths" in told
    key = _load_cache(str(tmp_path))[0]["m.apm"]["hash"]
    (tmp_path / "m.facts").write_text("a thread owns l only where a path holds it\n")
    outcome = run_ci(cfg)
    assert not outcome.runs[0].cached and _load_cache(str(tmp_path))[0]["m.apm"]["hash"] != key
    assert [m.prop for m in outcome.mismatches] == ["same"]   # too few facts: holds, expected proved

@pytest.mark.slow
def test_ci_passes_on_a_shipped_model(tmp_path):
    model = os.path.join(ROOT, "models", "vfio_ap_5_12.apm")
    spec = os.path.join(ROOT, "specs", "vfio_ap.aps")
    (tmp_path / "apcheck.toml").write_text(f'models = ["{model}"]\nspecs = ["{spec}"]\n')
    done = run_cli("ci", "--config", str(tmp_path / "apcheck.toml"), "-q", "--no-cache")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every verdict matches its expectation: PASS" in done.stdout


def test_diff_reports_the_new_edge_with_its_call_chain(tmp_path):
    (tmp_path / "v1.apm").write_text(textwrap.dedent(V1))
    (tmp_path / "v2.apm").write_text(textwrap.dedent(V2))
    done = run_cli("diff", str(tmp_path / "v1.apm"), str(tmp_path / "v2.apm"), "-q")
    assert done.returncode == 1, done.stderr   # a new violation
    out = done.stdout
    assert "  + b_lock -> a_lock  [reached]" in out
    assert "      a_lock acquired at:\n        two (" in out
    assert "~ two: changed" in out and "one" not in out.split("operations:")[1].split("verdicts:")[0]
    assert "order: proved -> violated" in out
    assert "deadlock: holds -> violated" in out


def test_diff_json_and_no_change(tmp_path):
    (tmp_path / "v1.apm").write_text(textwrap.dedent(V1))
    done = run_cli("diff", str(tmp_path / "v1.apm"), str(tmp_path / "v1.apm"), "-q", "--format", "json")
    assert done.returncode == 0
    doc = json.loads(done.stdout)
    assert doc["edges_added"] == [] and doc["verdicts_changed"] == [] and doc["ops_changed"] == []
