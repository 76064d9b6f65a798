"""`apcheck check`: front-end checks of models and specs, collected over many files."""
from __future__ import annotations

import os

from apcheck.diagnostics import Diagnostic, DiagnosticError, Sources, Span
from apcheck.lang import ast as A
from apcheck.lang.check import BUILTIN_PROPERTIES, check
from apcheck.lang.loader import load
from apcheck.commands.model import build, check_expectations


def check_paths(paths: list[str]) -> list[str]:
    """Check each file; a spec (a file with no threads or procedures) is checked against the models its
    `expect` blocks name, found in a `models/` folder beside the spec's folder. Raises
    DiagnosticError with every error of every file."""
    errors: list[Diagnostic] = []
    sources = Sources()
    lines: list[str] = []
    for path in paths:
        try:
            lines += _check_one(path)
        except DiagnosticError as err:
            errors += [d for d in err.diagnostics if d not in errors]
            sources.update(err.sources)
    if errors:
        raise DiagnosticError(errors, sources)
    return lines


def _check_one(path: str) -> list[str]:
    modules = load([path])
    items = [it for m in modules for it in m.items]
    if any(isinstance(it, (A.ThreadDecl, A.ScenarioDecl, A.ProcDecl)) for it in items):
        program = check(modules, path)
        if program.undefined:
            return [f"{path}: ok (fragment: an importing model defines {', '.join(program.undefined)})"]
        build(program)
        return [f"{path}: ok (model: {len(program.procs)} procedures and operations, "
                f"{len(program.properties)} properties)"]
    models = sorted({it.model for it in modules[-1].items if isinstance(it, A.ExpectDecl)}
                    | {m for it in modules[-1].items if isinstance(it, A.ForModelsDecl) for m in it.models})
    if not models:
        check(modules, path)
        return [f"{path}: ok (no model named by an expect block; checked on its own)"]
    out = []
    for name in models:
        model = _find_model(path, name)
        program = check(load([model, path]), model)
        check_expectations(program, [p.name for p in program.properties] + list(BUILTIN_PROPERTIES))
        build(program)
        out.append(f"{path}: ok against {model}")
    return out


def _find_model(spec: str, name: str) -> str:
    here = os.path.dirname(os.path.abspath(spec))
    for folder in (os.path.join(os.path.dirname(here), "models"), here, os.path.join(os.getcwd(), "models")):
        candidate = os.path.join(folder, name + ".apm")
        if os.path.exists(candidate):
            return os.path.relpath(candidate)
    raise DiagnosticError([Diagnostic("E001", f"no model file '{name}.apm' found for the expect block",
                                      Span(spec, 1, 1, 1, 1))])
