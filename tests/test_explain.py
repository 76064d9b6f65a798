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
    # every function of every model chain is on lockdep's stack (`aka` names the kernel's symbols)
    assert out.count("3 of the model's 3 functions appear on the lockdep stack") == 2
    assert "2 of the model's 2 functions appear on the lockdep stack" in out
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
    ex = explain(program, parse_splat(open(SPLAT).read()), VerifyConfig(scenario="locking"))
    assert ex.explained
    assert evaluated == []


def _fixture() -> str:
    return open(SPLAT).read()


def test_a_report_cut_before_entry_0_invents_nothing():
    text = _fixture()
    cut = parse_splat(text[:text.index("-> #0")])
    assert {(e.held, e.acquired) for e in cut.edges} == {("kvm->lock", "vcpu->mutex"),
                                                         ("matrix_dev->lock", "kvm->lock")}
    assert cut.unread == ["the chain lacks entry #0"]
    # cut in the middle of the line that names #0: its stack is nobody's, #1's stack stays #1's
    mid = parse_splat(text[:text.index("-> #0") + 12] + "\n" + text[text.index("check_noncircular") - 30:])
    assert [e.frames for e in mid.edges if e.entry == 1][0][-1] == "kernfs_fop_write_iter"
    assert any("could not be read" in u for u in mid.unread)


def test_a_report_without_the_header_does_not_guess_entry_0s_held_lock():
    text = _fixture()
    body = text[text.index("the existing dependency chain"):]
    without_1 = body.replace("-> #1 (&kvm->lock)", "-> #7 (&kvm->lock)")
    splat = parse_splat(without_1)
    assert all(e.entry != 0 for e in splat.edges)
    assert any(u.startswith("#0 matrix_dev->lock: the lock held") for u in splat.unread)


def test_quoted_and_syslog_reports_read_like_dmesg():
    want = {(e.held, e.acquired, tuple(e.frames)) for e in parse_splat(_fixture()).edges}
    quoted = "\n".join("> " + line for line in _fixture().splitlines())
    syslog = "\n".join("Nov 25 21:00:00 s390host kernel: " + line.split("] ", 1)[-1] for line in _fixture().splitlines())
    for text in (quoted, syslog):
        got = parse_splat(text)
        assert {(e.held, e.acquired, tuple(e.frames)) for e in got.edges} == want
        assert got.unread == [] and got.chain == ["matrix_dev->lock", "kvm->lock", "vcpu->mutex"]


def test_lock_names_as_lockdep_prints_them():
    assert lock_name("&dev->mutex/1") == "dev->mutex"
    assert lock_name("&(&x)->rlock") == "x"
    assert lock_name("&(&kvm->mmu_lock)->rlock{-.-.}-{2:2}") == "kvm->mmu_lock"
    assert lock_name("&ep->mtx#2") == "ep->mtx"
    text = _fixture().replace("(&kvm->lock)", "(&(&kvm->lock)->rlock)").replace("(&vcpu->mutex)", "(&vcpu->mutex/1)")
    splat = parse_splat(text)
    assert {(e.held, e.acquired) for e in splat.edges} == {("kvm->lock", "vcpu->mutex"),
                                                           ("matrix_dev->lock", "kvm->lock"),
                                                           ("vcpu->mutex", "matrix_dev->lock")}
