"""Symmetry reduction: states that differ only by a renaming of a sort's elements are one state.

Sound because the language has no constants that name an element: every
operation, initial value and property treats the elements of a sort alike
(loops over sets visit elements in every order).
"""
from __future__ import annotations

from itertools import permutations, product
from typing import Callable

from apcheck.ir.system import System
from apcheck.ir.types import ElemT, MapT, SetT, TupleT, Type


def canonicalizer(system: System) -> Callable[[tuple], tuple] | None:
    """A function mapping a state to the least of its renamings, or None if no sort has 2+ elements."""
    sizes = system.sizes.n
    sorts = [s for s in sizes if sizes[s] > 1]
    if not sorts:
        return None
    perms = []
    for combo in product(*(list(permutations(range(sizes[s]))) for s in sorts)):
        perm = dict(zip(sorts, combo))
        if all(p == tuple(range(len(p))) for p in combo):
            continue
        perms.append(_StatePermuter(system, perm))
    fns = [p.apply for p in perms]

    def canon(state: tuple) -> tuple:
        best = state
        for f in fns:
            other = f(state)
            if other < best:
                best = other
        return best
    return canon


class _StatePermuter:
    def __init__(self, system: System, perm: dict[str, tuple[int, ...]]):
        self.sys = system
        self.perm = perm
        self.n = system.sizes.n
        self.gfns = [self.value_fn(v.type) for v in system.program.vars]
        # lock instance renaming
        inst_map = list(range(len(system.inst_class)))
        for info in system.locks:
            if info.cls.per in perm:
                p = perm[info.cls.per]
                for e in range(info.count):
                    inst_map[info.base + e] = info.base + p[e]
        self.inst_map = inst_map
        self.lock_src = [0] * len(inst_map)  # new position i takes old instance lock_src[i]
        for old, new in enumerate(inst_map):
            self.lock_src[new] = old
        self.local_fns = [[self.value_fn(t) if t is not None else None for t in op.local_types]
                          for op in system.ops]
        self.op_of_pc = system.op_of_pc
        self.identity_globals = all(f is None for f in self.gfns)

    def value_fn(self, t: Type) -> Callable | None:
        n, perm = self.n, self.perm
        if isinstance(t, ElemT):
            if t.sort not in perm:
                return None
            p = perm[t.sort]
            return lambda v: p[v] if v >= 0 else v
        if isinstance(t, (SetT, TupleT)) and t.sorts:
            if not any(s in perm for s in t.sorts):
                return None
            table = _index_table(t.sorts, n, perm)
            if isinstance(t, TupleT):
                return lambda v: table[v]

            def perm_set(mask):
                out = 0
                i = 0
                while mask:
                    if mask & 1:
                        out |= 1 << table[i]
                    mask >>= 1
                    i += 1
                return out
            return perm_set
        if isinstance(t, MapT):
            inner = self.value_fn(t.value)
            if any(s in perm for s in t.keys):
                table = _index_table(t.keys, n, perm)
                src = [0] * len(table)
                for old, new in enumerate(table):
                    src[new] = old
            else:
                src = None
            if src is None and inner is None:
                return None
            if inner is None:
                return lambda m: tuple(m[i] for i in src)
            if src is None:
                return lambda m: tuple(inner(x) for x in m)
            return lambda m: tuple(inner(m[i]) for i in src)
        return None

    def apply(self, state: tuple) -> tuple:
        g, locks, threads = state
        g2 = tuple(x if f is None else f(x) for f, x in zip(self.gfns, g))
        locks2 = tuple(locks[i] for i in self.lock_src)
        inst_map = self.inst_map
        ts = []
        for pc, l, held in threads:
            if pc < 0:
                ts.append((pc, l, held))
                continue
            fns = self.local_fns[self.op_of_pc[pc]]
            l2 = tuple(x if f is None else f(x) for f, x in zip(fns, l))
            h2 = tuple(inst_map[x] if i % 2 == 0 else x for i, x in enumerate(held))
            ts.append((pc, l2, h2))
        return (g2, locks2, tuple(ts))


def _index_table(sorts: tuple[str, ...], n: dict[str, int], perm: dict[str, tuple[int, ...]]) -> list[int]:
    """Flat row-major index -> flat index after renaming each component."""
    table = []
    for idx in product(*(range(n[s]) for s in sorts)):
        new = 0
        for s, i in zip(sorts, idx):
            new = new * n[s] + (perm[s][i] if s in perm else i)
        table.append(new)
    return table
