"""`apcheck infer`: auxiliary invariants generated from the declarations, kept by Z3's Houdini
fixpoint, printed ready to paste into a spec; and a model that is proved only with one."""
import subprocess
import sys

import pytest

from apcheck.commands.infer import infer
from apcheck.commands.model import load_program
from apcheck.commands.verify import verify

MODEL = "tests/models/needs_aux.apm"
INVERSE = "forall k1: Dev :: owner[k1] != null ==> hook[owner[k1]] == k1"


def every_size(model: str, specs=()):
    res = verify(load_program(model, list(specs)), specs=list(specs))
    return {p.name: p for p in res.properties}["no_shared_guest"]


@pytest.mark.slow  # infer's proved_before == [] says the same in the fast tier
def test_the_invariant_alone_is_not_inductive():
    p = every_size(MODEL)
    assert p.verdict == "holds" and p.induction.status == "cti"
    assert p.induction.cti.op == "attach"


def test_infer_finds_the_auxiliary_invariant_and_what_it_proves():
    res = infer(MODEL)
    assert INVERSE in res.proved
    assert res.newly_proved == ["no_shared_guest"] and res.proved_before == [] and res.not_proved == []
    assert res.candidates == 4


def test_pasted_into_a_spec_it_makes_the_proof(tmp_path):
    spec = tmp_path / "aux.aps"
    spec.write_text(f"auxiliary invariant aux_2: {INVERSE}\n")
    p = every_size(MODEL, [str(spec)])
    assert p.verdict == "proved" and p.induction.status == "proved"
    assert "aux_2" in p.induction.hypothesis


@pytest.mark.slow
def test_cli_prints_paste_ready_lines_and_bad_input_is_a_diagnostic(tmp_path):
    out = subprocess.run([sys.executable, "-m", "apcheck", "infer", MODEL], capture_output=True, text=True)
    assert out.returncode == 0
    assert f"auxiliary invariant aux_2: {INVERSE}" in out.stdout.splitlines()
    assert "with them, Z3 proves: no_shared_guest" in out.stdout
    bad = tmp_path / "bad.apm"
    bad.write_text("sort S bound 1\nvar x: set<S> = {} guarded_by nolock\n")
    out = subprocess.run([sys.executable, "-m", "apcheck", "infer", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2 and "bad.apm:2:" in out.stderr and "Traceback" not in out.stderr
