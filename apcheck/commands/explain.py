"""`apcheck explain MODEL REPORT`: does the model explain a lockdep report?

Each dependency of the report's chain is matched against the model's lock
graph (commands.lockorder.lock_order: the lock-order edges only, no invariant
search and no Z3 induction): reached by the explorer, on a static path only,
absent, or naming a lock class the model does not declare; with the functions
both call chains share.
"""
from __future__ import annotations

from apcheck.commands.lockorder import lock_order
from apcheck.commands.model import VerifyConfig
from apcheck.ir import program as P
from apcheck.results import EdgeMatch, Explanation, LockEdge, Splat


def explain(program: P.Program, splat: Splat, config: VerifyConfig = VerifyConfig()) -> Explanation:
    result = lock_order(program, config)
    aliases = {name: set(proc.aka) for name, proc in program.procs.items() if proc.aka}
    return match(splat, result.lock_edges, list(program.locks), aliases)


def match(splat: Splat, edges: list[LockEdge], classes: list[str], aliases: dict[str, set[str]] | None = None
          ) -> Explanation:
    """Each dependency of the report against the model's lock-order edges; a model function matches a
    stack frame by its name or a kernel name it is known by (`aka`)."""
    aliases = aliases or {}
    by_pair = {(e.src, e.dst): e for e in edges}
    matches = []
    for se in splat.edges:
        if se.held not in classes or se.acquired not in classes:
            matches.append(EdgeMatch(splat=se, status="unknown-lock"))
            continue
        e = by_pair.get((se.held, se.acquired))
        if e is None:
            matches.append(EdgeMatch(splat=se, status="absent"))
            continue
        chain = [f.function for f in e.dst_site.chain]
        common = [f for f in chain if ({f} | aliases.get(f, set())) & set(se.frames)]
        matches.append(EdgeMatch(splat=se, status="reached" if e.reached else "static", model=e, common=common))
    return Explanation(matches=matches, unread=list(splat.unread))
