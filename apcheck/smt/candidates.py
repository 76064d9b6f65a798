"""Candidate auxiliary invariants, generated from a model's declarations (`apcheck infer`).

The shapes that the invariants of driver models keep needing, as text in the
model's language (so that what Z3 proves can be pasted into a spec):

- subset: `X <= Y` for two sets or relations of one type;
- agreement through a map: for `M: map<K -> E?>`, `X: rel<E, S..>` and
  `Y: rel<K, S..>`, `forall k: K :: M[k] != null ==> X[M[k]] == Y[k]` (and each
  inclusion): "an mdev attached to a guest has the guest's CRYCB equal to its
  shadow";
- injectivity of a map to an optional element;
- inverse maps: `M: map<K -> E?>`, `N: map<E -> K?>`, `M[k] != null ==> N[M[k]] == k`;
- disjoint rows: `X: rel<K, S..>`, distinct keys have disjoint images.

Which of them hold is for Z3 to decide (smt/induction.py's Houdini fixpoint).
"""
from __future__ import annotations

from apcheck.ir import program as P
from apcheck.ir.types import ElemT, MapT, SetT


def candidate_texts(program: P.Program) -> list[str]:
    """Invariant bodies, in the model's syntax, each well-formed by construction of its shape."""
    sets = [v for v in program.vars if isinstance(v.type, SetT) and v.type.sorts]
    maps = [v for v in program.vars if isinstance(v.type, MapT) and len(v.type.keys) == 1
            and isinstance(v.type.value, ElemT) and v.type.value.optional]
    out: list[str] = []
    for x in sets:
        for y in sets:
            if x is not y and x.type.sorts == y.type.sorts:
                out.append(f"{x.name} <= {y.name}")
    for m in maps:
        key, elem = m.type.keys[0], m.type.value.sort
        k1, k2 = _binder(program, "k"), _binder(program, "j")
        out.append(f"forall {k1}: {key}, {k2}: {key} :: {k1} != {k2} && {m.name}[{k1}] != null "
                   f"==> {m.name}[{k1}] != {m.name}[{k2}]")
        for n in maps:
            if n is not m and n.type.keys[0] == elem and n.type.value.sort == key:
                out.append(f"forall {k1}: {key} :: {m.name}[{k1}] != null ==> {n.name}[{m.name}[{k1}]] == {k1}")
        for x in sets:
            for y in sets:
                xs, ys = x.type.sorts, y.type.sorts
                if len(xs) < 2 or xs[0] != elem or ys[0] != key or xs[1:] != ys[1:]:
                    continue
                lhs, rhs = f"{x.name}[{m.name}[{k1}]]", f"{y.name}[{k1}]"
                for a, rel, b in ((lhs, "==", rhs), (lhs, "<=", rhs), (rhs, "<=", lhs)):
                    out.append(f"forall {k1}: {key} :: {m.name}[{k1}] != null ==> {a} {rel} {b}")
    for x in sets:
        if len(x.type.sorts) >= 2:
            key = x.type.sorts[0]
            k1, k2 = _binder(program, "k"), _binder(program, "j")
            out.append(f"forall {k1}: {key}, {k2}: {key} :: {k1} != {k2} ==> {x.name}[{k1}] & {x.name}[{k2}] == {{}}")
    return list(dict.fromkeys(out))


def _binder(program: P.Program, stem: str) -> str:
    """A binder name that no state variable, sort or enum member uses."""
    taken = {v.name for v in program.vars} | set(program.sorts) | set(program.enums)
    taken |= {m for members in program.enums.values() for m in members}
    name = f"{stem}1"
    i = 1
    while name in taken:
        i += 1
        name = f"{stem}{i}"
    return name
