"""The `apcheck ci` summary: a verdict table per model and every mismatch."""
from __future__ import annotations

from tabulate import tabulate

from apcheck.results import CiOutcome


def render_ci(outcome: CiOutcome) -> str:
    props: list[str] = []
    for run in outcome.runs:
        for name in run.verdicts:
            if name not in props:
                props.append(name)
    bad = {(m.model, m.prop) for m in outcome.mismatches}
    rows = []
    for name in props:
        row = [name]
        for run in outcome.runs:
            model = run.model
            v = run.verdicts.get(name, "-")
            key = (_stem(model), name)
            row.append(f"{v} (!)" if key in bad else v)
        rows.append(row)
    headers = ["property"] + [_stem(r.model) + (" (cached)" if r.cached else "") for r in outcome.runs]
    out = [tabulate(rows, headers=headers, tablefmt="simple"), ""]
    if outcome.mismatches:
        out.append(f"{len(outcome.mismatches)} verdict(s) differ from the expectations:")
        for m in outcome.mismatches:
            out.append(f"  {m.model}: {m.prop}: expected {m.expected or '(none)'}, got {m.actual} -- {m.message}")
        out.append("FAIL")
    else:
        out.append("every verdict matches its expectation: PASS")
    return "\n".join(out) + "\n"


def _stem(path: str) -> str:
    import os
    return os.path.splitext(os.path.basename(path))[0]
