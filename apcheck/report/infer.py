"""The report of `apcheck infer`."""
from __future__ import annotations

from apcheck.results import InferFactsResult, InferResult


def render_infer(result: InferResult) -> str:
    lines = [f"apcheck infer {result.model}: {result.candidates} candidate invariants from the declarations; "
             f"Z3 proved {len(result.proved)} of them jointly inductive (each operation atomic, every size), "
             f"{result.seconds:.1f} s"]
    if result.proved:
        lines += ["", "// inferred by apcheck infer: paste into a spec to use them"]
        lines += [f"auxiliary invariant aux_{i + 1}: {t}" for i, t in enumerate(result.proved)]
    lines.append("")
    if result.newly_proved:
        lines.append("with them, Z3 proves: " + ", ".join(result.newly_proved))
    if result.proved_before:
        lines.append("proved without them too: " + ", ".join(result.proved_before))
    for name, why in result.not_proved:
        lines.append(f"still not proved: {name}: {why}")
    return "\n".join(lines) + "\n"


def render_infer_facts(result: InferFactsResult) -> str:
    """The summary of `apcheck infer --interleaved` (the facts file is commands/facts.py's)."""
    lines = [f"apcheck infer --interleaved {result.model}: {result.status}: {result.message}"]
    if result.started_from:
        lines.append(f"started from the facts of {result.started_from}" +
                     (f"; {len(result.unmatched)} of them are not candidates of the model (it changed since?), "
                      f"such as '{result.unmatched[0]}'" if result.unmatched else ""))
    if result.proved:
        lines.append(f"proved for any number of threads: {', '.join(result.proved)}, with "
                     f"{len(result.facts)} facts kept")
    for name, why in result.not_proved:
        lines.append(f"not proved: {name}: {why}")
    lines.append(f"{result.seconds:.0f} s")
    return "\n".join(lines) + "\n"
