"""Mutated models never crash apcheck: every mutant is accepted, or rejected with a positioned error
(file:line:col, exit 2); never an internal error (exit 4) and never a traceback.

Mutants come from the shipped and test models by deleting, duplicating, swapping and replacing
tokens and lines. The default suite runs FUZZ_DEFAULT of them; APCHECK_FUZZ=N (e.g. 10000, for a
nightly job) runs N: `APCHECK_FUZZ=10000 ./dev test tests/test_fuzz.py`."""
import glob
import os
import random
import re

import pytest

from conftest import run_main

FUZZ_DEFAULT = 300
SOURCES = sorted(glob.glob("tests/models/*.apm")) + ["models/vfio_ap_5_12.apm", "models/common/kvm.apm"]
WORDS = ["acquire", "release", "if", "else", "for", "in", "while", "wait", "until", "yield", "return", "call",
         "let", "op", "proc", "var", "lock", "sort", "thread", "runs", "scenario", "invariant", "cover",
         "lockorder", "expect", "import", "bound", "guarded_by", "trylock", "{", "}", "(", ")", "[", "]", ",", ":",
         ":=", "+=", "-=", "&&", "||", "==>", "!", "==", "!=", "<=", "null", "true", "false", "-EBUSY", "0", "7",
         "forall", "exists", "::", "#", "for m, n {", "releasing", "spinlock", "rwsem", "read"]
TOKEN = re.compile(r"\s+|[A-Za-z_][\w>-]*|\S")
LOCATED = re.compile(r"^\S+:[1-9]\d*:[1-9]\d*: error\[E\d{3}\]", re.M)


def mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True)
    for _ in range(rng.randint(1, 3)):
        how = rng.randrange(6)
        if how == 0 and lines:                      # delete a line
            del lines[rng.randrange(len(lines))]
        elif how == 1 and lines:                    # duplicate a line
            i = rng.randrange(len(lines))
            lines.insert(rng.randrange(len(lines) + 1), lines[i])
        else:
            tokens = TOKEN.findall("".join(lines))
            if not tokens:
                break
            i = rng.randrange(len(tokens))
            if how == 2:                            # delete a token
                del tokens[i]
            elif how == 3:                          # replace a token by a word of the language
                tokens[i] = rng.choice(WORDS)
            elif how == 4:                          # insert a word
                tokens.insert(i, " " + rng.choice(WORDS) + " ")
            else:                                   # swap two tokens
                j = rng.randrange(len(tokens))
                tokens[i], tokens[j] = tokens[j], tokens[i]
            lines = "".join(tokens).splitlines(keepends=True)
    return "".join(lines)


def run_mutants(count: int, tmp_path) -> None:
    rng = random.Random(20261125)
    texts = {p: open(p, encoding="utf-8").read() for p in SOURCES}
    for n in range(count):
        origin = rng.choice(SOURCES)
        folder = os.path.dirname(origin)
        path = os.path.join(folder, f".fuzz_{os.getpid()}.apm")  # beside the original: its imports resolve
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(mutate(texts[origin], rng))
        try:
            verify = ["verify", path, "-q", "--brief", "--max-states", "300", "--timeout", "2", "--no-induction"]
            for args in (["check", path], verify):
                done = run_main(*args)
                where = f"mutant {n} of {origin} (seed 20261125), apcheck {' '.join(args[:1])}"
                assert done.returncode != 4 and "Traceback" not in done.stderr, f"{where}: {done.stderr[-2000:]}"
                if done.returncode == 2:
                    assert LOCATED.search(done.stderr) or done.stderr.startswith("apcheck: error:"), \
                        f"{where}: a rejection without a position: {done.stderr[-2000:]}"
                    break
        finally:
            os.unlink(path)


@pytest.mark.slow
def test_mutated_models_never_crash(tmp_path):
    run_mutants(int(os.environ.get("APCHECK_FUZZ", FUZZ_DEFAULT)), tmp_path)
