"""SARIF 2.1.0: results located at the model's source lines, for code-scanning views."""
from __future__ import annotations

import json

from apcheck import __version__
from apcheck.results import PropertyResult, Verdict, VerifyResult



def level(p: PropertyResult) -> str | None:
    """The SARIF level of a property, from the one failure rule: `error` for a failing verdict,
    `warning` for an unknown one, `note` for a violation or cycle that meets its expectation;
    None (not reported) for everything else."""
    if p.is_failure:
        return "error"
    if p.verdict == Verdict.UNKNOWN:
        return "warning"
    if p.verdict == Verdict.VIOLATED or p.judged:
        return "note"
    return None


def render_sarif(results: list[VerifyResult]) -> str:
    rules: dict[str, dict] = {}
    out = []
    for res in results:
        for p in res.properties:
            if level(p) is None:
                continue
            rules.setdefault(p.kind, {"id": p.kind, "shortDescription": {"text": f"apcheck {p.kind} property"}})
            out.append(_result(res, p))
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "apcheck", "version": __version__,
                                      "rules": list(rules.values())}},
                  "results": out}],
    }
    return json.dumps(doc, indent=2) + "\n"


def _result(res: VerifyResult, p: PropertyResult) -> dict:
    span = p.span or (p.trace.steps[-1].span if p.trace and p.trace.steps else None)
    loc = []
    if span is not None and span.line > 0:
        loc = [{"physicalLocation": {"artifactLocation": {"uri": span.file},
                                     "region": {"startLine": span.line, "startColumn": max(span.col, 1)}}}]
    return {"ruleId": p.kind, "level": level(p),
            "message": {"text": f"{res.model}: {p.name} {p.verdict}"
                                + (f" (expected {p.expected})" if p.expected else "") + f": {p.message}"},
            "locations": loc}
