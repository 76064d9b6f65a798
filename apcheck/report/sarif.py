"""SARIF 2.1.0: results located at the model's source lines, for code-scanning views."""
from __future__ import annotations

import json

from apcheck import __version__
from apcheck.results import PropertyResult, VerifyResult

LEVEL = {"violated": "error", "unknown": "warning", "error": "error"}


def render_sarif(results: list[VerifyResult]) -> str:
    rules: dict[str, dict] = {}
    out = []
    for res in results:
        for p in res.properties:
            if p.verdict not in LEVEL and not (p.expected and p.expected != p.verdict):
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
    level = "error" if p.expected and p.expected != p.verdict else LEVEL.get(p.verdict, "note")
    return {"ruleId": p.kind, "level": level,
            "message": {"text": f"{res.model}: {p.name} {p.verdict}"
                                + (f" (expected {p.expected})" if p.expected else "") + f": {p.message}"},
            "locations": loc}
