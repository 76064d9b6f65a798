"""Interleaved facts files (commands/facts.py): `apcheck infer --interleaved` writes the facts the
induction over the interleaved steps kept; `verify --interleaved-facts` starts from them, checks
them again, and proves no more than the file lets Z3 prove."""
import subprocess
import sys

from apcheck.commands.facts import read_facts
from apcheck.commands.model import VerifyConfig, load_program
from apcheck.commands.verify import verify

MODEL = "tests/models/locked_flip.apm"
FACTS = ["a thread owns l only where a path holds it", "a thread in flip at line 8 owns l",
         "a thread in flip at line 10 owns l", "a thread in flip at line 8: not a == b",
         "a thread in flip at line 10: a == b"]


def apcheck(*args):
    return subprocess.run([sys.executable, "-m", "apcheck", *args], capture_output=True, text=True)


def same_from(path, rounds: list[str]):
    config = VerifyConfig(interleaved_budget=60, interleaved_facts=read_facts(str(path)),
                          smt_progress=rounds.append)
    res = verify(load_program(MODEL), config)
    return {p.name: p for p in res.properties}["same"], res.stats.notes


def test_infer_writes_the_facts_kept_and_verify_proves_from_them_in_one_round(tmp_path):
    facts = tmp_path / "flip.facts"
    out = apcheck("infer", MODEL, "--interleaved", "-o", str(facts))
    assert out.returncode == 0, out.stderr
    assert "proved for any number of threads: same, with 5 facts kept" in out.stderr
    lines = facts.read_text().splitlines()
    assert lines[2] == "// `same` for any number of threads."
    assert [ln for ln in lines if not ln.startswith("//")] == FACTS
    rounds = []
    same, _ = same_from(facts, rounds)
    assert same.verdict == "proved" and same.method.engine == "z3-interleaved"
    assert f"with 5 facts of ownership and program points (from {facts})" in same.message
    assert [r for r in rounds if "round" in r] == ["interleaved induction: round 1: 0 of 6 facts dropped, 0 s"]


def test_a_fact_the_model_no_longer_has_is_named_and_the_others_still_prove(tmp_path):
    facts = tmp_path / "stale.facts"
    facts.write_text("\n".join(FACTS + ["a thread at line 99: x == y"]) + "\n")
    same, notes = same_from(facts, [])
    assert same.verdict == "proved"
    assert f"1 of the 6 facts of {facts} are not candidates of the model (it changed since they were found?), " \
        "such as 'a thread at line 99: x == y': the induction starts from the others" in notes


def test_too_few_facts_prove_less_never_more(tmp_path):
    facts = tmp_path / "few.facts"
    facts.write_text("// only ownership\na thread owns l only where a path holds it\n")
    same, _ = same_from(facts, [])
    assert same.verdict == "holds" and same.method.engine != "z3-interleaved"
    assert any(n.startswith("any number of threads: not inductive") for n in same.notes)


def test_bad_facts_and_flags_are_usage_errors(tmp_path):
    empty = tmp_path / "empty.facts"
    empty.write_text("// nothing\n\n")
    cases = [(["verify", MODEL, "--interleaved-facts", str(empty), "--interleaved-budget", "60"],
              f"apcheck: error: {empty} holds no interleaved facts (one per line; `//` starts a comment)"),
             (["verify", MODEL, "--interleaved-facts", str(tmp_path / "none"), "--interleaved-budget", "60"],
              f"apcheck: error: cannot read the interleaved facts {tmp_path / 'none'}: No such file or directory"),
             (["verify", MODEL, "--interleaved-facts", str(empty)],
              "apcheck: error: --interleaved-facts needs --interleaved-budget (the seconds the induction may take)"),
             (["infer", MODEL, "--threads", "2"],
              "apcheck: error: --interleaved-budget, --threads, --interleaved-facts and --output go with "
              "--interleaved")]
    for args, message in cases:
        out = apcheck(*args)
        assert (out.returncode, out.stderr.strip()) == (2, message)


def test_infer_writes_no_facts_where_nothing_is_proved(tmp_path):
    facts = tmp_path / "racy.facts"
    out = apcheck("infer", "tests/models/racy_flip.apm", "--interleaved", "-o", str(facts))
    assert out.returncode == 3 and not facts.exists()
    assert "not proved: same: not inductive: a step from line 12 breaks it" in out.stderr


def test_infer_renews_a_facts_file_from_an_older_one(tmp_path):
    """`infer --interleaved --interleaved-facts OLD`: the fixpoint from OLD's candidates, written
    anew; a fact the model no longer has is named and left out."""
    old, new = tmp_path / "old.facts", tmp_path / "new.facts"
    old.write_text("\n".join(FACTS + ["a thread at line 99: x == y"]) + "\n")
    out = apcheck("infer", MODEL, "--interleaved", "--interleaved-facts", str(old), "-o", str(new))
    assert out.returncode == 0, out.stderr
    assert f"started from the facts of {old}; 1 of them are not candidates of the model (it changed since?), " \
        "such as 'a thread at line 99: x == y'" in out.stderr
    assert [ln for ln in new.read_text().splitlines() if not ln.startswith("//")] == FACTS
