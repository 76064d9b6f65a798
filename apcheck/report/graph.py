"""The lock-order graph as text or Graphviz DOT (cycle edges highlighted)."""
from __future__ import annotations

from apcheck.results import Kind, Verdict, VerifyResult


def _cycle_edges(res: VerifyResult) -> set[tuple[str, str]]:
    return {(e.src, e.dst) for p in res.properties if p.kind == Kind.LOCKORDER and p.verdict == Verdict.VIOLATED
            for e in p.cycle or []}


def render_lockgraph(res: VerifyResult, fmt: str = "text") -> str:
    cyc = _cycle_edges(res)
    if fmt == "dot":
        lines = [f'digraph "{res.model}" {{', "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
        for e in res.lock_edges:
            chain = " <- ".join(f.function for f in e.dst_site.chain)
            style = "solid" if e.reached else "dashed"
            color = "red" if (e.src, e.dst) in cyc else "black"
            lines.append(f'  "{e.src}" -> "{e.dst}" [style={style}, color={color}, tooltip="{chain}"];')
        lines.append("}")
        return "\n".join(lines) + "\n"
    out = [f"lock-order edges of {res.path} (reached: taken in some explored state; static: on some path)"]
    for e in res.lock_edges:
        how = ", ".join(x for x, on in (("reached", e.reached), ("static", e.static), ("read", e.read)) if on)
        mark = "  <-- cycle" if (e.src, e.dst) in cyc else ""
        chain = " <- ".join(f.function for f in e.dst_site.chain)
        out.append(f"  {e.src} -> {e.dst}  [{how}]  via {chain}{mark}")
    return "\n".join(out) + "\n"
