"""Rendering results: text, JSON, Markdown, JUnit, SARIF, HTML, DOT. Only this package and the CLI format text."""
from __future__ import annotations

from apcheck.results import VerifyResult


def render_format(result: VerifyResult, fmt: str, brief: bool = False) -> str:
    if fmt == "text":
        from apcheck.report.text import render
        return render(result, details=not brief)
    if fmt == "json":
        from apcheck.report.json_report import render_json
        return render_json([result])
    if fmt == "markdown":
        from apcheck.report.markdown import render_markdown
        return render_markdown([result])
    if fmt == "junit":
        from apcheck.report.junit import render_junit
        return render_junit([result])
    if fmt == "sarif":
        from apcheck.report.sarif import render_sarif
        return render_sarif([result])
    if fmt == "html":
        from apcheck.report.html import render_html
        return render_html([result])
    if fmt == "dot":
        from apcheck.report.graph import render_lockgraph
        return render_lockgraph(result, "dot")
    raise ValueError(fmt)
