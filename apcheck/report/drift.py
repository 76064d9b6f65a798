"""The reports of `apcheck drift`: text, JSON and SARIF 2.1.0."""
from __future__ import annotations

import json
from dataclasses import asdict

from apcheck import __version__
from apcheck.results import DriftReport


def render_drift_text(r: DriftReport) -> str:
    out = [f"apcheck drift {r.model}: {len(r.compared)} procedures compared with their C functions in "
           f"{len(r.sources)} file{'s' if len(r.sources) != 1 else ''}; "
           f"{len(r.findings)} finding{'s' if len(r.findings) != 1 else ''}"]
    for f in r.findings:
        out.append(f"{f.kind}: {f.message}")
        if f.c_site:
            out.append(f"    C:     {f.c_site[0]}:{f.c_site[1]}  ({f.function})")
        if f.model_site:
            out.append(f"    model: {f.model_site[0]}:{f.model_site[1]}  ({f.proc})")
    if r.unmatched_procs:
        out.append("model procedures that take locks and have no C function of their name (or aka): "
                   + ", ".join(r.unmatched_procs))
    for u in r.not_understood:
        out.append(f"not understood: {u.file}:{u.line}: {u.why}: {u.text}")
    out.append("drift: the model no longer locks as the source does" if r.drifted else
               "no drift: every compared procedure locks as its C function does")
    return "\n".join(out) + "\n"


def render_drift_json(r: DriftReport) -> str:
    doc = asdict(r)
    doc["schema"] = "apcheck-drift/1"
    doc["drifted"] = r.drifted
    return json.dumps(doc, indent=2) + "\n"


def render_drift_sarif(r: DriftReport) -> str:
    results = []
    for f in r.findings:
        res = {"ruleId": f"drift/{f.kind}", "level": "error", "message": {"text": f.message}, "locations": []}
        if f.c_site:
            res["locations"].append(_location(*f.c_site))
        if f.model_site:
            res["relatedLocations"] = [{**_location(*f.model_site), "message": {"text": f"model: {f.proc}"}}]
        results.append(res)
    kinds = sorted({f.kind for f in r.findings})
    doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "apcheck drift", "version": __version__,
                                         "rules": [{"id": f"drift/{k}"} for k in kinds]}},
                     "results": results}]}
    return json.dumps(doc, indent=2) + "\n"


def _location(path: str, line: int) -> dict:
    return {"physicalLocation": {"artifactLocation": {"uri": path}, "region": {"startLine": line}}}
