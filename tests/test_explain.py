"""`apcheck explain`: a lockdep report read and matched against a model's lock-order graph.

The report in tests/lockdep/ is written for the tests in lockdep's format (dmesg timestamps,
addresses, lockdep's own frames), with the dependency chain of the seed's v15 report."""
import pytest
from conftest import run_cli

from apcheck.lockdep import lock_name, parse_splat

SPLAT = "tests/lockdep/v15_assign_pqap_pv.txt"
OPTS = ("--spec", "specs/vfio_ap.aps", "--scenario", "locking", "-q", "--no-induction")


def test_parse_the_dependency_chain():
    splat = parse_splat(open(SPLAT).read())
    assert splat.chain == ["matrix_dev->lock", "kvm->lock", "vcpu->mutex"]
    edges = {(e.held, e.acquired): e for e in sorted(splat.edges, key=lambda e: e.entry)}
    assert set(edges) == {("kvm->lock", "vcpu->mutex"), ("matrix_dev->lock", "kvm->lock"),
                          ("vcpu->mutex", "matrix_dev->lock")}
    # lockdep's own frames are left out; the caller's stack stays, innermost first
    assert edges[("matrix_dev->lock", "kvm->lock")].frames[:3] == [
        "kvm_arch_crypto_set_masks", "vfio_ap_mdev_refresh_apcb", "assign_adapter_store"]
    assert lock_name("&matrix_dev->lock{+.+.}-{3:3}") == "matrix_dev->lock"


@pytest.mark.slow
def test_v15_explains_the_report():
    done = run_cli("explain", "models/vfio_ap_v15.apm", SPLAT, *OPTS)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count(": reached in the model") == 3
    assert "3 of the model's 3 functions appear on the lockdep stack" in out
    assert "the model explains the report" in out


@pytest.mark.slow
def test_5_12_lacks_one_dependency():
    done = run_cli("explain", "models/vfio_ap_5_12.apm", SPLAT, *OPTS)
    assert done.returncode == 1
    assert "#1 kvm->lock acquired while holding matrix_dev->lock: not in the model" in done.stdout
    assert "1 of 3 dependencies are not reached" in done.stdout


@pytest.mark.slow
def test_merged_has_no_such_lock_class():
    done = run_cli("explain", "models/vfio_ap_merged_2026.apm", SPLAT, *OPTS)
    assert done.returncode == 1
    assert "names a lock class the model does not declare" in done.stdout


def test_text_without_a_chain_and_missing_file_are_usage_errors(tmp_path):
    junk = tmp_path / "dmesg.txt"
    junk.write_text("[    0.000000] Linux version 6.1\n")
    done = run_cli("explain", "models/vfio_ap_v15.apm", str(junk), *OPTS)
    assert done.returncode == 2 and "no lockdep dependency chain found" in done.stderr
    done = run_cli("explain", "models/vfio_ap_v15.apm", str(tmp_path / "none.txt"), *OPTS)
    assert done.returncode == 2 and "cannot read" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_explain_runs_no_invariant_search_and_no_induction(monkeypatch):
    """explain needs the lock graph only: no property is evaluated in any state and Z3's induction
    never runs (it took the whole verification before)."""
    from apcheck.commands.explain import explain
    from apcheck.commands.model import VerifyConfig, load_program
    from apcheck.explore import engine
    from apcheck.smt import induction

    def no_induction(*args, **kw):
        raise AssertionError("explain ran Z3 induction")

    evaluated = []
    real = engine.check_props

    def spy(state, j, invariants, covers, *rest):
        if invariants or covers:
            evaluated.append(j)
        return real(state, j, invariants, covers, *rest)

    monkeypatch.setattr(induction, "prove_invariants", no_induction)
    monkeypatch.setattr("apcheck.commands.verify.prove_invariants", no_induction)
    monkeypatch.setattr(engine, "check_props", spy)
    program = load_program("models/vfio_ap_v15.apm", ["specs/vfio_ap.aps"])
    ex = explain(program, parse_splat(open(SPLAT).read()), VerifyConfig(scenario="locking", jobs=1))
    assert ex.explained
    assert evaluated == []
