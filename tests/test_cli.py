"""The command line: exit codes, clean errors, and no traceback whatever the input."""
import glob
import json
import random
import xml.etree.ElementTree as ET

from hypothesis import given, settings, strategies as st

from apcheck.cli import main
from apcheck.diagnostics import DiagnosticError
from apcheck.lang.check import check
from apcheck.lang.parser import parse
from conftest import run_cli, run_main


def test_verify_exit_codes():
    assert run_cli("verify", "tests/models/tutorial.apm", "-q").returncode == 0
    assert run_main("verify", "tests/models/abba.apm", "-q").returncode == 1
    assert run_main("verify", "tests/models/tutorial.apm", "-q", "--max-states", "3").returncode == 3
    proc = run_cli("verify", "tests/models/nope.apm")
    assert proc.returncode == 2 and "cannot read 'tests/models/nope.apm'" in proc.stderr


def test_bad_bound_is_a_usage_error():
    proc = run_cli("verify", "tests/models/tutorial.apm", "--bound", "Nope=2")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "apcheck: error: --bound names an undeclared sort 'Nope' (sorts: Dev)"
    assert run_main("verify", "tests/models/tutorial.apm", "--bound", "Dev").returncode == 2


def test_limits_must_be_positive():
    from conftest import run_main
    for option, message in (("--timeout", "--timeout must be positive"), ("--smt-timeout", "--smt-timeout must be positive"),
                            ("--max-memory", "--max-memory must be positive"),
                            ("--interleaved-budget", "--interleaved-budget must be positive")):
        done = run_main("verify", "tests/models/tutorial.apm", option, "0")
        assert done.returncode == 2 and done.stderr.strip() == f"apcheck: error: {message}"


def test_text_report_has_trace_and_lockdep_layout():
    out = run_cli("verify", "tests/models/abba.apm", "-q").stdout
    assert "WARNING: possible circular locking dependency detected" in out
    assert "Possible unsafe locking scenario" in out
    assert "t1 waits forever at tests/models/abba.apm:9: acquire b_lock (held by t2)" in out
    assert "wait-for cycle: t1 for t2 (b_lock), t2 for t1 (a_lock)" in out


def test_json_junit_sarif_parse():
    doc = json.loads(run_main("verify", "tests/models/abba.apm", "-q", "--format", "json").stdout)
    assert doc["schema"] == "apcheck-results" and doc["version"] == 1
    lo = next(p for p in doc["results"][0]["properties"] if p["name"] == "lock_order")
    assert [e["src"] for e in lo["cycle"]] == ["a_lock", "b_lock"]
    suites = ET.fromstring(run_main("verify", "tests/models/abba.apm", "-q", "--format", "junit").stdout)
    assert suites.find("testsuite").get("failures") == "2"
    sarif = json.loads(run_main("verify", "tests/models/abba.apm", "-q", "--format", "sarif").stdout)
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    assert results and all({"ruleId", "message", "level"} <= set(r) for r in results)
    assert "digraph" in run_main("verify", "tests/models/abba.apm", "-q", "--format", "dot").stdout


def test_check_accepts_shipped_files():
    proc = run_cli("check", "models/vfio_ap_5_12.apm", "models/vfio_ap_v15.apm", "models/vfio_ap_merged.apm",
                   "models/vfio_ap_merged_2026.apm", "specs/vfio_ap.aps", "tests/models/tutorial.apm")
    assert proc.returncode == 0, proc.stderr


def _front_end(text: str) -> None:
    try:
        check([parse(text, "fuzz.apm")], "fuzz.apm")
    except DiagnosticError as err:
        assert err.diagnostics and all(d.code for d in err.diagnostics)


def test_truncated_models_never_crash():
    with open("models/vfio_ap_v15.apm", encoding="utf-8") as fh:
        text = fh.read()
    rng = random.Random(7)
    for cut in sorted(rng.sample(range(len(text)), 150)):
        _front_end(text[:cut])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("opvarsetlockacquire{}()[]<>,:;=!-+*&|#?\"/ \n\tEBUSY01AbM_")),
               max_size=120))
def test_random_text_never_crashes(text):
    _front_end(text)


def test_main_returns_status_without_exiting(capsys):
    assert main(["check", "tests/models/tutorial.apm"]) == 0
    assert main(["verify"]) == 2


def test_expected_holds_got_proved_passes_verify_and_every_format(tmp_path):
    """An invariant expected `holds` that Z3 proves for every size meets its expectation everywhere."""
    spec = tmp_path / "proved.aps"
    spec.write_text("expect passthrough {\n    assigned_once: holds\n    guest_exclusive: holds\n"
                    "    one_guest_at_a_time: violated\n    deadlock: holds\n    defects: holds\n}\n")
    args = ["verify", "tests/models/passthrough.apm", "--spec", str(spec), "-q"]
    text = run_cli(*args)
    row = next(line for line in text.stdout.splitlines() if line.startswith("assigned_once"))
    assert "proved" in row and "(!)" not in row
    assert text.returncode == 0, text.stdout
    junit = run_main(*args, "--format", "junit")
    case = ET.fromstring(junit.stdout).find("testsuite/testcase[@name='assigned_once']")
    assert case.find("failure") is None
    sarif = json.loads(run_main(*args, "--format", "sarif").stdout)
    levels = {r["message"]["text"].split(":")[1].split()[0]: r["level"] for r in sarif["runs"][0]["results"]}
    assert levels["assigned_once"] == "note"


def test_fragments_check_alone_and_cannot_be_verified():
    """models/common/*.apm declare what they need from their importer: each checks alone; verifying
    one is an error at the declaration nobody defines."""
    frags = sorted(glob.glob("models/common/*.apm"))
    done = run_cli("check", *frags)
    assert done.returncode == 0, done.stderr
    assert all(f"{f}: ok (fragment: an importing model defines " in done.stdout for f in frags)
    done = run_cli("verify", "models/common/kvm.apm", "-q")
    assert done.returncode == 2
    assert "models/common/kvm.apm:15:1: error[E204]: procedure 'kvm_s390_handle_pqap' is declared but never " \
           "defined" in done.stderr
    assert "15 | proc kvm_s390_handle_pqap(g: Guest)" in done.stderr


def test_properties_for_some_models_only(tmp_path):
    """`for m { ... }` in a spec: the properties exist for the named models only."""
    model = tmp_path / "one.apm"
    model.write_text("sort S bound 1\nlock l: mutex\nop touch(s: S) {\n    acquire l\n    release l\n}\n"
                     "thread t runs touch\n")
    spec = tmp_path / "p.aps"
    spec.write_text("for one {\n    lockorder mine: l < l2\n}\nfor other {\n    lockorder theirs: x < y\n}\n")
    done = run_cli("verify", str(model), "--spec", str(spec), "-q")
    assert done.returncode == 2  # l2 is not a lock of model 'one'; the block for 'other' is not checked
    assert "undeclared lock 'l2'" in done.stderr and "'x'" not in done.stderr


def test_a_spec_without_expect_blocks_is_checked_against_the_models_given_with_it(tmp_path):
    spec = tmp_path / "open.aps"
    spec.write_text("invariant some_opened: forall d: Dev :: d in opened ==> d in present\n")
    done = run_cli("check", "tests/models/tutorial.apm", str(spec))
    assert done.returncode == 0, done.stderr
    assert f"{spec}: ok against tests/models/tutorial.apm" in done.stdout


def test_verify_rejects_expectations_for_a_missing_model(tmp_path):
    spec = tmp_path / "typo.aps"
    spec.write_text("expect tutorial {\n    deadlock: holds\n}\nexpect tutorail {\n    deadlock: holds\n}\n")
    done = run_cli("verify", "tests/models/tutorial.apm", "--spec", str(spec), "-q")
    assert done.returncode == 2
    assert f"{spec}:5:5: error[E504]: expectations for model 'tutorail', but there is no tutorail.apm" in done.stderr


def test_scenario_names_have_their_own_namespace(tmp_path):
    from conftest import run_main
    model = tmp_path / "sc.apm"
    model.write_text("enum Driver { none, zcrypt, vfio }\nlock l: mutex\nop t() {\n    acquire l\n    release l\n}\n"
                     "thread a runs t\nscenario vfio {\n    thread a runs t\n}\n")
    done = run_main("verify", str(model), "--scenario", "vfio", "-q", "--brief")
    assert done.returncode == 0, done.stderr
    model.write_text(model.read_text() + "scenario vfio {\n    thread c runs t\n}\n")
    done = run_main("check", str(model))
    assert done.returncode == 2 and "error[E202]: scenario 'vfio' is declared twice" in done.stderr
