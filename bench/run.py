"""Explorer throughput on the shipped models at growing bounds, with and without symmetry reduction.

Usage: python bench/run.py [--quick] [--json FILE]
Prints states, transitions, seconds, states per second and time to verdict per run.
"""
from __future__ import annotations

import argparse
import json
import time

from tabulate import tabulate

from apcheck.explore.engine import ExploreConfig
from apcheck.verify import VerifyConfig, load_program, verify

RUNS = [  # (model, scenario, bounds)
    ("models/vfio_ap_5_12.apm", None, {}),
    ("models/vfio_ap_5_12.apm", None, {"Adapter": 2}),
    ("models/vfio_ap_v15.apm", "locking", {}),
    ("models/vfio_ap_v15.apm", None, {}),
    ("models/vfio_ap_merged.apm", "config", {}),
    ("models/vfio_ap_merged.apm", "locking", {"Guest": 2}),
]
QUICK = RUNS[:3]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    rows, records = [], []
    for model, scenario, bounds in (QUICK if args.quick else RUNS):
        program = load_program(model, ["specs/vfio_ap.aps"])
        for symmetry in (True, False):
            start = time.monotonic()
            cfg = VerifyConfig(bounds, ExploreConfig(timeout=args.timeout, symmetry=symmetry), scenario=scenario)
            res = verify(program, cfg, ["specs/vfio_ap.aps"])
            total = time.monotonic() - start
            s = res.stats
            rec = {"model": model, "scenario": scenario or "all", "bounds": res.bounds, "symmetry": symmetry,
                   "states": s.states, "transitions": s.transitions, "search_seconds": round(s.seconds, 3),
                   "states_per_second": round(s.states_per_second), "time_to_verdict": round(total, 3),
                   "complete": s.complete}
            records.append(rec)
            rows.append([model.split("/")[-1], rec["scenario"], ",".join(f"{k}={v}" for k, v in bounds.items()) or "-",
                         "on" if symmetry else "off", s.states, s.transitions, f"{s.seconds:.2f}",
                         f"{s.states_per_second:,.0f}", f"{total:.2f}", "yes" if s.complete else s.limit])
    print(tabulate(rows, headers=["model", "scenario", "bounds", "symmetry", "states", "transitions", "search s",
                                  "states/s", "verdict s", "complete"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(records, fh, indent=1)


if __name__ == "__main__":
    main()
