"""Explorer throughput and time to verdict on the shipped models.

Usage: python bench/run.py [--quick] [--engines native,python] [--json FILE]
Prints, per run and explorer core, states, transitions, search seconds (the scenarios' searches
added up), the exploration's wall time, states per second (per search), the process's CPU seconds
(one thread, Z3 left out), the ratio of the Python core's CPU seconds to the native core's (not on
the whole systems of millions of states, which only the native core explores), and the native
core's speed-up with --threads (search seconds); the first runs also without symmetry and without
the release merging. The native core's builds are made (or found in the cache) before the timing.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from tabulate import tabulate

from apcheck.commands.model import VerifyConfig, build, load_program, select_scenarios
from apcheck.commands.verify import verify
from apcheck.explore.engine import ExploreConfig
from apcheck.explore.native.build import build as build_native
from apcheck.explore.native.codegen import generate
from apcheck.explore.system import bounds_of, scenario_system


def warm_up(program, bounds: dict, scenario: str | None) -> None:
    """Build the native core of every scenario of the run (or find it in the cache)."""
    lowered = build(program)[0]
    for sc in select_scenarios(program, scenario):
        build_native(generate(scenario_system(lowered, bounds_of(program, bounds), sc))[0])

RUNS = [  # (model, scenario (None: the whole system), bounds, compare: also without symmetry and without
          # the reduction, python: the Python core too (not on whole systems of millions of states))
    ("models/vfio_ap_5_12.apm", "masks", {}, True, True),
    ("models/vfio_ap_v15.apm", "locking", {}, True, True),
    ("models/vfio_ap_5_12.apm", None, {}, False, True),
    ("models/vfio_ap_v15.apm", "masks", {"Adapter": 2}, False, True),
    ("models/vfio_ap_merged_2026.apm", "locking", {"Guest": 2}, False, True),
    ("models/vfio_ap_v15.apm", None, {}, False, False),
    ("models/vfio_ap_merged.apm", None, {}, False, False),
    ("models/vfio_ap_merged_2026.apm", None, {}, False, False),
]
QUICK = RUNS[:2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--engines", default="native,python")
    ap.add_argument("--threads", type=int, default=2, help="native core: also with this many threads (search s)")
    args = ap.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    rows, records = [], []
    for model, scenario, bounds, compare, python in (QUICK if args.quick else RUNS):
        program = load_program(model, ["specs/vfio_ap.aps"])
        if "native" in engines:
            warm_up(program, bounds, scenario)
        variants = [(True, True), (False, True), (True, False)] if compare else [(True, True)]
        for symmetry, reduction in variants:
            cpu_of = {}
            for engine in [e for e in engines if python or e != "python"]:
                start, cpu = time.monotonic(), time.process_time()
                explore = ExploreConfig(timeout=args.timeout, symmetry=symmetry, reduction=reduction, engine=engine,
                                        threads=1)
                cfg = VerifyConfig(bounds=bounds, explore=explore, scenario=scenario, induction=False)
                res = verify(program, cfg, ["specs/vfio_ap.aps"])
                total, cpu = time.monotonic() - start, time.process_time() - cpu
                speedup = ""
                if engine == "native" and args.threads > 1:  # the same searches with more threads
                    more = verify(program, replace(cfg, explore=replace(explore, threads=args.threads)),
                                  ["specs/vfio_ap.aps"])
                    speedup = f"{res.stats.search_seconds / max(more.stats.search_seconds, 1e-9):.2f}x"
                cpu_of[engine] = cpu
                s = res.stats
                rec = {"model": model, "scenario": scenario or "whole system", "bounds": res.bounds, "symmetry": symmetry,
                       "reduction": reduction, "engine": engine, "cores": s.cores,
                       "states": s.states, "transitions": s.transitions, "search_seconds": round(s.search_seconds, 3),
                       "wall_seconds": round(s.seconds, 3), "cpu_seconds": round(cpu, 3),
                       "states_per_second": round(s.states_per_second), "time_to_verdict": round(total, 3),
                       "complete": s.complete, "threads_speedup": speedup}
                records.append(rec)
                ratio = f"{cpu_of['python'] / max(cpu, 1e-9):.1f}x" if engine == "native" and "python" in cpu_of \
                    else ("" if engine == "native" else "-")
                rows.append([model.split("/")[-1], rec["scenario"],
                             ",".join(f"{k}={v}" for k, v in bounds.items()) or "-",
                             "on" if symmetry else "off", "on" if reduction else "off", "+".join(s.cores), s.states,
                             s.transitions, f"{s.search_seconds:.2f}", f"{s.seconds:.2f}", f"{s.states_per_second:,.0f}",
                             f"{cpu:.2f}", ratio, speedup, "yes" if s.complete else s.limit])
            if "native" in cpu_of and "python" in cpu_of:  # the ratio on the native row
                rows[-1 - engines[::-1].index("native")][12] = f"{cpu_of['python'] / max(cpu_of['native'], 1e-9):.1f}x"
    print(tabulate(rows, headers=["model", "scenario", "bounds", "symmetry", "reduction", "core", "states",
                                  "transitions", "search s", "explore wall s", "states/s", "CPU s", "python/native CPU",
                                  f"{args.threads} threads", "complete"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(records, fh, indent=1)


if __name__ == "__main__":
    main()
