import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    """Golden files name paths relative to the repository root."""
    monkeypatch.chdir(ROOT)


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "apcheck", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
