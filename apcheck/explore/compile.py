"""Typed expressions -> Python closures over (globals, locals).

Closures are built once per expression; the explorer never re-reads the tree.
Element values are ints, sets are bitmasks, maps are tuples (see ir.types).
"""
from __future__ import annotations

from itertools import product
from typing import Callable

from apcheck.ir import program as P
from apcheck.ir.types import ElemT, MapT

Fn = Callable[[list, list], object]


class NullDeref(Exception):
    """An optional element that is null was used as an index or lock instance."""

    def __init__(self, span):
        super().__init__("null used as an element")
        self.span = span


class Sizes:
    """Sort sizes for one exploration, and the index arithmetic of products."""

    def __init__(self, sizes: dict[str, int]):
        self.n = dict(sizes)

    def card(self, sorts: tuple[str, ...]) -> int:
        out = 1
        for s in sorts:
            out *= self.n[s]
        return out

    def full(self, sorts: tuple[str, ...]) -> int:
        return (1 << self.card(sorts)) - 1

    def flat(self, sorts: tuple[str, ...], idx: tuple[int, ...]) -> int:
        out = 0
        for s, i in zip(sorts, idx):
            out = out * self.n[s] + i
        return out

    def tuples(self, sorts: tuple[str, ...]):
        return product(*(range(self.n[s]) for s in sorts))


def compile_expr(e: P.Expr, slots: dict[P.Local, int], sz: Sizes) -> Fn:
    return _Compiler(slots, sz).c(e)


def compile_element(e: P.Expr, slots: dict[P.Local, int], sz: Sizes) -> Fn:
    """An element used where it must exist (a lock instance, an argument): null raises NullDeref."""
    return _Compiler(slots, sz).elem(e)


class _Compiler:
    def __init__(self, slots: dict[P.Local, int], sz: Sizes):
        self.slots = slots
        self.sz = sz

    def c(self, e: P.Expr) -> Fn:
        return getattr(self, "c_" + type(e).__name__)(e)

    def elem(self, e: P.Expr) -> Fn:
        """An element that must not be null when used."""
        f = self.c(e)
        if isinstance(e.type, ElemT) and e.type.optional:
            span = e.span

            def checked(g, l):
                v = f(g, l)
                if v < 0:
                    raise NullDeref(span)
                return v
            return checked
        return f

    def c_Const(self, e: P.Const) -> Fn:
        v = e.value
        return lambda g, l: v

    def c_GlobalRef(self, e: P.GlobalRef) -> Fn:
        s = e.var.slot
        return lambda g, l: g[s]

    def c_LocalRef(self, e: P.LocalRef) -> Fn:
        s = self.slots[e.local]
        return lambda g, l: l[s]

    def c_SortAll(self, e: P.SortAll) -> Fn:
        v = self.sz.full((e.sort,))
        return lambda g, l: v

    def c_SetLiteral(self, e: P.SetLiteral) -> Fn:
        fs = [self.tuple_index(i) for i in e.items]
        if not fs:
            return lambda g, l: 0
        if len(fs) == 1:
            f0 = fs[0]
            return lambda g, l: 1 << f0(g, l)

        def lit(g, l):
            v = 0
            for f in fs:
                v |= 1 << f(g, l)
            return v
        return lit

    def tuple_index(self, e: P.Expr) -> Fn:
        if isinstance(e, P.TupleLiteral):
            return self.c_TupleLiteral(e)
        return self.elem(e)

    def c_TupleLiteral(self, e: P.TupleLiteral) -> Fn:
        fs = [self.elem(i) for i in e.items]
        sizes = [self.sz.n[i.type.sort] for i in e.items]

        def tup(g, l):
            v = 0
            for f, n in zip(fs, sizes):
                v = v * n + f(g, l)
            return v
        return tup

    def c_Op(self, e: P.Op) -> Fn:
        op = e.op
        if op == "!":
            a = self.c(e.args[0])
            return lambda g, l: 0 if a(g, l) else 1
        if op == "#":
            a = self.c(e.args[0])
            return lambda g, l: a(g, l).bit_count()
        x, y = e.args
        if op in ("in", "notin"):
            a, b = self.tuple_index(x), self.c(y)
            if op == "in":
                return lambda g, l: (b(g, l) >> a(g, l)) & 1
            return lambda g, l: ((b(g, l) >> a(g, l)) & 1) ^ 1
        a, b = self.c(x), self.c(y)
        if op == "&&":
            return lambda g, l: 1 if a(g, l) and b(g, l) else 0
        if op == "||":
            return lambda g, l: 1 if a(g, l) or b(g, l) else 0
        if op == "==>":
            return lambda g, l: 1 if (not a(g, l)) or b(g, l) else 0
        if op == "==":
            return lambda g, l: 1 if a(g, l) == b(g, l) else 0
        if op == "!=":
            return lambda g, l: 1 if a(g, l) != b(g, l) else 0
        if op == "le":
            return lambda g, l: 1 if a(g, l) <= b(g, l) else 0
        if op == "<=":
            return lambda g, l: 0 if a(g, l) & ~b(g, l) else 1
        if op == "+":
            return lambda g, l: a(g, l) | b(g, l)
        if op == "-":
            return lambda g, l: a(g, l) & ~b(g, l)
        if op == "&":
            return lambda g, l: a(g, l) & b(g, l)
        if op == "*":
            nb = self.sz.card(y.type.sorts)

            def cross(g, l):
                va, vb = a(g, l), b(g, l)
                out = 0
                i = 0
                while va:
                    if va & 1:
                        out |= vb << (i * nb)
                    va >>= 1
                    i += 1
                return out
            return cross
        raise AssertionError(op)  # pragma: no cover

    def c_Image(self, e: P.Image) -> Fn:
        base = self.c(e.base)
        rest = e.type.sorts
        width = self.sz.card(rest)
        mask = (1 << width) - 1
        key = self.key(e.base.type.sorts[: len(e.args)], e.args)
        return lambda g, l: (base(g, l) >> (key(g, l) * width)) & mask

    def key(self, sorts: tuple[str, ...], args: list[P.Expr]) -> Fn:
        fs = [self.elem(a) for a in args]
        if len(fs) == 1:
            return fs[0]
        sizes = [self.sz.n[s] for s in sorts]

        def k(g, l):
            v = 0
            for f, n in zip(fs, sizes):
                v = v * n + f(g, l)
            return v
        return k

    def c_Lookup(self, e: P.Lookup) -> Fn:
        base = self.c(e.base)
        key = self.key(e.base.type.keys, e.args)
        return lambda g, l: base(g, l)[key(g, l)]

    def c_Quant(self, e: P.Quant) -> Fn:
        body = self.c(e.body)
        binders = [(self.slots[b], self.c(d) if d is not None else None, self.sz.n[b.type.sort])
                   for b, d in e.binders]
        kind = e.kind
        if all(d is None for _, d, _ in binders):
            return _product_quant(kind, body, binders)

        def run(g, l):
            # iterate the product of the binders' domains, restoring the slots after
            result = 0 if kind != "forall" else 1
            saved = [l[s] for s, _, _ in binders]

            def rec(i, flat):
                nonlocal result
                if i == len(binders):
                    v = body(g, l)
                    if kind == "forall":
                        if not v:
                            result = 0
                            return True
                    elif kind == "exists":
                        if v:
                            result = 1
                            return True
                    elif v:
                        result |= 1 << flat
                    return False
                slot, dom, n = binders[i]
                mask = dom(g, l) if dom is not None else -1
                for x in range(n):
                    if (mask >> x) & 1:
                        l[slot] = x
                        if rec(i + 1, flat * n + x):
                            return True
                return False

            rec(0, 0)
            for (s, _, _), v in zip(binders, saved):
                l[s] = v
            return result
        return run


def _product_quant(kind: str, body: Fn, binders) -> Fn:
    """A quantifier or comprehension whose binders range over whole sorts."""
    slots = [s for s, _, _ in binders]
    rows = list(enumerate(product(*(range(n) for _, _, n in binders))))
    if len(slots) == 1:
        s0 = slots[0]
        rows1 = [(flat, t[0]) for flat, t in rows]
        if kind == "forall":
            def forall1(g, l):
                old = l[s0]
                for _, x in rows1:
                    l[s0] = x
                    if not body(g, l):
                        l[s0] = old
                        return 0
                l[s0] = old
                return 1
            return forall1
        if kind == "exists":
            def exists1(g, l):
                old = l[s0]
                for _, x in rows1:
                    l[s0] = x
                    if body(g, l):
                        l[s0] = old
                        return 1
                l[s0] = old
                return 0
            return exists1

    def run(g, l):
        saved = [l[s] for s in slots]
        result = 1 if kind == "forall" else 0
        for flat, tup in rows:
            for s, x in zip(slots, tup):
                l[s] = x
            v = body(g, l)
            if kind == "forall":
                if not v:
                    result = 0
                    break
            elif kind == "exists":
                if v:
                    result = 1
                    break
            elif v:
                result |= 1 << flat
        for s, x in zip(slots, saved):
            l[s] = x
        return result
    return run


def initial_value(t, sz: Sizes) -> object:
    """The default value of a state variable of type t."""
    if isinstance(t, MapT):
        return tuple(initial_value(t.value, sz) for _ in range(sz.card(t.keys)))
    if isinstance(t, ElemT):
        return -1
    return 0


def fill_map(t: MapT, value: object, sz: Sizes) -> tuple:
    return tuple(value for _ in range(sz.card(t.keys)))


def set_elements(mask: int) -> list[int]:
    out = []
    i = 0
    while mask:
        if mask & 1:
            out.append(i)
        mask >>= 1
        i += 1
    return out
