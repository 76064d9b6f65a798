"""A model loaded, checked and lowered once: what every command starts from.

`load_program` reads a model with its specs; `build` lowers it and computes its
static lock-order edges (once per model: neither depends on sizes or
scenarios); `VerifyConfig` is the configuration of every exploring command.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from apcheck.commands.facts import FactsFile
from apcheck.diagnostics import Diagnostic, DiagnosticError, UsageError
from apcheck.explore.engine import ExploreConfig
from apcheck.explore.system import bounds_of, initial_globals
from apcheck.ir import program as P
from apcheck.ir.lower import lower
from apcheck.ir.lowered import Lowered
from apcheck.lang.check import check
from apcheck.lang.loader import load
from apcheck.locks.static import StaticEdges, static_edges


@dataclass(frozen=True, kw_only=True)
class VerifyConfig:
    bounds: dict[str, int] = field(default_factory=dict)
    explore: ExploreConfig = ExploreConfig()
    smt_timeout: float = 10.0
    scenario: str | None = None   # explore this scenario (a part of the system), not the whole system
    induction: bool = True        # try Z3 induction proofs of the invariants for every size
    bmc_depth: int = 0            # > 0: cross-check the explorer with Z3 BMC to this depth
    max_memory_mb: float | None = None  # for the whole run
    interleaved_budget: float | None = None  # seconds for the interleaved induction (None: its default)
    interleaved_facts: FactsFile | None = None  # where the interleaved induction starts (None: every candidate)
    smt_progress: Callable[[str], None] | None = None  # told of each round of the interleaved induction
    locks_only: bool = False      # explore for lock-order edges and deadlocks only: no invariants or covers
    properties: tuple[str, ...] | None = None  # only these invariants and covers, each on the slice of the
                                               # system that can affect them (explore/slicing.py): exact
                                               # for them; no deadlock, defects or lock order


def load_program(model: str, specs: list[str] = ()) -> P.Program:
    """Parse and check a model together with spec files (raises DiagnosticError)."""
    modules = load([model] + list(specs))
    return check(modules, model)


def check_expectations(program: P.Program, names: list[str]) -> None:
    """E502: an expectation of this model for a property it does not have; E504: an expect block for
    a model whose file is nowhere to be found (see find_model)."""
    bad = [Diagnostic("E502", f"expectation for unknown property '{e.prop}' of model '{e.model}'", e.span)
           for e in program.expectations if e.model == program.model_name and e.prop not in names]
    dangling: dict[str, P.Expectation] = {}
    for e in program.expectations:
        if e.model != program.model_name and e.model not in dangling and find_model(e.span.file, e.model) is None:
            dangling[e.model] = e
    bad += [Diagnostic("E504", f"expectations for model '{e.model}', but there is no {e.model}.apm "
                       f"(looked in {', '.join(model_folders(e.span.file))})", e.span) for e in dangling.values()]
    if bad:
        raise DiagnosticError(bad, program.sources)


def model_folders(spec: str) -> list[str]:
    """Where the model an expect block names is looked for: models/ beside the spec's folder, the
    spec's folder, models/ in the working directory."""
    here = os.path.dirname(os.path.abspath(spec))
    return [os.path.relpath(f) for f in (os.path.join(os.path.dirname(here), "models"), here,
                                         os.path.join(os.getcwd(), "models"))]


def find_model(spec: str, name: str) -> str | None:
    """The file of the model `name` that a spec's expect block names, or None."""
    for folder in model_folders(spec):
        candidate = os.path.join(folder, name + ".apm")
        if os.path.exists(candidate):
            return os.path.relpath(candidate)
    return None


def build(program: P.Program, closure_edges: bool = False) -> tuple[Lowered, StaticEdges]:
    """The lowered program and its static lock-order edges: once per model. Raises the model errors
    found here: E204 (a procedure declared but defined nowhere: the file is a fragment), E402 (a
    release no path holds), E301 (an initial value that uses null)."""
    if program.undefined:
        raise DiagnosticError([Diagnostic("E204", f"procedure '{name}' is declared but never defined; a model that "
                                          "imports this declaration must define it", span)
                               for name, span in program.undefined.items()], program.sources)
    lowered = lower(program)
    static = static_edges(lowered, closure_edges)
    if static.diagnostics:
        raise DiagnosticError(static.diagnostics, program.sources)
    initial_globals(program, bounds_of(program))
    return lowered, static


def select_scenarios(program: P.Program, name: str | None) -> list[P.Scenario]:
    """What to explore: the whole system, or the scenario named (a part of it)."""
    if name is None:
        if not program.system.threads and not program.undefined:   # a fragment: build says what it lacks
            raise UsageError(f"{program.path} declares no threads: nothing to explore")
        return [program.system]
    chosen = [s for s in program.scenarios if s.name == name]
    if not chosen:
        known = ", ".join(s.name for s in program.scenarios) or "none"
        raise UsageError(f"no scenario '{name}' in {program.path} (scenarios: {known}; without --scenario, "
                         "the whole system is explored)")
    return chosen
