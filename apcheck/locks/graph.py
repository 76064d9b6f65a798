"""Cycles and hierarchy checks on a lock-order graph of lock classes."""
from __future__ import annotations

from collections import deque


def shortest_cycle(edges: set[tuple[int, int]]) -> list[int] | None:
    """The shortest cycle (as a list of classes, first repeated implicitly), smallest classes first."""
    succ: dict[int, list[int]] = {}
    for a, b in sorted(edges):
        succ.setdefault(a, []).append(b)
    best: list[int] | None = None
    for start in sorted(succ):
        # BFS from start back to start
        prev = {start: None}
        queue = deque([start])
        found = None
        while queue and found is None:
            x = queue.popleft()
            for y in succ.get(x, ()):
                if y == start:
                    found = x
                    break
                if y not in prev:
                    prev[y] = x
                    queue.append(y)
        if found is None:
            continue
        path = [found]
        while prev[path[-1]] is not None:
            path.append(prev[path[-1]])
        cycle = list(reversed(path))
        if best is None or len(cycle) < len(best):
            best = cycle
    return best


def topological_order(nodes: list[int], edges: set[tuple[int, int]]) -> list[int] | None:
    """A total order respecting every edge (ties by node id), or None if there is a cycle."""
    indeg = {n: 0 for n in nodes}
    succ: dict[int, list[int]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
        indeg[b] += 1
    ready = sorted(n for n in nodes if indeg[n] == 0)
    out = []
    while ready:
        n = ready.pop(0)
        out.append(n)
        for m in sorted(succ[n]):
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
                ready.sort()
    return out if len(out) == len(nodes) else None


def hierarchy_violations(edges: set[tuple[int, int]], hierarchy: list[int]) -> list[tuple[int, int]]:
    """Edges A -> B where the declared hierarchy puts B before A (or A == B)."""
    rank = {c: i for i, c in enumerate(hierarchy)}
    return sorted((a, b) for a, b in edges if a in rank and b in rank and rank[b] <= rank[a])
