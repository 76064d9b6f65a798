"""Time to verdict of the induction over the interleaved steps (any number of threads).

Usage: python bench/interleaved.py [--models 5_12,merged_2026] [--budget SECONDS] [--jobs N]
                                   [--smt-timeout SECONDS] [--json FILE]
Prints, per shipped model, the candidate facts, the step paths, the rounds of the fixpoint, the facts
kept, the model's invariants proved, the status and the wall seconds (with --jobs processes; Z3 is
most of it). One run per model: the machine is shared, so quote the figures of one run.
"""
from __future__ import annotations

import argparse
import json
import re
import time

from tabulate import tabulate

from apcheck.commands.model import build, load_program
from apcheck.smt.interleaved import prove_interleaved


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="5_12", help="comma-separated: 5_12, v15, merged, merged_2026")
    ap.add_argument("--budget", type=float, default=3600, help="seconds for each model's fixpoint")
    ap.add_argument("--jobs", type=int, default=0, help="processes (default: one per core)")
    ap.add_argument("--smt-timeout", type=float, default=5, help="seconds per Z3 query")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    rows, records = [], []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        lowered, _ = build(load_program(f"models/vfio_ap_{name}.apm", ["specs/vfio_ap.aps"]))
        told: list[str] = []

        def progress(line: str) -> None:
            told.append(line)
            print(f"{name}: {line}", flush=True)
        started = time.monotonic()
        res = prove_interleaved(lowered, args.smt_timeout, args.budget, progress, args.jobs)
        seconds = time.monotonic() - started
        sizes = re.match(r"interleaved induction: ([\d,]+) candidate facts over ([\d,]+) step paths", told[0]) \
            if told else None
        rounds = sum(1 for line in told if re.match(r"interleaved induction: round \d+: [\d,]+ of", line)
                     and "step paths" not in line)
        candidates, step_paths = (int(sizes[k].replace(",", "")) for k in (1, 2)) if sizes else (None, None)
        rec = {"model": name, "candidates": candidates, "step_paths": step_paths, "rounds": rounds,
               "kept": len(res.kept), "proved": res.proved, "status": res.status, "message": res.message,
               "seconds": round(seconds, 1)}
        records.append(rec)
        rows.append([name, candidates, step_paths, rounds, len(res.kept), len(res.proved),
                     res.status, f"{seconds:.0f}"])
    print(tabulate(rows, headers=["model", "candidates", "step paths", "rounds", "kept", "proved", "status", "s"]))
    for rec in records:
        print(f"{rec['model']}: {rec['status']}: {rec['message']}; proved: {', '.join(rec['proved']) or '-'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(records, fh, indent=2)


if __name__ == "__main__":
    main()
