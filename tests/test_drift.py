"""`apcheck drift`: each kind of drift between tests/c/widget.apm and an edited copy of
tests/c/widget.c is reported with both locations; the unedited pair has none."""
import json
import subprocess
import sys

import pytest

from apcheck.commands.drift import drift
from apcheck.commands.model import load_program

MODEL = "tests/c/widget.apm"
SOURCE = open("tests/c/widget.c").read()


def drifted(tmp_path, old: str, new: str, count: int = 1):
    assert SOURCE.count(old) == count, old
    path = tmp_path / "widget.c"
    path.write_text(SOURCE.replace(old, new))
    report = drift(load_program(MODEL), [str(tmp_path)])
    return [(f.kind, f.function, f.message, f.c_site, f.model_site) for f in report.findings], str(path)


def test_the_model_and_its_source_agree():
    report = drift(load_program(MODEL), ["tests/c/widget.c"])
    assert report.findings == [] and not report.drifted
    assert sorted(report.compared) == [("widget_assign", "widget_assign"), ("widget_get_locks", "widget_get_locks"),
                                       ("widget_poke", "widget_poke"), ("widget_put_locks", "widget_put_locks")]


def test_an_acquisition_added(tmp_path):
    found, path = drifted(tmp_path, "\tw->busy = 0;\n", "\tmutex_lock(&host->lock);\n\tw->busy = 0;\n"
                                                      "\tmutex_unlock(&host->lock);\n")
    assert found == [("added", "widget_poke", "widget_poke takes host->lock; widget_poke does not", (path, 41),
                      (MODEL, 40))]  # the model has no such acquire: its site is the procedure


def test_an_acquisition_removed(tmp_path):
    found, path = drifted(tmp_path, "\tmutex_lock(&widget_perms_mutex);\n", "")
    assert found == [("removed", "widget_assign", "widget_assign takes widget_perms_mutex; widget_assign no longer "
                      "does", (path, 27), (MODEL, 32))]


def test_acquisitions_reordered(tmp_path):
    found, path = drifted(tmp_path, "\tmutex_lock(&host->lock);\n\tif (w->kvm)\n\t\tmutex_lock(&w->kvm->lock);\n"
                                    "\tmutex_lock(&host->list_lock);\n",
                          "\tmutex_lock(&host->list_lock);\n\tmutex_lock(&host->lock);\n\tif (w->kvm)\n"
                          "\t\tmutex_lock(&w->kvm->lock);\n")
    kinds = [(k, fn, msg) for k, fn, msg, _, _ in found]
    assert ("reordered", "widget_get_locks",
            "widget_get_locks takes host->list_lock before host->lock; widget_get_locks takes host->lock before "
            "host->list_lock") in kinds
    assert all(k == "reordered" for k, *_ in found)


def test_a_trylock_turned_blocking(tmp_path):
    found, path = drifted(tmp_path, "\tif (!mutex_trylock(&w->lock))\n\t\treturn -EAGAIN;\n",
                          "\tmutex_lock(&w->lock);\n")
    assert found == [("trylock-now-blocking", "widget_poke", "widget_poke takes w->lock blocking; widget_poke only "
                      "tries it", (path, 39), (MODEL, 41))]


def test_a_lock_taken_through_a_pointer_that_may_be_null(tmp_path):
    found, path = drifted(tmp_path, "\tif (w->kvm)\n\t\tmutex_lock(&w->kvm->lock);\n", "\tmutex_lock(&w->kvm->lock);\n")
    assert found == [("null-check", "widget_get_locks", "widget_get_locks takes w->kvm->lock without testing w->kvm; "
                      "widget_get_locks takes kvm->lock only where kvm_of[w] != null", (path, 14), (MODEL, 18))]


def test_a_function_that_takes_a_modelled_lock_and_has_no_procedure(tmp_path):
    found, path = drifted(tmp_path, "static int widget_poke", "static void widget_reset(void)\n{\n"
                          "\tmutex_lock(&host->lock);\n\tmutex_unlock(&host->lock);\n}\n\nstatic int widget_poke")
    assert found == [("not-modelled", "widget_reset", "widget_reset takes host->lock and no procedure of the model "
                      "has its name", (path, 39), None)]


@pytest.mark.slow  # the in-process tests cover the same in the fast tier
def test_cli_exit_status_and_formats(tmp_path):
    run = [sys.executable, "-m", "apcheck", "drift", MODEL, "--source"]
    ok = subprocess.run(run + ["tests/c/widget.c"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.endswith("no drift: every compared procedure locks as its C function "
                                                     "does\n")
    (tmp_path / "widget.c").write_text(SOURCE.replace("\tmutex_lock(&widget_perms_mutex);\n", ""))
    bad = subprocess.run(run + [str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert f"removed: widget_assign takes widget_perms_mutex; widget_assign no longer does" in bad.stdout
    assert f"    C:     {tmp_path}/widget.c:27  (widget_assign)" in bad.stdout
    assert f"    model: {MODEL}:32  (widget_assign)" in bad.stdout
    doc = json.loads(subprocess.run(run + [str(tmp_path), "--format", "json"], capture_output=True, text=True).stdout)
    assert doc["drifted"] is True and doc["findings"][0]["kind"] == "removed"
    sarif = json.loads(subprocess.run(run + [str(tmp_path), "--format", "sarif"], capture_output=True,
                                      text=True).stdout)
    res = sarif["runs"][0]["results"][0]
    assert res["ruleId"] == "drift/removed"
    assert res["relatedLocations"][0]["physicalLocation"]["region"]["startLine"] == 32
    missing = subprocess.run(run + [str(tmp_path / "nope")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such file or directory" in missing.stderr


def test_a_helper_inlined_on_one_side_is_no_drift(tmp_path):
    """The C takes the locks in widget_assign itself where the model calls widget_get_locks: the
    sequences are compared with the calls followed, so they agree."""
    found, _ = drifted(tmp_path, "\twidget_get_locks(w);\n",
                       "\tmutex_lock(&host->lock);\n\tif (w->kvm)\n\t\tmutex_lock(&w->kvm->lock);\n"
                       "\tmutex_lock(&host->list_lock);\n")
    assert found == []
