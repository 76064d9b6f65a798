"""The distributed search (apcheck/explore/cluster) against the single-machine native core.

Usage: python bench/cluster.py [--runs phil12,phil13,v15,merged] [--workers 1,2] [--json FILE]

Per run: the single-machine native core on 1 and 2 threads, then the distributed search on a local
Ray instance with 1 and 2 workers (one process each). Prints states, transitions, seconds (the
search and its deadlock analysis, not Ray's start), states per second, the ratio to the single
machine's 1-thread time, the bytes the workers' stores allocated per state, the bytes sent between
workers per transition, the BFS levels (barriers) and the analysis's rounds. Each run's counts are
checked equal across all four. The philosophers are bench/philosophers.py's model (no symmetry, no
release merging); the shipped models run their whole system with the spec's properties.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time

from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from philosophers import apcheck_model  # noqa: E402

from apcheck.commands.model import build, load_program  # noqa: E402
from apcheck.explore.engine import ExploreConfig, explore  # noqa: E402
from apcheck.explore.system import bounds_of, scenario_system  # noqa: E402

RUNS = {"phil12": ("phil", 12), "phil13": ("phil", 13), "v15": ("models/vfio_ap_v15.apm", None),
        "merged": ("models/vfio_ap_merged.apm", None)}


def system_of(name: str, folder: str):
    path, n = RUNS[name]
    specs = []
    if path == "phil":
        path = os.path.join(folder, f"phil{n}.apm")
        with open(path, "w") as f:
            f.write(apcheck_model(n))
    else:
        specs = ["specs/vfio_ap.aps"]
    program = load_program(path, specs)
    lowered, _ = build(program)
    plain = path.endswith(".apm") and os.path.basename(path).startswith("phil")
    return scenario_system(lowered, bounds_of(program), program.system), plain


def measure(system, plain: bool, **kw) -> dict:
    config = ExploreConfig(engine="native", symmetry=not plain, reduction=not plain, **kw)
    started = time.monotonic()
    r = explore(system, config)
    wall = time.monotonic() - started
    row = {"states": len(r.states), "transitions": r.transitions, "seconds": r.seconds, "wall": wall,
           "complete": r.complete, "violations": sorted(r.invariant_violations), "deadlock": r.deadlock is not None}
    for note in r.notes:
        m = re.search(r"search: (\d+) levels, ([\d.]+) s, ([\d,.]+) MiB sent between workers; deadlock analysis: "
                      r"(\d+) rounds, [\d,]+ masks exchanged, ([\d.]+) s, ([\d,.]+) MiB", note)
        if m:
            row.update(levels=int(m[1]), search_s=float(m[2]), sent_search=float(m[3].replace(",", "")) * 2 ** 20,
                       rounds=int(m[4]), stuck_s=float(m[5]), sent_stuck=float(m[6].replace(",", "")) * 2 ** 20)
        m2 = re.findall(r"([\d,]+) states \(([\d,]+) MiB\)", note) if note.startswith("distributed") else []
        if m2:
            row["worker_rss_mib"] = [int(mib.replace(",", "")) for _, mib in m2]
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="phil12,phil13,v15,merged")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import ray
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    results, table = [], []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.runs.split(","):
            system, plain = system_of(name, folder)
            explore(system, ExploreConfig(engine="native", max_states=10))   # build (or find) the core first
            rows = {f"native {t} thread{'s' if t > 1 else ''}": measure(system, plain, threads=t) for t in (1, 2)}
            for w in (int(x) for x in args.workers.split(",")):
                rows[f"cluster {w} worker{'s' if w > 1 else ''}"] = measure(system, plain, cluster="auto", workers=w)
            base = rows["native 1 thread"]
            for how, row in rows.items():
                assert (row["states"], row["transitions"], row["violations"], row["deadlock"]) == \
                       (base["states"], base["transitions"], base["violations"], base["deadlock"]), (name, how)
                sent = row.get("sent_search", 0) + row.get("sent_stuck", 0)
                table.append([name, how, f"{row['states']:,}", f"{row['transitions']:,}", f"{row['seconds']:.1f}",
                              f"{row['states'] / row['seconds']:,.0f}", f"{base['seconds'] / row['seconds']:.2f}",
                              f"{sent / row['transitions']:.0f}" if "levels" in row else "-",
                              row.get("levels", "-"), row.get("rounds", "-"),
                              f"{row.get('search_s', 0):.1f} + {row.get('stuck_s', 0):.1f}" if "levels" in row else "-"])
                results.append({"run": name, "how": how, **row})
    ray.shutdown()
    print(tabulate(table, headers=["run", "how", "states", "transitions", "s", "states/s", "vs 1 thread",
                                   "bytes sent/transition", "levels", "rounds", "search + analysis s"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
