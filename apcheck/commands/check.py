"""`apcheck check`: front-end checks of models and specs, collected over many files."""
from __future__ import annotations

from apcheck.commands.model import build, check_expectations, find_model, model_folders
from apcheck.diagnostics import Diagnostic, DiagnosticError, Sources, Span
from apcheck.lang import ast as A
from apcheck.lang.check import BUILTIN_PROPERTIES, check
from apcheck.lang.loader import load


def check_paths(paths: list[str]) -> list[str]:
    """Check each file. A spec (a file with no threads, scenarios or procedures) is checked against
    the models its `expect` and `for` blocks name (found as find_model says; E504 if missing), else
    against the models given with it, else on its own. Raises DiagnosticError with every error of
    every file."""
    errors: list[Diagnostic] = []
    sources = Sources()
    lines: list[str] = []
    models = [p for p in paths if _complete_model(p)]
    for path in paths:
        try:
            lines += _check_one(path, models)
        except DiagnosticError as err:
            errors += [d for d in err.diagnostics if d not in errors]
            sources.update(err.sources)
    if errors:
        raise DiagnosticError(errors, sources)
    return lines


def _complete_model(path: str) -> bool:
    """Is the file a model that checks and defines what it declares (not a fragment, not a spec)?
    Its errors, if any, come when it is checked itself."""
    try:
        modules = load([path])
        return _is_model(modules) and not check(modules, path).undefined
    except DiagnosticError:
        return False


def _check_one(path: str, models_given: list[str]) -> list[str]:
    modules = load([path])
    if _is_model(modules):
        program = check(modules, path)
        if program.undefined:
            return [f"{path}: ok (fragment: an importing model defines {', '.join(program.undefined)})"]
        build(program)
        return [f"{path}: ok (model: {len(program.procs)} procedures and operations, "
                f"{len(program.properties)} properties)"]
    models = _named_models(modules[-1], path) or models_given
    if not models:
        check(modules, path)
        return [f"{path}: ok (names no model; checked on its own)"]
    out = []
    for model in models:
        program = check(load([model, path]), model)
        check_expectations(program, [p.name for p in program.properties] + list(BUILTIN_PROPERTIES))
        build(program)
        out.append(f"{path}: ok against {model}")
    return out


def _is_model(modules: list[A.Module]) -> bool:
    return any(isinstance(it, (A.ThreadDecl, A.ScenarioDecl, A.ProcDecl)) for m in modules for it in m.items)


def _named_models(spec: A.Module, path: str) -> list[str]:
    """The model files the spec's expect and `for` blocks name (E504 where one is missing)."""
    spans: dict[str, Span] = {}
    for it in spec.items:
        if isinstance(it, A.ExpectDecl):
            spans.setdefault(it.model, it.span)
        elif isinstance(it, A.ForModelsDecl):
            for name in it.models:
                spans.setdefault(name, it.span)
    found, missing = [], []
    for name, span in sorted(spans.items()):
        model = find_model(path, name)
        if model is None:
            missing.append(Diagnostic("E504", f"'{name}' names a model, but there is no {name}.apm "
                                      f"(looked in {', '.join(model_folders(path))})", span))
        else:
            found.append(model)
    if missing:
        raise DiagnosticError(missing, Sources({path: spec.text}))
    return found
