"""Reading files and following imports; every problem becomes a diagnostic."""
from __future__ import annotations

import os

from apcheck.diagnostics import Diagnostic, DiagnosticError, Sources, Span
from apcheck.lang import ast as A
from apcheck.lang.parser import parse


def read_source(path: str, span: Span | None = None) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        where = span or Span(path, 0, 0, 0, 0)
        code = "E002" if span else "E001"
        raise DiagnosticError([Diagnostic(code, f"cannot read '{path}': {reason}", where)]) from None


def load(paths: list[str]) -> list[A.Module]:
    """Parse the given files and everything they import, imports first, each once."""
    done: dict[str, A.Module] = {}
    order: list[A.Module] = []
    errors: list[Diagnostic] = []
    sources = Sources()

    def visit(path: str, stack: list[str], span: Span | None) -> None:
        key = os.path.normpath(os.path.abspath(path))
        if key in stack:
            cycle = " -> ".join(os.path.relpath(p) for p in stack[stack.index(key):] + [key])
            errors.append(Diagnostic("E003", f"circular import: {cycle}", span or Span(path, 0, 0, 0, 0)))
            return
        if key in done:
            return
        try:
            module = parse(read_source(path, span), path)
        except DiagnosticError as err:
            errors.extend(err.diagnostics)
            sources.update(err.sources)
            return
        sources[path] = module.text
        for item in module.items:
            if isinstance(item, A.Import):
                target = os.path.join(os.path.dirname(path), item.path)
                visit(target, stack + [key], item.span)
        done[key] = module
        order.append(module)

    for p in paths:
        visit(p, [], None)
    if errors:
        raise DiagnosticError(errors, sources)
    return order
