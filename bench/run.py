"""Explorer throughput and time to verdict on the shipped models.

Usage: python bench/run.py [--quick] [--json FILE]
Prints states, transitions, search seconds (the scenarios' searches added up), the exploration's wall
time, states per second (per search) and the wall time to the verdict
(scenarios in parallel, Z3 included) per run; the first runs also without symmetry and without
the release merging, for comparison.
"""
from __future__ import annotations

import argparse
import json
import time

from tabulate import tabulate

from apcheck.explore.engine import ExploreConfig
from apcheck.commands.model import VerifyConfig, load_program
from apcheck.commands.verify import verify

RUNS = [  # (model, scenario, bounds, compare: also without symmetry and without the reduction)
    ("models/vfio_ap_5_12.apm", None, {}, True),
    ("models/vfio_ap_v15.apm", "locking", {}, True),
    ("models/vfio_ap_5_12.apm", None, {"Adapter": 2}, False),
    ("models/vfio_ap_v15.apm", None, {}, False),
    ("models/vfio_ap_merged.apm", None, {}, False),
    ("models/vfio_ap_merged_2026.apm", None, {}, False),
    ("models/vfio_ap_merged_2026.apm", "locking", {"Guest": 2}, False),
]
QUICK = RUNS[:2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    rows, records = [], []
    for model, scenario, bounds, compare in (QUICK if args.quick else RUNS):
        program = load_program(model, ["specs/vfio_ap.aps"])
        variants = [(True, True), (False, True), (True, False)] if compare else [(True, True)]
        for symmetry, reduction in variants:
            start = time.monotonic()
            explore = ExploreConfig(timeout=args.timeout, symmetry=symmetry, reduction=reduction)
            cfg = VerifyConfig(bounds=bounds, explore=explore, scenario=scenario)
            res = verify(program, cfg, ["specs/vfio_ap.aps"])
            total = time.monotonic() - start
            s = res.stats
            rec = {"model": model, "scenario": scenario or "all", "bounds": res.bounds, "symmetry": symmetry,
                   "reduction": reduction,
                   "states": s.states, "transitions": s.transitions, "search_seconds": round(s.search_seconds, 3),
                   "wall_seconds": round(s.seconds, 3),
                   "states_per_second": round(s.states_per_second), "time_to_verdict": round(total, 3),
                   "complete": s.complete}
            records.append(rec)
            rows.append([model.split("/")[-1], rec["scenario"], ",".join(f"{k}={v}" for k, v in bounds.items()) or "-",
                         "on" if symmetry else "off", "on" if reduction else "off", s.states, s.transitions,
                         f"{s.search_seconds:.2f}", f"{s.seconds:.2f}",
                         f"{s.states_per_second:,.0f}", f"{total:.2f}", "yes" if s.complete else s.limit])
    print(tabulate(rows, headers=["model", "scenario", "bounds", "symmetry", "reduction", "states", "transitions",
                                  "search s", "explore wall s", "states/s", "verdict s", "complete"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(records, fh, indent=1)


if __name__ == "__main__":
    main()
