"""Malformed and ill-typed inputs: each gives its exact diagnostic (golden files) and exit status 2."""
import glob
import os

import pytest

from conftest import ROOT, run_main

CASES = sorted(glob.glob(os.path.join(ROOT, "tests", "errors", "*.apm")))


def test_at_least_thirty_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p))
def test_golden_diagnostic(path):
    rel = os.path.relpath(path, ROOT)
    proc = run_main("check", rel)
    with open(path[:-4] + ".expect", encoding="utf-8") as fh:
        expected = fh.read()
    assert proc.returncode == 2
    assert proc.stderr == expected
    assert "Traceback" not in proc.stderr
