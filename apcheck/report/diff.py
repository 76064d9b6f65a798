"""Text and JSON for `apcheck diff`."""
from __future__ import annotations

import json
from dataclasses import asdict

from apcheck.report.json_report import edge_to_json
from apcheck.report.text import render_site
from apcheck.results import LockEdge, ModelDiff


def render_diff_text(d: ModelDiff) -> str:
    out = [f"diff {d.old.path} -> {d.new.path}", ""]
    out.append("lock-order edges:")
    if not (d.edges_added or d.edges_removed):
        out.append("  unchanged")
    for sign, edges in (("+", d.edges_added), ("-", d.edges_removed)):
        for e in edges:
            out += _edge_lines(sign, e)
    out += ["", "operations:"]
    if not (d.ops_added or d.ops_removed or d.ops_changed):
        out.append("  unchanged")
    out += [f"  + {op} (new)" for op in d.ops_added]
    out += [f"  - {op} (removed)" for op in d.ops_removed]
    for c in d.ops_changed:
        via = [p for p in c.procs if p != c.op]
        what = "changed" + (f" (through {', '.join(via)})" if via else "")
        out.append(f"  ~ {c.op}: {what}")
    out += ["", "verdicts:"]
    if not d.verdicts:
        out.append("  unchanged")
    for v in d.verdicts:
        out.append(f"  {v.prop}: {v.old or '(new property)'} -> {v.new or '(removed)'}"
                   + (f"  -- {v.message}" if v.new else ""))
    if d.new_violations:
        out += ["", f"{len(d.new_violations)} new violation(s): "
                + ", ".join(v.prop for v in d.new_violations)]
    return "\n".join(out) + "\n"


def _edge_lines(sign: str, e: LockEdge) -> list[str]:
    state = "reached" if e.reached else "static path only"
    lines = [f"  {sign} {e.src} -> {e.dst}  [{state}]", f"      {e.dst} acquired at:"]
    lines += render_site(e.dst_site, indent="        ")
    lines.append(f"      while holding {e.src}, acquired at:")
    lines += render_site(e.src_site, indent="        ")
    return lines


def render_diff_json(d: ModelDiff) -> str:
    added = [asdict(e) for e in d.edges_added]
    removed = [asdict(e) for e in d.edges_removed]
    for e in added + removed:
        edge_to_json(e)
    doc = {"old": d.old.path, "new": d.new.path, "edges_added": added, "edges_removed": removed,
           "ops_added": d.ops_added, "ops_removed": d.ops_removed,
           "ops_changed": [asdict(c) for c in d.ops_changed],
           "verdicts_changed": [asdict(v) for v in d.verdicts],
           "new_violations": [v.prop for v in d.new_violations]}
    return json.dumps(doc, indent=2) + "\n"
