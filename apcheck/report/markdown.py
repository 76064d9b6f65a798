"""Markdown for pull-request comments: one verdict table per model, then the violations in brief."""
from __future__ import annotations

from tabulate import tabulate

from apcheck.report.text import expected_cell, induction_cell
from apcheck.results import VerifyResult


def render_markdown(results: list[VerifyResult]) -> str:
    out = []
    for res in results:
        bounds = ", ".join(f"{k}={v}" for k, v in res.bounds.items())
        out.append(f"### `{res.path}` ({bounds})\n")
        rows = [[f"`{p.name}`", p.kind, f"**{p.verdict_text}**" if p.is_failure else p.verdict_text,
                 expected_cell(p), induction_cell(p), p.message.replace("|", "\\|")] for p in res.properties]
        out.append(tabulate(rows, headers=["property", "kind", "verdict", "expected", "every size", "detail"],
                            tablefmt="github"))
        s = res.stats
        out.append(f"\n{s.states:,} states, {s.transitions:,} transitions, {s.seconds:.1f} s"
                   + ("" if s.complete else f" (stopped early: {s.limit})") + "\n")
    return "\n".join(out)


def render_claims_table(results: list[VerifyResult], rows: list[tuple[str, str]]) -> str:
    """The seed-claims table of the README: one row per (claim, property), one column per model."""
    by_model = {r.model: {p.name: p.judged_verdict for p in r.properties} for r in results}
    models = [r.model for r in results]
    table = [[claim, f"`{prop}`", _bounds_cell(results, prop)] + [by_model[m].get(prop, "-") for m in models]
             for claim, prop in rows]
    return tabulate(table, headers=["claim", "property", "bounds"] + models, tablefmt="github") + "\n"


def _bounds_cell(results: list[VerifyResult], prop: str) -> str:
    """The bounds the explorations behind a property's verdicts ran at (the run's own where the verdict
    has none: a lock order from every run's edges, a proof)."""
    texts = []
    for r in results:
        for p in r.properties:
            if p.name != prop:
                continue
            method = p.method.then if p.method.then is not None else p.method
            bounds = dict(method.bounds) or r.bounds
            text = " ".join(f"{k}={v}" for k, v in bounds.items())
            if text not in texts:
                texts.append(text)
    return " / ".join(texts)
