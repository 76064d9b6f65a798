"""The report of `apcheck infer`."""
from __future__ import annotations

from apcheck.results import InferResult


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
