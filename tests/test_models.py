"""The shipped vfio_ap models: the seed's verdicts, the cycle, the deadlock, the findings.

Claims are pinned on the whole system and on the scenario that shows them; the whole-system
runs at the default bounds (about two minutes together on two cores) pin every verdict and the
exact state counts."""
import functools

import pytest

from apcheck.explore.engine import ExploreConfig
from apcheck.commands.model import VerifyConfig, load_program
from apcheck.commands.verify import verify, verify_at_needed_bounds

SPEC = ["specs/vfio_ap.aps"]

pytestmark = pytest.mark.slow  # minutes: ./dev test --fast leaves them out


def run(model, scenario=None, **bounds):
    program = load_program(f"models/{model}.apm", SPEC)
    return verify(program, VerifyConfig(bounds=bounds, scenario=scenario), SPEC)


def verdicts(res):
    return {p.name: p.verdict for p in res.properties}


def prop(res, name):
    return next(p for p in res.properties if p.name == name)


@pytest.fixture(scope="module")
def v512():
    return run("vfio_ap_5_12")


@functools.cache
def whole(model):
    """The whole system, each property at the bounds it needs: what apcheck ci runs."""
    program = load_program(f"models/{model}.apm", SPEC)
    return verify_at_needed_bounds(program, VerifyConfig(), SPEC)


def test_5_12_every_verdict_as_expected(v512):
    for p in v512.properties:
        assert p.judged_verdict == p.expected, p.name
    assert v512.stats.states == 392752


def test_5_12_deficiencies(v512):
    assert prop(v512, "no_host_guest_sharing").scenario == "whole system"
    masks = run("vfio_ap_5_12", scenario="masks")
    assert prop(masks, "no_host_guest_sharing").verdict == "violated"
    unbind = run("vfio_ap_5_12", scenario="unbind")
    bad = prop(unbind, "guest_apqn_bound_to_vfio")
    assert bad.verdict == "violated"
    assert bad.trace.steps[-1].op == "vfio_ap_unbind_store"
    assert prop(v512, "lock_order").certificate is not None


def test_5_12_kvm_busy_deadlock_hidden_from_lockdep(v512):
    """Certain after 9 steps; one more runs the vCPU into its wait for kvm_busy, a lock lockdep
    cannot see, and the report ends with the wait-for cycle."""
    dl = prop(v512, "deadlock")
    assert dl.scenario == "whole system"
    assert dl.message == "deadlock after 9 steps: vcpu, pv, qemu can never move again"
    assert len(dl.trace.steps) == 10 and dl.trace.certain_at == 9
    assert dl.trace.final == [
        "vcpu waits forever at models/vfio_ap_5_12.apm:262 until m not in kvm_busy: a lock lockdep cannot see, "
        "to be let go by qemu",
        "pv waits forever at models/common/kvm.apm:45: acquire vcpu->mutex[Guest0] (held by vcpu)",
        "qemu waits forever at models/common/kvm_masks_5x.apm:15: acquire kvm->lock[Guest0] (held by pv)",
        "wait-for cycle: vcpu for qemu (until m not in kvm_busy), qemu for pv (kvm->lock[Guest0]), pv for vcpu "
        "(vcpu->mutex[Guest0])"]


def test_v15_cycle_is_the_seeds():
    res = run("vfio_ap_v15", scenario="locking")
    lo = prop(res, "lock_order")
    assert lo.verdict == "violated"
    assert {(e.src, e.dst) for e in lo.cycle} == {("matrix_dev->lock", "kvm->lock"), ("kvm->lock", "vcpu->mutex"),
                                                  ("vcpu->mutex", "matrix_dev->lock")}
    by_dst = {e.dst: e for e in lo.cycle}
    assert [f.function for f in by_dst["kvm->lock"].dst_site.chain] == [
        "kvm_arch_crypto_set_masks", "vfio_ap_mdev_refresh_apcb", "assign_adapter_store"]
    assert [f.function for f in by_dst["vcpu->mutex"].dst_site.chain] == ["kvm_s390_cpus_to_pv", "kvm_s390_handle_pv"]
    assert [f.function for f in by_dst["matrix_dev->lock"].dst_site.chain] == [
        "handle_pqap", "kvm_s390_handle_pqap", "kvm_vcpu_ioctl_run"]
    dl = prop(res, "deadlock")
    assert dl.verdict == "violated"
    assert dl.message.startswith("deadlock after 7 steps")
    assert len(dl.trace.steps) == 9 and dl.trace.certain_at == 7  # on until sysfs blocks too
    assert dl.trace.final[-1] == ("wait-for cycle: sysfs for pv (kvm->lock[Guest0]), pv for vcpu "
                                  "(vcpu->mutex[Guest0]), vcpu for sysfs (matrix_dev->lock)")
    assert res.stats.states == 33972


def test_v15_locking_without_the_reduction():
    """Every step on its own (no release merged): the same verdicts, a longer shortest trace."""
    program = load_program("models/vfio_ap_v15.apm", SPEC)
    res = verify(program, VerifyConfig(explore=ExploreConfig(reduction=False), scenario="locking"), SPEC)
    reduced = run("vfio_ap_v15", scenario="locking")
    assert verdicts(res) == verdicts(reduced)
    assert prop(res, "deadlock").message.startswith("deadlock after 10 steps")
    assert len(prop(res, "deadlock").trace.steps) == 12
    assert res.stats.states == 93035


def test_v15_capabilities_and_race_finding():
    res = run("vfio_ap_v15", scenario="config")
    v = verdicts(res)
    assert v["hot_plug_into_running_guest"] == "reached"
    assert v["overprovisioned_apqn_reaches_guest"] == "reached"
    assert v["no_host_guest_sharing"] == "holds"
    bad = prop(res, "guest_apqn_bound_to_vfio")
    assert bad.verdict == "violated"
    ops = [s.op for s in bad.trace.steps]
    assert "vfio_ap_mdev_group_notifier_set" in ops and "ap_scan_bus_adapter_removed" in ops


def test_merged_null_kvm_lock_in_cfg_remove():
    res = run("vfio_ap_merged", scenario="config")
    d = prop(res, "defects")
    assert d.verdict == "violated"
    # the message names the null pointer and the mdev (the kernel's matrix_mdev->kvm of an mdev with no guest)
    assert d.message == ("null-instance: takes kvm->lock of mdev_kvm[m], which is null (m = Mdev1): an instance "
                         "that does not exist")
    assert [f.function for f in d.trace.steps[-1].chain] == [
        "vfio_ap_mdev_cfg_remove", "vfio_ap_on_config_changed", "ap_scan_bus_adapter_removed"]
    assert len(d.trace.steps) == 3
    assert prop(res, "deadlock").verdict == "holds"


def test_merged_2026_fix_and_hierarchy():
    res = run("vfio_ap_merged_2026", scenario="config")
    v = verdicts(res)
    assert v["defects"] == "holds"
    assert v["guest_apqn_configured"] == "holds"
    assert v["lock_hierarchy"] in ("holds", "proved")
    assert v["lock_order"] in ("holds", "proved")


@pytest.mark.parametrize("model, states", [("vfio_ap_v15", 23031908), ("vfio_ap_merged", 58809502),
                                           ("vfio_ap_merged_2026", 60669186)])
def test_whole_system_at_default_bounds(model, states):
    """The whole system at the default bounds: each verdict as the spec expects, and the exact state
    count (symmetry and the release merging on), so a change in the explorer or a model shows.
    merged_2026's expected `proved` (any number of threads) is decided by `apcheck ci`, which starts
    the induction from its facts file; this run does not try it."""
    res = whole(model)
    for p in res.properties:
        assert not p.is_failure, p.name
        assert p.judged or p.proof_not_tried and p.expected == "proved" and model == "vfio_ap_merged_2026", p.name
    assert res.stats.complete
    assert res.stats.states == states


def test_v15_shares_a_queue_between_host_and_guest():
    """Only the whole system shows it: finding 2 leaves the adapter in the guest, unassigning it
    then commits nothing, in_use lets apmask reserve it, and the adapter comes back bound to zcrypt."""
    bad = prop(whole("vfio_ap_v15"), "no_host_guest_sharing")
    assert bad.verdict == "violated" and bad.message == "violated after 27 steps"
    ops = [s.op for s in bad.trace.steps]
    assert ops.index("ap_scan_bus_adapter_removed") < ops.index("unassign_adapter_store") \
        < ops.index("apmask_store") < ops.index("ap_scan_bus_adapter_added")
    assert bad.trace.steps[-1].op == "ap_scan_bus_adapter_added"
    assert prop(run("vfio_ap_v15", scenario="masks"), "no_host_guest_sharing").verdict == "holds"


def test_merged_configuration_invariants_hold_once_the_guestless_mdev_can_go():
    """The adapter removal of 6.0 ends in the NULL kvm->lock defect while an mdev without a guest
    exists (two mdevs, one guest); with mdevctl removing that mdev before the callbacks walk the
    list, it completes, so the invariants that read what it writes are put to the test, and hold
    (not vacuously)."""
    res = whole("vfio_ap_merged")
    for name in ("no_host_guest_sharing", "guest_apqn_configured", "guest_apqn_bound_to_vfio",
                 "no_apqn_assigned_twice"):
        p = prop(res, name)
        assert p.verdict == "holds" and p.vacuous is None, name
    assert prop(res, "defects").verdict == "violated"
    cov = {o.op: o for o in res.coverage[0].operations}
    done = cov["ap_scan_bus_adapter_removed"]
    assert done.completes == 14
    ops = [s.op for s in done.trace.steps]
    assert ops[-1] == "ap_scan_bus_adapter_removed" and "vfio_ap_mdev_remove" in ops[:-1]
    assert prop(whole("vfio_ap_merged_2026"), "guest_apqn_configured").vacuous is None


def test_merged_2026_leaves_the_pqap_hook_on_a_freed_mdev():
    """Finding 6 (6.0 alike): an open of a second mdev with the guest of a running one points the guest's PQAP
    hook at it before vfio_ap_mdev_set_kvm returns -EPERM; removing that mdev then frees what the
    hook points into. 5.12 and v15 set the hook only after the check (the expectations pin holds)."""
    bad = prop(whole("vfio_ap_merged_2026"), "no_stale_pqap_hook")
    assert bad.verdict == "violated" and bad.message == "violated after 13 steps"
    calls = []
    for s in bad.trace.steps:
        if not calls or calls[-1][:2] != (s.op, s.args):
            calls.append((s.op, s.args, s.outcome))
        else:
            calls[-1] = (s.op, s.args, s.outcome)
    assert [(op, dict(args).get("m")) for op, args, _ in calls] == [
        ("vfio_ap_mdev_open_device", "Mdev0"), ("vfio_ap_mdev_open_device", "Mdev1"), ("vfio_ap_mdev_remove", "Mdev1")]
    assert [outcome.split(";")[0] for _, _, outcome in calls] == ["returns 0", "returns -EPERM", "returns 0"]
    hook = [c for s in bad.trace.steps for c in s.changes if c.var.startswith("pqap_hook")]
    assert len(hook) == 2
    assert prop(whole("vfio_ap_merged"), "no_stale_pqap_hook").message == "violated after 13 steps"


@pytest.mark.parametrize("model", ["vfio_ap_merged", "vfio_ap_merged_2026"])
def test_merged_configuration_invariants_are_proved_for_every_size(model):
    """The "every size" column: with the spec's auxiliary invariants of the design (each of which the
    explorer finds to hold) and the bus scan's loop invariants, Z3 proves the configuration
    invariants with each operation atomic; the verdict stays the explorer's (the operations lock)."""
    res = whole(model)
    for name in ("no_host_guest_sharing", "no_guest_guest_sharing", "guest_apqn_configured",
                 "guest_apqn_bound_to_vfio", "no_apqn_assigned_twice", "shadow_linked", "no_scan_between_operations"):
        p = prop(res, name)
        assert p.verdict == "holds" and p.induction.status == "proved", (name, p.induction.message)
    for li in ("removed_unlinked", "added_unlinked"):
        assert any(n.startswith(f"loop invariant {li} (specs/vfio_ap.aps:") and ": proved: " in n
                   for n in res.stats.notes), li
