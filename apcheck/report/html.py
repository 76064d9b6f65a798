"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, nothing fetched).

Pictures: the lock-order graph as SVG, classes on a circle, a cycle's edges in
red, each edge's call chains on hover and in the table below it; each
counterexample as a sequence chart, one column per thread and one row per
step, with lock acquisitions and blocked threads marked and the state that
changed beside each step.
"""
from __future__ import annotations

import math
from html import escape

from apcheck.report.text import (INDUCTION_FOOTNOTE, completes_text, expected_cell, induction_cell,
                                 render_induction, render_order_violation, render_stats)
from apcheck.results import (Coverage, LockEdge, PropertyResult, Site, Trace, Verdict, VerifyResult,
                             exploration_title)

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 2em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.v-violated, .v-error { background: #fbd5d5; } .v-unknown { background: #fff0c2; }
.v-holds, .v-proved, .v-unreachable { background: #d9f2dc; } .v-reached { background: #dbe9fb; }
.mismatch { font-weight: bold; color: #b00; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
.chain { font-family: monospace; font-size: 0.85em; }
svg text { font-family: monospace; }
.note { color: #555; font-size: 0.9em; }
tr.fail td { background: #fff0c2; }
"""

CYCLE_RED = "#d11"
EDGE_GREY = "#667"


def render_html(results: list[VerifyResult]) -> str:
    body = []
    for res in results:
        body.append(_model(res))
    title = "apcheck report: " + ", ".join(r.model for r in results)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


def _coverage(cov: Coverage, threads: list[str]) -> str:
    """The coverage of one exploration: per operation (with the trace of its automatic cover "OP
    completes", folded), then per statement (never executed first)."""
    cut = "" if cov.complete else " (search cut: the counts are lower bounds)"
    bad = ' class="fail"'
    ops = "".join(f"<tr{bad if not o.succeeded else ''}><td>{escape(o.op)}</td><td>{o.started:,}</td>"
                  f"<td>{o.returned:,}</td><td>{o.succeeded:,}</td>"
                  f"<td>{escape(completes_text(o.completes, cov.complete))}</td></tr>" for o in cov.operations)
    stmts = sorted(cov.statements, key=lambda s: (s.executed != 0, s.span.file, s.span.line))
    rows = "".join(f"<tr{bad if not s.executed else ''}><td>{escape(s.span.file)}:{s.span.line}</td>"
                   f"<td><code>{escape(s.text)}</code></td><td>{s.executed:,}</td></tr>" for s in stmts)
    traces = "".join(f"<details><summary>{escape(o.op)} completes {escape(completes_text(o.completes, True))}"
                     f"</summary>{sequence_chart_svg(o.trace, threads)}</details>"
                     for o in cov.operations if o.trace)
    return (f"<h2>Coverage of {escape(exploration_title(cov.scenario))}{cut}</h2>"
            "<table><tr><th>operation</th><th>started</th><th>returned</th><th>succeeded</th>"
            "<th>first completes</th></tr>" + ops + "</table>" + traces +
            f"<p class=\"note\">{len(cov.never_executed)} of {len(cov.statements)} statements never executed</p>"
            "<table><tr><th>statement</th><th>text</th><th>executed</th></tr>" + rows + "</table>")


def _model(res: VerifyResult) -> str:
    bounds = ", ".join(f"{k}={v}" for k, v in res.bounds.items())
    out = [f"<section class=\"model\" id=\"model-{escape(res.model)}\">",
           f"<h1>{escape(res.model)}</h1>",
           f"<p>{escape(res.path)}{' with ' + escape(', '.join(res.specs)) if res.specs else ''}; bounds {escape(bounds)}</p>",
           "<ul>" + "".join(f"<li><b>{escape(exploration_title(n))}</b>: {escape(', '.join(t))}</li>"
                            for n, t in res.scenarios.items()) + "</ul>",
           _verdict_table(res),
           f"<p class=\"note\">{escape(render_stats(res))}</p>"]
    if any(p.induction is not None for p in res.properties):
        out.append(f"<p class=\"note\">{escape(INDUCTION_FOOTNOTE)}</p>")
    cycle = next((p.cycle for p in res.properties if p.cycle and p.verdict == Verdict.VIOLATED), None)
    out += ["<h2>Lock-order graph</h2>", lock_graph_svg(res.lock_edges, cycle or []), _edge_table(res.lock_edges)]
    for p in res.properties:
        out.append(_property(p, res))
    for cov in res.coverage:
        out.append(_coverage(cov, res.scenarios.get(cov.scenario, [])))
    out.append("</section>")
    return "\n".join(x for x in out if x)


def _verdict_table(res: VerifyResult) -> str:
    rows = ["<table class=\"verdicts\"><tr><th>property</th><th>kind</th><th>verdict</th><th>expected</th>"
            "<th>every size*</th><th>detail</th></tr>"]
    for p in res.properties:
        exp = escape(expected_cell(p))
        if p.mismatch:
            exp = f"<span class=\"mismatch\">{escape(p.expected)} (differs)</span>"
        rows.append(f"<tr><td><a href=\"#{_anchor(res, p)}\">{escape(p.name)}</a></td><td>{p.kind}</td>"
                    f"<td class=\"v-{p.verdict}\">{escape(p.verdict_text)}</td><td>{exp}</td><td>{induction_cell(p)}</td>"
                    f"<td>{escape(p.message)}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _anchor(res: VerifyResult, p: PropertyResult) -> str:
    return f"{res.model}-{p.name}"


# ---- the lock-order graph ----------------------------------------------------------

def lock_graph_svg(edges: list[LockEdge], cycle: list[LockEdge]) -> str:
    """Lock classes in layers (outer locks on top, as a lock hierarchy reads); an edge per A -> B
    dependency, curved where it goes back up or skips layers; the cycle's edges in red."""
    nodes: list[str] = []
    for e in edges:
        for n in (e.src, e.dst):
            if n not in nodes:
                nodes.append(n)
    if not nodes:
        return "<p>No lock is taken while another is held.</p>"
    in_cycle = {(e.src, e.dst) for e in cycle}
    on_cycle = {e.src for e in cycle}
    reached = [(e.src, e.dst) for e in edges if e.reached]  # static-only edges do not shape the layers
    pos, width, height = _layers(nodes, reached or [(e.src, e.dst) for e in edges])
    out = [f"<svg class=\"lockgraph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0f}\" "
           f"height=\"{height:.0f}\" viewBox=\"0 0 {width:.0f} {height:.0f}\" role=\"img\" "
           f"aria-label=\"lock-order graph\">",
           "<defs>" + "".join(
               f"<marker id=\"arrow-{name}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" "
               f"markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{c}\"/>"
               f"</marker>" for name, c in (("red", CYCLE_RED), ("grey", EDGE_GREY))) + "</defs>"]
    pairs = {(e.src, e.dst) for e in edges}
    for e in edges:
        (x1, y1), (x2, y2) = pos[e.src], pos[e.dst]
        red = (e.src, e.dst) in in_cycle
        colour, marker = (CYCLE_RED, "red") if red else (EDGE_GREY, "grey")
        skips = abs(y2 - y1) > 120 or y2 < y1 or abs(y2 - y1) < 1  # not to the next layer down
        bend = 40 if (e.dst, e.src) in pairs or e.src == e.dst or skips else 0
        path = _edge_path(x1, y1, x2, y2, bend)
        dash = "" if e.reached else " stroke-dasharray=\"6 4\""
        cls = "edge cycle-edge" if red else "edge"
        out.append(f"<g class=\"{cls}\" data-src=\"{escape(e.src)}\" data-dst=\"{escape(e.dst)}\">"
                   f"<title>{escape(_edge_title(e))}</title>"
                   f"<path d=\"{path}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"{3 if red else 1.6}\"{dash} "
                   f"marker-end=\"url(#arrow-{marker})\"/></g>")
    for n in nodes:
        x, y = pos[n]
        stroke = CYCLE_RED if n in on_cycle else "#333"
        w = 14 + 7.4 * len(n)
        out.append(f"<g class=\"node\" data-lock=\"{escape(n)}\"><rect x=\"{x - w / 2:.1f}\" y=\"{y - 14:.1f}\" "
                   f"width=\"{w:.1f}\" height=\"28\" rx=\"6\" fill=\"#fff\" stroke=\"{stroke}\" "
                   f"stroke-width=\"{2.5 if n in on_cycle else 1.2}\"/>"
                   f"<text x=\"{x:.1f}\" y=\"{y + 4:.1f}\" text-anchor=\"middle\" font-size=\"12\">{escape(n)}</text></g>")
    out.append("</svg>")
    legend = ("<p class=\"note\">Arrow A &rarr; B: B acquired while A is held. Solid: reached by the explorer; "
              "dashed: on a static path only. Red: the cycle. Hover an edge for its call chains.</p>")
    return "\n".join(out) + "\n" + legend


def _layers(nodes: list[str], pairs: list[tuple[str, str]]) -> tuple[dict, float, float]:
    """Positions: each class one layer below every class held when it is taken (longest path, with
    the edges that close cycles left out), the classes of a layer side by side."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in pairs:
        if a != b:
            succ[a].append(b)
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()

    def dfs(n: str) -> None:  # marks the edges that close a cycle
        state[n] = 1
        for m in succ[n]:
            if state.get(m) == 1:
                back.add((n, m))
            elif m not in state:
                dfs(m)
        state[n] = 2
    for n in nodes:
        if n not in state:
            dfs(n)
    level = {n: 0 for n in nodes}
    for _ in nodes:  # longest path over the acyclic rest
        for a, b in pairs:
            if a != b and (a, b) not in back and level[b] < level[a] + 1:
                level[b] = level[a] + 1
    rows: dict[int, list[str]] = {}
    for n in nodes:
        rows.setdefault(level[n], []).append(n)
    widest = max(len(r) for r in rows.values())
    width = max(560.0, 60 + 250 * widest)
    height = 70 + 110 * len(rows)
    pos = {}
    for lv, row in rows.items():
        for i, n in enumerate(row):
            pos[n] = (width * (i + 1) / (len(row) + 1), 50 + 110 * lv)
    return pos, width, height


def _edge_path(x1: float, y1: float, x2: float, y2: float, bend: float) -> str:
    """A line (or, for a pair of opposite edges, an arc) from box edge to box edge."""
    if (x1, y1) == (x2, y2):
        return f"M{x1:.1f},{y1 - 14:.1f} c 40,-60 80,-20 20,14"
    dx, dy = x2 - x1, y2 - y1
    d = math.hypot(dx, dy)
    ux, uy = dx / d, dy / d
    sx, sy = x1 + ux * 30, y1 + uy * 18
    ex, ey = x2 - ux * 30, y2 - uy * 18
    if not bend:
        return f"M{sx:.1f},{sy:.1f} L{ex:.1f},{ey:.1f}"
    mx, my = (sx + ex) / 2 - uy * bend, (sy + ey) / 2 + ux * bend
    return f"M{sx:.1f},{sy:.1f} Q{mx:.1f},{my:.1f} {ex:.1f},{ey:.1f}"


def _edge_title(e: LockEdge) -> str:
    return (f"{e.src} -> {e.dst} ({'reached' if e.reached else 'static path only'})\n"
            f"{e.dst} acquired at:\n{_chain_text(e.dst_site)}\nwhile holding {e.src}, acquired at:\n"
            f"{_chain_text(e.src_site)}")


def _chain_text(site: Site) -> str:
    return "\n".join(f"  {f.function} ({f.file}:{f.line})" for f in site.chain)


def _edge_table(edges: list[LockEdge]) -> str:
    if not edges:
        return ""
    rows = ["<table class=\"edges\"><tr><th>edge</th><th></th><th>acquired at (innermost call first)</th>"
            "<th>while holding, acquired at</th></tr>"]
    for e in edges:
        state = "reached" if e.reached else "static only"
        rows.append(f"<tr><td>{escape(e.src)} &rarr; {escape(e.dst)}</td><td>{state}</td>"
                    f"<td class=\"chain\">{_chain_html(e.dst_site)}</td><td class=\"chain\">{_chain_html(e.src_site)}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _chain_html(site: Site) -> str:
    return "<br>".join(escape(f"{f.function} ({f.file}:{f.line})") for f in site.chain)


# ---- properties and their counterexamples --------------------------------------------

def _property(p: PropertyResult, res: VerifyResult) -> str:
    parts = []
    if p.cycle and p.verdict == Verdict.VIOLATED:
        parts.append(f"<pre>{escape(render_order_violation(p))}</pre>")
    if p.certificate:
        parts.append(f"<p>Lock-order certificate: {escape(' < '.join(p.certificate))}</p>")
    if p.trace is not None:
        threads = res.scenarios.get(p.scenario or "", [])
        parts.append(f"<p>Counterexample{' in ' + escape(exploration_title(p.scenario)) if p.scenario else ''}, "
                     f"{len(p.trace.steps)} steps:</p>")
        parts.append(sequence_chart_svg(p.trace, threads))
    if p.induction is not None and p.verdict != Verdict.PROVED:
        parts.append(f"<pre>{escape(render_induction(p.induction))}</pre>")
    parts += [f"<p class=\"note\">note: {escape(n)}</p>" for n in p.notes if n]
    if not parts:
        return ""
    where = f" <span class=\"note\">({escape(str(p.span))})</span>" if p.span else ""
    return (f"<h3 id=\"{_anchor(res, p)}\">{escape(p.name)}: <span class=\"v-{p.verdict}\">{escape(p.verdict_text)}</span>"
            f"{where}</h3>\n<p>{escape(p.message)}</p>\n" + "\n".join(parts))


def sequence_chart_svg(trace: Trace, threads: list[str]) -> str:
    """One column per thread, one row per step; the state that changed at the right."""
    cols = list(threads)
    for s in trace.steps:
        if s.thread not in cols:
            cols.append(s.thread)
    blocked = trace.waiting
    colw, rowh, top, left = 230, 58, 60, 40
    change_x = left + colw * len(cols) + 10
    changes_w = 460
    rows = len(trace.steps) + (1 if blocked else 0)
    width = change_x + changes_w
    height = top + rowh * rows + 30
    out = [f"<svg class=\"sequence\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" "
           f"viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"counterexample sequence chart\">"]
    for i, name in enumerate(cols):
        x = left + colw * i + colw / 2
        out.append(f"<text x=\"{x}\" y=\"30\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">"
                   f"{escape(name)}</text>")
        out.append(f"<line x1=\"{x}\" y1=\"40\" x2=\"{x}\" y2=\"{height - 20}\" stroke=\"#bbb\" "
                   f"stroke-dasharray=\"4 3\"/>")
    out.append(f"<text x=\"{change_x}\" y=\"30\" font-size=\"13\" font-weight=\"bold\">state changed</text>")
    for r, s in enumerate(trace.steps):
        i = cols.index(s.thread)
        x0, y0 = left + colw * i + 6, top + rowh * r
        acquires = s.text.startswith("acquire") or "trylock" in s.text
        defect = s.outcome.startswith("DEFECT")
        fill = "#fbd5d5" if defect else "#e6eefc" if acquires else "#f4f4f4"
        args = ", ".join(f"{k}={v}" for k, v in s.args)
        title = (f"{s.index}. {s.thread}: {s.op}({args})\n{s.span.file}:{s.span.line}  {s.text}\n"
                 f"{' <- '.join(f.function for f in s.chain)}\n{s.outcome}\nholds: {', '.join(s.held) or '-'}")
        out.append(f"<g class=\"step\" data-step=\"{s.index}\" data-thread=\"{escape(s.thread)}\">"
                   f"<title>{escape(title)}</title>"
                   f"<rect x=\"{x0}\" y=\"{y0}\" width=\"{colw - 12}\" height=\"{rowh - 8}\" rx=\"5\" fill=\"{fill}\" "
                   f"stroke=\"#889\"/>"
                   f"<text x=\"{x0 + 6}\" y=\"{y0 + 15}\" font-size=\"11\" font-weight=\"bold\">"
                   f"{s.index}. {escape(_clip(f'{s.op}({args})', 30))}</text>"
                   f"<text x=\"{x0 + 6}\" y=\"{y0 + 30}\" font-size=\"11\">{escape(_clip(s.text, 31))}</text>"
                   f"<text x=\"{x0 + 6}\" y=\"{y0 + 44}\" font-size=\"10\" fill=\"#555\">"
                   f"holds: {escape(_clip(', '.join(s.held) or '-', 28))}</text></g>")
        text = "; ".join(f"{c.var}: {c.old} -> {c.new}" for c in s.changes)
        if text:
            out.append(f"<text x=\"{change_x}\" y=\"{y0 + 26}\" font-size=\"11\">{escape(_clip(text, 66))}"
                       f"<title>{escape(text)}</title></text>")
    if blocked:
        y0 = top + rowh * len(trace.steps)
        for name, why in blocked.items():
            if name not in cols:
                continue
            x0 = left + colw * cols.index(name) + 6
            out.append(f"<g class=\"blocked\" data-thread=\"{escape(name)}\"><title>{escape(why)}</title>"
                       f"<rect x=\"{x0}\" y=\"{y0}\" width=\"{colw - 12}\" height=\"{rowh - 8}\" rx=\"5\" "
                       f"fill=\"#fff\" stroke=\"{CYCLE_RED}\" stroke-width=\"2.5\"/>"
                       f"<text x=\"{x0 + 6}\" y=\"{y0 + 18}\" font-size=\"11\" font-weight=\"bold\" "
                       f"fill=\"{CYCLE_RED}\">BLOCKED forever</text>"
                       f"<text x=\"{x0 + 6}\" y=\"{y0 + 34}\" font-size=\"10\">{escape(_clip(why, 34))}</text></g>")
    out.append("</svg>")
    return "\n".join(out)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
