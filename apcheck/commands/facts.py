"""Interleaved facts files: the facts the induction over the interleaved steps kept.

Such a file is a proof's certificate. `apcheck infer --interleaved` writes it
after a full fixpoint (every candidate; it can take an hour on a large
model), and `verify --interleaved-facts` (or `apcheck ci`'s
`interleaved_facts`) starts the induction from it. If the model has not
changed, the first round keeps every fact and that round is the proof. The
file only says where to start: Z3 checks every fact again, so a wrong or stale
file can only prove less.

The format is one fact per line, in the words of the induction's candidates,
and `//` starts a comment line.
"""
from __future__ import annotations

from dataclasses import dataclass

from apcheck.diagnostics import UsageError


@dataclass(frozen=True)
class FactsFile:
    path: str
    facts: frozenset[str]


def read_facts(path: str) -> FactsFile:
    """The facts of a file (UsageError if it cannot be read or holds none)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read the interleaved facts {path}: {getattr(err, 'strerror', None) or err}")
    facts = frozenset(line.strip() for line in text.splitlines()
                      if line.strip() and not line.lstrip().startswith("//"))
    if not facts:
        raise UsageError(f"{path} holds no interleaved facts (one per line; `//` starts a comment)")
    return FactsFile(path, facts)


def render_facts(model: str, facts: list[str], proved: list[str]) -> str:
    """A facts file: the facts kept besides the model's invariants (those are always where the
    induction starts), in the order the induction made them."""
    head = [f"// apcheck interleaved facts for {model}, written by apcheck infer --interleaved: with the model's",
            f"// invariants, these {len(facts)} facts are inductive over the interleaved steps, which proves",
            f"// {', '.join(f'`{p}`' for p in proved)} for any number of threads.",
            "// Start a proof from them: apcheck verify MODEL --interleaved-facts FILE"]
    return "\n".join(head + facts) + "\n"
