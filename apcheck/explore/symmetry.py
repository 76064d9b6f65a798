"""Symmetry reduction: states that differ only by a renaming of a sort's elements are one state.

Sound because the language has no constants that name an element: every
operation, initial value and property treats the elements of a sort alike
(loops over sets visit elements in every order).
"""
from __future__ import annotations

from itertools import permutations, product
from math import factorial
from typing import Callable

from apcheck.explore.system import System
from apcheck.explore.semantics import IDLE
from apcheck.ir.types import ElemT, MapT, SetT, TupleT, Type

TABLE_BITS = 10  # sets over at most this many tuples are renamed by table lookup
MAX_GROUP = 120  # renamings tried per new valuation at most (5!): beyond, sorts are left out of the reduction


def symmetric_sorts(sizes: dict[str, int]) -> tuple[list[str], list[str]]:
    """The sorts whose renamings the reduction uses, smallest first while the group (the product of
    their factorials) stays within MAX_GROUP; and the notes on the sorts left out."""
    chosen, notes, group = [], [], 1
    for s in sorted((s for s in sizes if sizes[s] > 1), key=lambda s: sizes[s]):
        if group * factorial(sizes[s]) > MAX_GROUP:
            notes.append(f"symmetry reduction off for sort {s} ({sizes[s]} elements): with the other sorts "
                         f"it would try more than {MAX_GROUP} renamings per state")
            continue
        chosen.append(s)
        group *= factorial(sizes[s])
    return [s for s in sizes if s in chosen], notes


def renamings(sizes: dict[str, int]) -> list[dict[str, tuple[int, ...]]]:
    """The group the reduction uses, but the identity: every renaming of the sorts `symmetric_sorts`
    chooses (sort -> the new name of each element). The native core compiles the same group."""
    sorts, _ = symmetric_sorts(sizes)
    out = []
    for combo in product(*(list(permutations(range(sizes[s]))) for s in sorts)):
        if all(p == tuple(range(len(p))) for p in combo):
            continue
        out.append(dict(zip(sorts, combo)))
    return out


def canonicalizer(system: System) -> Callable[[tuple], tuple] | None:
    """A function mapping a state to the least of its renamings over the sorts `symmetric_sorts`
    chooses, or None if there is none. The group is built once; it has at most MAX_GROUP elements."""
    group = renamings(system.sizes.n)
    if not group:
        return None
    perms = [_StatePermuter(system, perm) for perm in group]
    gfns = [p.apply_globals for p in perms]
    rests = [p.apply_rest for p in perms]

    cache: dict[tuple, tuple[tuple, list[int]]] = {}

    def best_globals(g: tuple) -> tuple[tuple, list[int]]:
        best_g = g
        cands = [-1]
        for k, f in enumerate(gfns):
            g2 = f(g)
            if g2 < best_g:
                best_g = g2
                cands = [k]
            elif g2 == best_g:
                cands.append(k)
        return best_g, cands

    def canon(state: tuple) -> tuple:
        # Compare the renamed globals first (cached: valuations repeat across many states);
        # only renamings that tie on them need the locks and threads renamed.
        g = state[0]
        hit = cache.get(g)
        if hit is None:
            hit = cache[g] = best_globals(g)
        best_g, cands = hit
        best = None
        for k in cands:
            other = state if k < 0 else (best_g, *rests[k](state))
            if best is None or other < best:
                best = other
        return best
    return canon


class _StatePermuter:
    def __init__(self, system: System, perm: dict[str, tuple[int, ...]]):
        self.perm = perm
        self.n = system.sizes.n
        fns = [self.value_fn(v.type) for v in system.program.vars]
        self.gslots = [(i, f) for i, f in enumerate(fns) if f is not None]
        inst_map = instance_map(system, perm)
        self.inst_map = inst_map
        self.lock_src = [0] * len(inst_map)
        for old, new in enumerate(inst_map):
            self.lock_src[new] = old
        self.identity_locks = inst_map == list(range(len(inst_map)))
        self.local_fns = [[(i, f) for i, f in enumerate(self.value_fn(t) if t is not None else None
                                                         for t in op.local_types) if f is not None]
                          for op in system.ops]
        self.op_of_pc = system.op_of_pc

    def value_fn(self, t: Type) -> Callable | None:
        n, perm = self.n, self.perm
        if isinstance(t, ElemT):
            if t.sort not in perm:
                return None
            p = perm[t.sort] + (-1,)  # index -1 (null) maps to itself
            return p.__getitem__
        if isinstance(t, (SetT, TupleT)) and t.sorts:
            if not any(s in perm for s in t.sorts):
                return None
            table = index_table(t.sorts, n, perm)
            if isinstance(t, TupleT):
                return table.__getitem__
            if len(table) <= TABLE_BITS:
                lookup = [_rename_bits(m, table) for m in range(1 << len(table))]
                return lookup.__getitem__
            return lambda mask: _rename_bits(mask, table)
        if isinstance(t, MapT):
            inner = self.value_fn(t.value)
            src = None
            if any(s in perm for s in t.keys):
                table = index_table(t.keys, n, perm)
                src = [0] * len(table)
                for old, new in enumerate(table):
                    src[new] = old
            if src is None and inner is None:
                return None
            if inner is None:
                return lambda m: tuple([m[i] for i in src])
            if src is None:
                return lambda m: tuple([inner(x) for x in m])
            return lambda m: tuple([inner(m[i]) for i in src])
        return None

    def apply_globals(self, g: tuple) -> tuple:
        out = list(g)
        for i, f in self.gslots:
            out[i] = f(g[i])
        return tuple(out)

    def apply_rest(self, state: tuple) -> tuple[tuple, tuple]:
        _, locks, threads = state
        locks2 = locks if self.identity_locks else tuple([locks[i] for i in self.lock_src])
        inst_map = self.inst_map
        ts = []
        for th in threads:
            pc, l, held = th
            if pc == IDLE:
                ts.append(th)
                continue
            fns = self.local_fns[self.op_of_pc[pc]] if pc >= 0 else None   # a dead thread: its locks only
            if fns:
                l2 = list(l)
                for i, f in fns:
                    l2[i] = f(l[i])
                l = tuple(l2)
            if held and not self.identity_locks:
                held = tuple([inst_map[x] if i % 2 == 0 else x for i, x in enumerate(held)])
            ts.append((pc, l, held))
        return locks2, tuple(ts)


def _rename_bits(mask: int, table: list[int]) -> int:
    out = 0
    i = 0
    while mask:
        if mask & 1:
            out |= 1 << table[i]
        mask >>= 1
        i += 1
    return out


def instance_map(system: System, perm: dict[str, tuple[int, ...]]) -> list[int]:
    """Lock instance id -> its id after the renaming (instances of per-sort classes move)."""
    out = list(range(len(system.inst_class)))
    for info in system.locks:
        if info.cls.per in perm:
            p = perm[info.cls.per]
            for e in range(info.count):
                out[info.base + e] = info.base + p[e]
    return out


def index_table(sorts: tuple[str, ...], n: dict[str, int], perm: dict[str, tuple[int, ...]]) -> list[int]:
    """Flat row-major index -> flat index after renaming each component."""
    table = []
    for idx in product(*(range(n[s]) for s in sorts)):
        new = 0
        for s, i in zip(sorts, idx):
            new = new * n[s] + (perm[s][i] if s in perm else i)
        table.append(new)
    return table
