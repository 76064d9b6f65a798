"""Diagnostics as values: a stable code, a message, a primary span, notes.

Only `render` turns them into text; engines raise `DiagnosticError` or
return lists of `Diagnostic`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A range of source text: 1-based lines and columns, end inclusive-exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOSPAN = Span("<builtin>", 0, 0, 0, 0)


def line_of(span: Span, root: str) -> str:
    """'line N' of the model file `root`; in a file it imports, 'line N of common/kvm.apm' (the
    path relative to the model's folder), so that a line names one place of the model."""
    if span.file == root:
        return f"line {span.line}"
    return f"line {span.line} of {os.path.relpath(span.file, os.path.dirname(root) or '.')}"


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    severity: str = "error"
    notes: tuple[tuple[str, Span | None], ...] = ()


class DiagnosticError(Exception):
    """Raised by a front-end phase with every diagnostic it found."""

    def __init__(self, diagnostics: list[Diagnostic], sources: Sources | None = None):
        super().__init__("; ".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics
        self.sources = sources if sources is not None else Sources()  # the texts the spans point into

    def __reduce__(self):  # crosses process boundaries (scenario workers) intact
        return DiagnosticError, (self.diagnostics, self.sources)


class UsageError(Exception):
    """A bad command line or configuration (not tied to a source position)."""


class InternalError(Exception):
    """A back end disagrees with another (e.g. a Z3 counterexample that does not replay): a bug in
    apcheck, reported as such (exit 4), never turned into a verdict."""


# Stable codes, grouped by phase: E0xx input/usage, E1xx syntax, E2xx names,
# E3xx types, E4xx locks and statements, E5xx specs.
CODES = {
    "E001": "file not found or unreadable",
    "E002": "import not found",
    "E003": "circular import",
    "E004": "invalid configuration value",
    "E101": "syntax error",
    "E102": "invalid token",
    "E105": "nested too deeply",
    "E201": "undeclared name",
    "E202": "duplicate declaration",
    "E203": "wrong kind of name",
    "E204": "procedure declared but never defined",
    "E205": "definition differs from its declaration",
    "E301": "type mismatch",
    "E302": "wrong number of arguments or indices",
    "E303": "not assignable",
    "E304": "unknown error name",
    "E305": "invalid bound or count",
    "E401": "lock misuse",
    "E402": "release of a lock the path cannot hold",
    "E403": "recursive procedure",
    "E404": "statement after return",
    "E501": "invalid verdict",
    "E502": "unknown property",
    "E503": "contradictory expectations",
    "E504": "expectation for a model that does not exist",
}


class Sources(dict):
    """The texts of the files a model was read from (path -> text), as parsed: they travel with the
    modules, the program and the errors, so that source lines are shown as they were checked."""

    def line(self, path: str, line: int) -> str | None:
        text = self.get(path)
        if text is None:
            return None
        lines = text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else None

    def snippet(self, span: Span) -> str:
        """The text a span covers on its line (the whole line, stripped, for a wider span)."""
        line = self.line(span.file, span.line) or ""
        text = line.strip()
        if span.end_line == span.line and span.end_col > span.col:
            text = line[span.col - 1: span.end_col - 1].strip() or text
        return text if len(text) <= 100 else text[:97] + "..."


def render(diag: Diagnostic, sources: Sources) -> str:
    """Compiler-style text: location, code, message, source line, caret."""
    out = [f"{diag.span}: {diag.severity}[{diag.code}]: {diag.message}"]
    out += _excerpt(diag.span, sources)
    for note, span in diag.notes:
        out.append(f"  = note: {note}" + (f" ({span})" if span else ""))
    return "\n".join(out)


def _excerpt(span: Span, sources: Sources) -> list[str]:
    text = sources.line(span.file, span.line) if span.line else None
    if text is None:
        return []
    width = len(str(span.line))
    end = span.end_col if span.end_line == span.line and span.end_col > span.col else len(text) + 1
    carets = "^" * max(1, min(end, len(text) + 1) - span.col)
    pad = "".join(c if c == "\t" else " " for c in text[: span.col - 1])
    return [f"{' ' * width} |", f"{span.line} | {text}", f"{' ' * width} | {pad}{carets}"]
