"""Symmetry reduction: the canonical form of a state is the same for every renaming of the
elements of its sorts, and is itself one of those renamings. The renaming here is written
independently of explore/symmetry.py, from the value encoding of ir/types.py."""
import glob
from itertools import permutations, product

import pytest

from apcheck.commands.model import load_program
from apcheck.explore.engine import ExploreConfig, explore
from apcheck.explore.symmetry import canonicalizer
from apcheck.explore.system import bounds_of, scenario_system
from apcheck.ir.lower import lower
from apcheck.ir.types import ElemT, MapT, SetT, TupleT

CASES = [(p, {}) for p in sorted(glob.glob("tests/models/*.apm")) + ["models/vfio_ap_v15.apm"]] + [
    ("tests/models/passthrough.apm", {"Mdev": 3, "Adapter": 2}),
    ("models/vfio_ap_merged_2026.apm", {"Guest": 2}),
]
MAX_STATES = 400


def rename(t, v, perm, n):
    """Value v of type t with each element e of sort s renamed to perm[s][e]."""
    if isinstance(t, ElemT):
        return v if v < 0 or t.sort not in perm else perm[t.sort][v]
    if isinstance(t, (SetT, TupleT)) and t.sorts:
        keys = list(product(*(range(n[s]) for s in t.sorts)))
        index = {k: i for i, k in enumerate(keys)}

        def moved(i):
            return index[tuple(perm[s][e] if s in perm else e for s, e in zip(t.sorts, keys[i]))]
        if isinstance(t, TupleT):
            return moved(v)
        return sum(1 << moved(i) for i in range(len(keys)) if v >> i & 1)
    if isinstance(t, MapT):
        keys = list(product(*(range(n[s]) for s in t.keys)))
        index = {k: i for i, k in enumerate(keys)}
        out = [None] * len(keys)
        for i, k in enumerate(keys):
            out[index[tuple(perm[s][e] if s in perm else e for s, e in zip(t.keys, k))]] = rename(t.value, v[i], perm, n)
        return tuple(out)
    return v


def rename_state(system, state, perm):
    n = system.sizes.n
    g, locks, threads = state
    g2 = tuple(rename(v.type, x, perm, n) for v, x in zip(system.program.vars, g))
    inst = list(range(len(locks)))
    for info in system.locks:
        if info.cls.per in perm:
            for e in range(info.count):
                inst[info.base + e] = info.base + perm[info.cls.per][e]
    locks2 = [0] * len(locks)
    for i, v in enumerate(locks):
        locks2[inst[i]] = v
    threads2 = []
    for pc, l, held in threads:
        if pc >= 0:
            types = system.ops[system.op_of_pc[pc]].local_types
            l = tuple(rename(t, x, perm, n) if t is not None else x for t, x in zip(types, l))
        held = tuple(inst[x] if i % 2 == 0 else x for i, x in enumerate(held))  # a dead thread's too
        threads2.append((pc, l, held))
    return g2, tuple(locks2), tuple(threads2)


@pytest.mark.parametrize("path,bounds", CASES)
def test_canonical_form_is_invariant_under_renaming(path, bounds):
    program = load_program(path, ["specs/vfio_ap.aps"] if path.startswith("models/") else [])
    system = scenario_system(lower(program), bounds_of(program, bounds), (program.scenarios or [program.system])[-1])
    canon = canonicalizer(system)
    sorts = [s for s, k in system.sizes.n.items() if k > 1]
    if canon is None:
        assert not sorts
        return
    perms = [dict(zip(sorts, combo)) for combo in product(*(permutations(range(system.sizes.n[s])) for s in sorts))]
    states = explore(system, ExploreConfig(symmetry=False, max_states=MAX_STATES)).states
    for state in states:
        orbit = [rename_state(system, state, p) for p in perms]
        want = canon(state)
        assert want in orbit
        assert want == min(orbit)
        assert all(canon(other) == want for other in orbit)
