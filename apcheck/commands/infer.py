"""`apcheck infer`: auxiliary invariants that Z3 proves, ready to paste into a spec.

Candidates come from the model's declarations (smt/candidates.py); those that
are not well-formed in the model are left out. The model's invariants and the
candidates are then put through one Houdini fixpoint (smt/induction.py): what
is left is jointly inductive with each operation taken atomically, for every
size. The model's invariants that this proves, and did not prove alone, are
named: they need the inferred ones.

With `--interleaved`, the induction over the interleaved steps (any number of
threads) runs from every candidate it generates, and the facts it keeps are
the certificate that `verify --interleaved-facts` starts from
(commands/facts.py); with `--interleaved-facts FILE` it runs from the
candidates of an earlier certificate instead, to renew it after a change.
"""
from __future__ import annotations

import time
from typing import Callable

from apcheck.commands.facts import FactsFile
from apcheck.diagnostics import DiagnosticError
from apcheck.ir.lower import lower
from apcheck.lang import ast as A
from apcheck.lang.check import check
from apcheck.lang.loader import load
from apcheck.lang.parser import parse
from apcheck.results import InferFactsResult, InferResult
from apcheck.smt.candidates import candidate_texts
from apcheck.smt.induction import prove_invariants
from apcheck.smt.interleaved import prove_interleaved

PREFIX = "inferred_"
SOURCE = "<inferred>"


def infer(model: str, specs: list[str] = (), smt_timeout: float = 10.0) -> InferResult:
    start = time.monotonic()
    modules = load([model] + list(specs))
    program = check(modules, model)
    own = [p.name for p in program.properties if p.kind == "invariant"]
    texts = [t for t in candidate_texts(program) if _well_formed(modules, model, t)]
    extra = parse("".join(f"invariant {PREFIX}{i + 1}: {t}\n" for i, t in enumerate(texts)), SOURCE)
    both = check(modules + [extra], model)
    alone = prove_invariants(lower(program), smt_timeout)
    joint = prove_invariants(lower(both), smt_timeout)
    proved = [texts[int(name[len(PREFIX):]) - 1] for name, r in joint.items()
              if name.startswith(PREFIX) and r.status == "proved"]
    before = [n for n in own if alone.get(n) is not None and alone[n].status == "proved"]
    newly = [n for n in own if n not in before and joint.get(n) is not None and joint[n].status == "proved"]
    left = [(n, joint[n].message if n in joint else "no induction result") for n in own
            if n not in before and n not in newly]
    return InferResult(model=program.model_name, candidates=len(texts), proved=proved, newly_proved=newly,
                       proved_before=before, not_proved=left, seconds=time.monotonic() - start)


def infer_interleaved(model: str, specs: list[str] = (), smt_timeout: float = 10.0, budget_s: float | None = None,
                      jobs: int = 0, progress: Callable[[str], None] | None = None,
                      facts: FactsFile | None = None) -> InferFactsResult:
    """The induction over the interleaved steps from every candidate, or from the candidates of an
    earlier run's `facts` (to renew a certificate after a change of the model or of apcheck), with
    no budget unless `budget_s` is given (from every candidate, it may take an hour on a large
    model)."""
    start = time.monotonic()
    program = check(load([model] + list(specs)), model)
    res = prove_interleaved(lower(program), smt_timeout, float("inf") if budget_s is None else budget_s,
                            progress, jobs, facts.facts if facts else None)
    own = [p.name for p in program.properties if p.kind == "invariant"]
    left = [(n, res.dropped.get(n, res.message)) for n in own if n not in res.proved]
    return InferFactsResult(model=program.model_name, status=res.status, message=res.message, proved=res.proved,
                            not_proved=left, facts=[t for t in dict.fromkeys(res.kept) if t not in own],
                            seconds=time.monotonic() - start, started_from=facts.path if facts else None,
                            unmatched=res.unmatched)


def _well_formed(modules: list[A.Module], model: str, text: str) -> bool:
    try:
        check(modules + [parse(f"invariant {PREFIX}0: {text}\n", SOURCE)], model)
    except DiagnosticError:
        return False
    return True

