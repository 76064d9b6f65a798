"""Dining philosophers: apcheck's explorer against SPIN on the same state graph.

Usage: python bench/philosophers.py [--sizes 8,10,12] [--engines native,python] [--json FILE]

For N philosophers, writes an apcheck model (N mutexes, philosopher i takes fork i, then fork
i+1 mod N, then releases both) and a statement-level Promela model of the same graph (one
process per philosopher looping over the four lock operations, forks as bytes). apcheck runs
with --no-symmetry --no-reduction (and, like SPIN, one thread), so both explore every interleaving of the four steps: the
state counts are equal. Each run is a fresh process; the table gives states, transitions, CPU
seconds, states per CPU second, peak memory and bytes per state (peak resident memory over the
empty process's, per state), and the ratio to SPIN when `spin` and a C compiler are installed
(Debian: apt-get install spin). A benchmark: quote medians and ratios from one run.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from tabulate import tabulate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def apcheck_model(n: int) -> str:
    out = [f"// {n} dining philosophers (bench/philosophers.py)"]
    out += [f"lock fork{i}: mutex" for i in range(n)]
    for i in range(n):
        left, right = i, (i + 1) % n
        out += [f"op eat{i}() {{", f"    acquire fork{left}", f"    acquire fork{right}",
                f"    release fork{right}", f"    release fork{left}", "}"]
    out += [f"thread phil{i} runs eat{i}" for i in range(n)]
    return "\n".join(out) + "\n"


def promela_model(n: int) -> str:
    """The same graph: forks hold 0 or the holder's number plus one; each of the N processes (no
    init process) loops over its four lock operations; a blocked acquire is a false guard."""
    out = [f"/* {n} dining philosophers (bench/philosophers.py) */", f"byte fork[{n}];"]
    out.append(f"active [{n}] proctype phil() {{")
    out.append(f"  byte left = _pid; byte right = (_pid + 1) % {n};")
    out.append("  do")
    out.append("  :: atomic { fork[left] == 0 -> fork[left] = _pid + 1 };")
    out.append("     atomic { fork[right] == 0 -> fork[right] = _pid + 1 };")
    out.append("     fork[right] = 0;")
    out.append("     fork[left] = 0")
    out.append("  od")
    out.append("}")
    return "\n".join(out) + "\n"


APCHECK_RUN = r"""
import json, resource, sys, time
from apcheck.commands.model import VerifyConfig, build, load_program
from apcheck.explore.engine import ExploreConfig
from apcheck.explore.system import bounds_of, scenario_system
from apcheck.commands.verify import verify
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
program = load_program(sys.argv[1])
engine = sys.argv[2]
build_s = 0.0
if engine == "native":  # build (or find in the cache) first: the CPU time is the search's
    from apcheck.explore.native.build import build as build_native
    from apcheck.explore.native.codegen import generate
    start = time.monotonic()
    lowered = build(program)[0]
    build_native(generate(scenario_system(lowered, bounds_of(program), program.system))[0])  # (lib, s)
    build_s = time.monotonic() - start
cpu = time.process_time()
res = verify(program, VerifyConfig(explore=ExploreConfig(symmetry=False, reduction=False, engine=engine, threads=1),
                                   induction=False))
cpu = time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"states": res.stats.states, "transitions": res.stats.transitions, "cpu": cpu,
                  "peak_kib": peak, "base_kib": base, "build_s": build_s,
                  "deadlock": [p.verdict for p in res.properties if p.name == "deadlock"][0]}))
"""


def run_apcheck(path: str, engine: str) -> dict:
    done = subprocess.run([sys.executable, "-c", APCHECK_RUN, path, engine], cwd=ROOT, capture_output=True,
                          text=True, check=True, env={**os.environ, "PYTHONPATH": ROOT})
    r = json.loads(done.stdout)
    r["bytes_per_state"] = (r["peak_kib"] - r["base_kib"]) * 1024 / max(r["states"], 1)
    return r


def run_spin(path: str, folder: str, expect_states: int) -> dict | None:
    if not (shutil.which("spin") and shutil.which("gcc")):
        return None
    subprocess.run(["spin", "-a", path], cwd=folder, check=True, capture_output=True)
    # BFS like apcheck; no partial-order reduction (apcheck runs with --no-reduction); large hash table
    subprocess.run(["gcc", "-O2", "-DBFS", "-DSAFETY", "-DNOREDUCE", "-DMEMLIM=16000", "-o", "pan", "pan.c"],
                   cwd=folder, check=True, capture_output=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    width = max(18, (2 * expect_states).bit_length())  # hash table slots: 2^width, about twice the states
    done = subprocess.run(["./pan", "-E", "-m100000000", f"-w{width}"], cwd=folder, capture_output=True, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = done.stdout
    stored = int(re.search(r"(\d+) states, stored", text).group(1))
    transitions = re.search(r"(\d+) transitions", text)
    memory = re.search(r"([\d.]+)\s+total actual memory usage", text)
    return {"states": stored, "transitions": int(transitions.group(1)) if transitions else None,
            "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), "wall": wall,
            "memory_mb": float(memory.group(1)) if memory else None,
            "bytes_per_state": float(memory.group(1)) * 2 ** 20 / stored if memory else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="8,9,10,11,12")
    ap.add_argument("--json", default=None)
    ap.add_argument("--engines", default="native,python",
                    help="apcheck cores to run (python is about 20x slower: use small sizes)")
    args = ap.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    rows, records = [], []
    with tempfile.TemporaryDirectory() as folder:
        for n in (int(x) for x in args.sizes.split(",")):
            model = os.path.join(folder, f"phil{n}.apm")
            with open(model, "w") as fh:
                fh.write(apcheck_model(n))
            pml = os.path.join(folder, f"phil{n}.pml")
            with open(pml, "w") as fh:
                fh.write(promela_model(n))
            runs = {e: run_apcheck(model, e) for e in engines}
            s = run_spin(pml, folder, next(iter(runs.values()))["states"])
            records.append({"n": n, **runs, "spin": s})
            for engine, a in runs.items():
                rate = a["states"] / max(a["cpu"], 1e-9)
                row = [n, engine, a["states"], a["transitions"], f"{a['cpu']:.2f}", f"{a['build_s']:.2f}",
                       f"{rate:,.0f}", f"{a['bytes_per_state']:,.0f}", a["deadlock"]]
                if s:
                    row += [s["states"], s["transitions"], f"{s['cpu']:.2f}",
                            f"{s['states'] / max(s['cpu'], 1e-9):,.0f}",
                            f"{s['bytes_per_state']:,.0f}" if s["bytes_per_state"] else "-",
                            f"{a['cpu'] / max(s['cpu'], 1e-9):.2f}x"]
                rows.append(row)
    headers = ["N", "core", "states", "transitions", "CPU s", "build s", "states/CPU s", "B/state", "deadlock"]
    if any(r["spin"] for r in records):
        headers += ["SPIN states", "SPIN transitions", "SPIN CPU s", "SPIN states/CPU s", "SPIN B/state",
                    "apcheck/SPIN CPU"]
    print(tabulate(rows, headers=headers))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(records, fh, indent=1)


if __name__ == "__main__":
    main()
