"""JSON report, schema version 1: apcheck/report/schema/apcheck-results-v1.schema.json (docs/reports.md)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict

from apcheck import __version__
from apcheck.results import VerifyResult

SCHEMA_VERSION = 1
SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "schema", f"apcheck-results-v{SCHEMA_VERSION}.schema.json")


def to_dict(res: VerifyResult) -> dict:
    d = asdict(res)
    for prop, p in zip(d["properties"], res.properties):
        prop["method"] = str(p.method)
        prop["failed"] = p.is_failure     # the one failure rule (results.PropertyResult.is_failure)
        if prop["span"]:
            prop["span"] = _span(prop["span"])
        _trace_spans(prop["trace"])
        for edge in prop["cycle"] or []:
            edge_to_json(edge)
        if prop["induction"] and prop["induction"]["cti"]:
            del prop["induction"]["cti"]["globals"]  # the explorer's internal encoding
    for edge in d["lock_edges"]:
        edge_to_json(edge)
    for cov in d["coverage"]:
        for st in cov["statements"]:
            st["span"] = _span(st["span"])
        for op in cov["operations"]:
            _trace_spans(op["trace"])
    return d


def _trace_spans(trace: dict | None) -> None:
    for step in (trace or {}).get("steps", []):
        step["span"] = _span(step["span"])


def _span(s: dict) -> dict:
    return {"file": s["file"], "line": s["line"], "column": s["col"]}


def edge_to_json(e: dict) -> None:
    """A lock edge (as a dict) with its spans in the report layout, in place."""
    for key in ("src_site", "dst_site"):
        e[key]["span"] = _span(e[key]["span"])


def render_json(results: list[VerifyResult]) -> str:
    doc = {"schema": "apcheck-results", "version": SCHEMA_VERSION, "apcheck": __version__,
           "results": [to_dict(r) for r in results]}
    return json.dumps(doc, indent=2) + "\n"
