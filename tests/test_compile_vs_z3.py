"""The two translations of an expression agree: the explorer's closure (explore.compile) and the
Z3 term (smt.symbolic, finite sorts as BMC uses them) give the same truth value on random
expressions over random small states. Every replay and every Z3 result rests on this."""
from itertools import product

import z3
from hypothesis import HealthCheck, given, settings, strategies as st

from apcheck.explore.system import instantiate
from apcheck.ir.lower import lower
from apcheck.ir.types import MapT
from apcheck.lang.check import check
from apcheck.lang.parser import parse
from apcheck.smt.bmc import FiniteUniverse
from apcheck.smt.symbolic import Executor

MODEL = """
sort S bound 2
sort T bound 2
enum D { none, zcrypt, vfio }
var a: set<S> = {}
var b: set<S> = {}
var c: set<T> = {}
var r: rel<S, T> = {}
var f: bool = false
var m: map<S -> T?> = null
var d: map<S, T -> D> = none
"""
SIZES = {"S": 2, "T": 2}
NAMES = iter(range(10 ** 9))


def set_expr(sort: str, scope: dict, depth: int):
    """A set<sort>-valued expression."""
    base = {"S": ["a", "b", "S", "(a - a)"], "T": ["c", "T", "(c - c)"]}[sort]  # typed empty sets
    leaves = st.sampled_from(base)
    if sort == "T" and scope["S"]:
        leaves = st.one_of(leaves, st.sampled_from(scope["S"]).map(lambda x: f"r[{x}]"))
    if scope[sort]:
        leaves = st.one_of(leaves, st.sampled_from(scope[sort]).map(lambda x: f"{{{x}}}"))
    if depth <= 0:
        return leaves
    sub = set_expr(sort, scope, depth - 1)
    return st.one_of(
        leaves,
        st.tuples(sub, st.sampled_from(["+", "-", "&"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.builds(lambda v, body: f"{{{v}: {sort} | {body}}}", *_bind(sort, scope, depth)),
    )


def _bind(sort: str, scope: dict, depth: int):
    v = f"{sort.lower()}{next(NAMES) % 1000}"
    inner = {**scope, sort: scope[sort] + [v]}
    return st.just(v), bool_expr(inner, depth - 1)


def bool_expr(scope: dict, depth: int):
    leaves = [st.sampled_from(["f", "true", "false", "a <= b", "a == b", "c != {}", "#a == 1"])]
    if scope["S"]:
        xs = st.sampled_from(scope["S"])
        leaves += [xs.map(lambda x: f"{x} in a"), xs.map(lambda x: f"m[{x}] == null"),
                   xs.map(lambda x: f"{x} not in b")]
        if scope["T"]:
            ys = st.sampled_from(scope["T"])
            leaves += [st.tuples(xs, ys).map(lambda p: f"({p[0]}, {p[1]}) in r"),
                       st.tuples(xs, ys).map(lambda p: f"m[{p[0]}] == {p[1]}"),
                       st.tuples(xs, ys, st.sampled_from(["none", "zcrypt", "vfio"]))
                       .map(lambda p: f"d[{p[0]}, {p[1]}] == {p[2]}")]
    if len(scope["S"]) > 1:
        leaves.append(st.sampled_from(scope["S"]).map(lambda x: f"{x} == {scope['S'][0]}"))
    leaf = st.one_of(*leaves)
    if depth <= 0:
        return leaf
    sub = bool_expr(scope, depth - 1)
    sort = st.sampled_from(["S", "T"])
    quant = sort.flatmap(lambda s: st.tuples(st.sampled_from(["forall", "exists"]), st.just(s),
                                              *_bind(s, scope, depth)))
    return st.one_of(
        leaf,
        sub.map(lambda e: f"!({e})"),
        st.tuples(sub, st.sampled_from(["&&", "||", "==>"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        quant.map(lambda q: f"({q[0]} {q[2]}: {q[1]} :: {q[3]})"),
        st.tuples(set_expr("S", scope, depth - 1), set_expr("S", scope, depth - 1),
                  st.sampled_from(["==", "!=", "<="])).map(lambda t: f"{t[0]} {t[2]} {t[1]}"),
        st.tuples(st.sampled_from(["forall", "exists"]), set_expr("S", scope, depth - 1), *_bind("S", scope, depth))
        .map(lambda q: f"({q[0]} {q[2]} in {q[1]} :: {q[3]})"),
    )


STATES = st.fixed_dictionaries({
    "a": st.integers(0, 3), "b": st.integers(0, 3), "c": st.integers(0, 3), "r": st.integers(0, 15),
    "f": st.integers(0, 1), "m": st.tuples(*[st.integers(-1, 1)] * 2), "d": st.tuples(*[st.integers(0, 2)] * 4),
})


def z3_value(u: FiniteUniverse, t, v):
    """A concrete value (the explorer's encoding) as a Z3 term, maps included."""
    if isinstance(t, MapT):
        ks = u.bound(t.keys)
        body = u.default(t.value)
        for flat, idx in enumerate(product(*(range(SIZES[k]) for k in t.keys))):
            at = z3.And([k == u.elems[s][i] for k, s, i in zip(ks, t.keys, idx)])
            body = z3.If(at, z3_value(u, t.value, v[flat]), body)
        return z3.Lambda(ks, body)
    return u.encode(t, v)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=bool_expr({"S": [], "T": []}, 3), values=STATES)
def test_closure_and_z3_agree(text, values):
    program = check([parse(MODEL + f"invariant p: {text}\n", "random.apm")])
    system = instantiate(lower(program), SIZES, [], "random")
    (prop, fn, _), = system.invariants
    g = tuple(values[v.name] for v in program.vars)
    concrete = bool(fn(g, [0] * max(system.scratch, 1)))

    u = FiniteUniverse(program, SIZES)
    ex = Executor(u, {v: z3_value(u, v.type, values[v.name]) for v in program.vars})
    ex.cut_nulls = False
    term = ex.boolean(prop.expr)
    solver = z3.Solver()
    solver.add(term != z3.BoolVal(concrete))
    assert solver.check() == z3.unsat, f"{text}: the closure says {concrete}, Z3 disagrees on {values}"
