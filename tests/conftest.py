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


def run_main(*args: str) -> subprocess.CompletedProcess:
    """The CLI in this process (no interpreter start-up): its exit status, stdout and stderr, as
    run_cli returns them. For the many small cases; run_cli checks the real process."""
    import contextlib
    import io

    from apcheck.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["apcheck", *args], int(code), out.getvalue(), err.getvalue())
