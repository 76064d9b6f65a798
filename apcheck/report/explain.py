"""Text for `apcheck explain`: each dependency of a lockdep report against the model."""
from __future__ import annotations

from apcheck.results import Explanation, Splat

STATUS = {"reached": "reached in the model", "static": "on a static path of the model only (not reached)",
          "absent": "not in the model", "unknown-lock": "names a lock class the model does not declare"}


def render_explanation(model: str, splat: Splat, ex: Explanation) -> str:
    out = [f"lockdep report against {model}"]
    if splat.chain:
        out.append("chain: " + " --> ".join(splat.chain))
    out.append("")
    for m in sorted(ex.matches, key=lambda m: -m.splat.entry):
        se = m.splat
        out.append(f"#{se.entry} {se.acquired} acquired while holding {se.held}: {STATUS[m.status]}")
        out.append("     lockdep: " + " <- ".join(se.frames[:6]) + (" <- ..." if len(se.frames) > 6 else ""))
        if m.model is not None:
            chain = [f"{f.function} ({f.file}:{f.line})" for f in m.model.dst_site.chain]
            out.append("     model:   " + " <- ".join(chain))
            total = len(m.model.dst_site.chain)
            out.append(f"     {len(m.common)} of the model's {total} functions appear on the lockdep stack")
    out.append("")
    out += [f"not read: {u}" for u in ex.unread]
    if ex.unread:
        out.append("")
    if ex.explained:
        out.append("the model explains the report: every dependency of the chain is reached "
                   "(`apcheck verify` shows the cycle and a deadlocking interleaving)")
    else:
        missing = [m for m in ex.matches if m.status != "reached"]
        out.append(f"the model does not explain the report: {len(missing)} of {len(ex.matches)} "
                   "dependencies are not reached" + (", and part of the report could not be read" if ex.unread else ""))
    return "\n".join(out) + "\n"
