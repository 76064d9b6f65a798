"""`apcheck extract`: the lock operations on every path of the functions of kernel-style C that
we wrote for these tests (tests/c/), read with tree-sitter without preprocessing."""
import json
import subprocess
import sys

import pytest

from apcheck.csource.extract import extract, lock_class

FIXTURE = "tests/c/locks_demo.c"


@pytest.fixture(scope="module")
def functions():
    return {f.name: f for f in extract([FIXTURE]).functions}


def sequences(f):
    return [[(e.op, e.lock) + ((e.via,) if e.via else ()) for e in p.events] for p in f.paths]


def when(path):
    return [(c.text, c.value) for c in path.conditions]


def test_lock_classes_are_named_as_lockdep_names_them():
    assert lock_class("&matrix_dev->mdevs_lock") == ("matrix_dev->mdevs_lock", "matrix_dev->mdevs_lock")
    assert lock_class("&matrix_mdev->kvm->lock") == ("kvm->lock", "matrix_mdev->kvm->lock")
    assert lock_class("&(&q->lock)") == ("q->lock", "q->lock")
    assert lock_class("&ap_perms_mutex") == ("ap_perms_mutex", "ap_perms_mutex")
    assert lock_class("&vcpu->kvm->arch.crypto.pqap_hook_rwsem") == ("kvm->arch.crypto.pqap_hook_rwsem",
                                                                      "vcpu->kvm->arch.crypto.pqap_hook_rwsem")
    assert lock_class("&vdev->dev_set->lock") == ("dev_set->lock", "vdev->dev_set->lock")


def test_a_conditional_lock_through_a_pointer_keeps_its_condition(functions):
    f = functions["widget_get_locks"]
    assert sequences(f) == [[("acquire", "host->lock"), ("acquire", "kvm->lock"), ("acquire", "host->list_lock")],
                            [("acquire", "host->lock"), ("acquire", "host->list_lock")]]
    assert when(f.paths[0]) == [("w->kvm", True)] and when(f.paths[1]) == [("w->kvm", False)]
    assert f.paths[0].events[1].instance == "w->kvm->lock"


def test_helpers_compose_and_the_same_condition_is_taken_the_same_way(functions):
    """widget_assign calls the lock and unlock helpers, which test w->kvm each: two paths, not four."""
    get = ("widget_get_locks",)
    put = ("widget_put_locks",)
    assert sequences(functions["widget_assign"]) == [
        [("acquire", "widget_perms_mutex"), ("acquire", "host->lock", get), ("acquire", "kvm->lock", get),
         ("acquire", "host->list_lock", get), ("release", "host->list_lock", put), ("release", "kvm->lock", put),
         ("release", "host->lock", put), ("release", "widget_perms_mutex")],
        [("acquire", "widget_perms_mutex"), ("acquire", "host->lock", get), ("acquire", "host->list_lock", get),
         ("release", "host->list_lock", put), ("release", "host->lock", put), ("release", "widget_perms_mutex")]]


def test_goto_unwinding_with_several_labels(functions):
    f = functions["widget_setup"]
    assert sequences(f) == [
        [("acquire", "host->lock"), ("acquire", "w->lock"), ("release", "w->lock"), ("release", "host->lock")],
        [("acquire", "host->lock"), ("acquire", "w->lock"), ("release", "w->lock"), ("release", "host->lock")],
        [("acquire", "host->lock"), ("release", "host->lock")]]
    assert [p.end for p in f.paths] == [78, 84, 84]  # the success return, then the two error exits
    assert [e.line for e in f.paths[1].events] == [68, 72, 81, 83]   # unwound at err_unlock_widget


def test_trylock_and_interruptible_locks_are_taken_where_they_succeed(functions):
    poke = functions["widget_poke"]
    assert sequences(poke) == [[], [("trylock", "w->lock"), ("release", "w->lock")]]
    assert [p.end for p in poke.paths] == [90, 93]
    wait = functions["widget_wait"]
    assert sequences(wait) == [[], [("acquire", "w->lock"), ("assert-held", "w->lock"), ("release", "w->lock")]]


def test_guard_releases_at_every_exit_of_its_scope(functions):
    f = functions["widget_guarded"]
    assert sequences(f) == [[("acquire", "host->lock"), ("release", "host->lock")],
                            [("acquire", "host->lock"), ("acquire", "kvm->lock"), ("release", "kvm->lock"),
                             ("release", "host->lock")]]
    assert [e.api for e in f.paths[1].events] == ["guard(mutex)", "scoped_guard(mutex)", "scoped_guard(mutex)",
                                                  "guard(mutex)"]


def test_spinlocks_iterators_and_switch(functions):
    assert sequences(functions["widget_irq"]) == [[("acquire", "w->irq_lock"), ("release", "w->irq_lock")]]
    assert sequences(functions["widget_scan"]) == [
        [("acquire", "host->list_lock"), ("acquire", "w->lock"), ("release", "w->lock"), ("release", "host->list_lock")],
        [("acquire", "host->list_lock"), ("release", "host->list_lock")]]
    f = functions["widget_switch"]
    assert sorted(sequences(f)) == [[], [("acquire", "host->sem")], [("acquire", "w->lock"), ("release", "w->lock")]]
    read = next(p for p in f.paths if p.events and p.events[0].lock == "host->sem")
    assert read.events[0].mode == "read" and read.events[0].instance == "w->host->sem"


def test_what_is_not_understood_is_listed_with_its_line(functions):
    macro = functions["widget_macro"]
    assert [(u.line, u.why) for u in macro.not_understood] == [
        (131, "the macro WIDGET_LOCK_ALL() (defined at tests/c/locks_demo.c:29) takes a lock, and macros are "
              "not expanded")]
    assert sequences(macro) == [[("release", "w->lock")]]
    block = functions["widget_unknown_block"]
    assert [(u.line, u.why) for u in block.not_understood] == [
        (164, "a block after the macro widget_do_magic(), which is not a known iterator")]
    assert sequences(block) == [[("acquire", "w->lock")]]


@pytest.mark.slow  # the in-process tests cover the same in the fast tier
def test_cli_listing_json_and_errors(tmp_path):
    run = [sys.executable, "-m", "apcheck", "extract"]
    out = subprocess.run(run + [FIXTURE], capture_output=True, text=True)
    assert out.returncode == 0
    assert "tests/c/locks_demo.c:47 widget_assign: 2 lock sequences" in out.stdout
    assert "  path 1, returning at line 61, when w->kvm:" in out.stdout
    assert ("    acquire kvm->lock [w->kvm->lock]  mutex_lock at tests/c/locks_demo.c:35  via widget_get_locks"
            in out.stdout)
    assert out.stdout.endswith("12 functions in 1 file, 12 with lock operations; 2 places not understood\n")
    doc = json.loads(subprocess.run(run + [FIXTURE, "--format", "json"], capture_output=True, text=True).stdout)
    assert doc["schema"] == "apcheck-extract/1" and len(doc["functions"]) == 12
    out = subprocess.run(run + [str(tmp_path / "missing.c")], capture_output=True, text=True)
    assert out.returncode == 2 and "cannot read" in out.stderr and "Traceback" not in out.stderr
