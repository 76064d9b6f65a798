"""A System (the lowered program at sizes, with one scenario's threads) as C: the native core's model part.

The generated file defines the model's dimensions, includes core.h, defines the
state layout (`pack`, `unpack`, `init_state`), the steps (`expand`, one label per
lowered instruction), the properties and the symmetry group's renamings, then
includes core.c (the search). The semantics mirror explore/semantics.py
instruction by instruction, successor by successor, so both cores number the
states alike.

The wide state is one int64 per value: the globals (a map one value per key),
the lock words, then per thread its pc, the number of locks held, its locals
(NLOC slots) and its held locks (instance, acquiring pc) pairs. A stored state
packs each wide value into the bits its range needs.
"""
from __future__ import annotations

from dataclasses import dataclass

from apcheck.explore.symmetry import index_table, instance_map, renamings
from apcheck.explore.system import System
from apcheck.ir import program as P
from apcheck.ir.lowered import (ACQUIRE, BRANCH, EVERY, EXEC, FOR, JUMP, READ, RELEASE, RETURN, SCHED, TRY,
                                WAIT, YIELD, Assert, Assign, Store)
from apcheck.ir.types import BoolT, ElemT, EnumT, ErrT, IntT, MapT, NullT, SetT, TupleT, Type

MAX_SET_BITS = 62   # a set or relation over more tuples is not supported by the native core
INT_RANGE = (-(1 << 15), (1 << 15) - 1)   # int values; outside, the search stops with an error
ERR_RANGE = (-4095, 0)

# The codes the core and Python share, defined here only (emitted into the generated file as enums).
DEFECTS = (("D_RELEASE_NOT_HELD", "release-not-held"), ("D_HELD_AT_RETURN", "lock-held-at-return"),
           ("D_SELF_DEADLOCK", "self-deadlock"), ("D_UNGUARDED", "unguarded"), ("D_NULL", "null-instance"),
           ("D_ASSERT", "assert"), ("D_SLEEP_IN_ATOMIC", "sleep-in-atomic"), ("D_ENDLESS", "endless-step"))
ERRORS = (("E_NOMEM", "out of memory"), ("E_RANGE", "a value outside the range the native core stores (an int or "
                                                     "error code)"),
          ("E_PROPERTY_NULL", "a property uses null as an element"),
          ("E_TOO_MANY", "more locks held than lock instances"), ("E_LIMIT", "memory limit"))
STATUS = ("S_RUNNING", "S_DONE", "S_MAX_STATES", "S_ERROR", "S_FIRST",
          "S_FULL")   # S_FULL: internal to the core (the merge needs the store to grow while workers read it)
DEFECT_KINDS = {k: name for k, (_, name) in enumerate(DEFECTS, 1)}   # defect code -> the defect's kind
ERROR_TEXT = {k: text for k, (_, text) in enumerate(ERRORS, 1)}      # error code -> what it means
_ERROR = {sym: k for k, (sym, _) in enumerate(ERRORS, 1)}
E_NOMEM, E_LIMIT = _ERROR["E_NOMEM"], _ERROR["E_LIMIT"]   # limits of the search (verdicts unknown), not reasons
                                                          # to fall back
S_RUNNING, S_DONE, S_MAX_STATES, S_ERROR, S_FIRST = range(5)   # STATUS, as ap_run returns them


def _codes() -> list[str]:
    return ["enum { " + ", ".join(f"{sym} = {k}" for k, (sym, _) in enumerate(DEFECTS, 1)) + " };",
            "enum { E_NONE = 0, " + ", ".join(f"{sym} = {k}" for k, (sym, _) in enumerate(ERRORS, 1)) + " };",
            "enum { " + ", ".join(f"{sym} = {k}" for k, sym in enumerate(STATUS)) + " };"]


KIND_NAMES = {EXEC: "K_EXEC", BRANCH: "K_BRANCH", JUMP: "K_JUMP", TRY: "K_TRY", FOR: "K_FOR", RETURN: "K_RETURN",
              ACQUIRE: "K_ACQUIRE", RELEASE: "K_RELEASE", WAIT: "K_WAIT", YIELD: "K_YIELD"}


class Unsupported(Exception):
    """The model uses something the native core does not implement (the Python explorer runs it)."""


@dataclass
class Layout:
    """Where each value lives in the wide state, and how a stored state packs it."""

    goff: list[int]       # per state variable: its first wide index
    gsize: list[int]      # 1, or a map's number of keys
    loff: int             # first lock word
    toff: int             # first thread
    nloc: int             # local slots per thread
    maxh: int             # held-lock pairs per thread
    nw: int               # wide values
    # (wide index, lo, hi, word, shift, how): how is True where the type does not guarantee the range
    # (checked when packed), "nheld" (not stored: the count of present held pairs), or ("held",
    # nheld's index, k) for the k-th held pair (stored as value + 1 when present, else 0)
    fields: list[tuple[int, int, int, int, int, object]]
    words: int            # packed words per state
    held_limit: list[int]  # per thread: the most locks it can hold (max_held)

    @property
    def tw(self) -> int:
        return 2 + self.nloc + 2 * self.maxh

    def thread(self, t: int) -> int:
        return self.toff + t * self.tw


def value_range(t: Type | None, sizes: dict[str, int]) -> tuple[int, int, bool]:
    """(lo, hi, checked) of the values of type t; `checked`: the range is not guaranteed by the type."""
    if t is None:  # a quantifier binder: restored after each use, so 0 between steps
        return 0, 0, False
    if isinstance(t, BoolT):
        return 0, 1, False
    if isinstance(t, EnumT):
        return 0, max(len(t.members) - 1, 0), False
    if isinstance(t, (ElemT, NullT)):
        return -1, (sizes[t.sort] - 1 if isinstance(t, ElemT) else -1), False
    if isinstance(t, TupleT):
        return 0, _card(t.sorts, sizes) - 1, False
    if isinstance(t, SetT):
        if t.sorts is None:
            return 0, 0, False
        n = _card(t.sorts, sizes)
        if n > MAX_SET_BITS:
            raise Unsupported(f"a set over {n} tuples (the native core supports up to {MAX_SET_BITS})")
        return 0, (1 << n) - 1, False
    if isinstance(t, MapT):
        return value_range(t.value, sizes)
    if isinstance(t, ErrT):
        return ERR_RANGE[0], ERR_RANGE[1], True
    if isinstance(t, IntT):
        return INT_RANGE[0], INT_RANGE[1], True
    raise Unsupported(f"values of type {t}")


def _card(sorts, sizes) -> int:
    n = 1
    for s in sorts:
        n *= sizes[s]
    return n


def layout(system: System) -> Layout:
    sizes = system.sizes.n
    ranges: list[tuple[int, int, bool]] = []
    goff, gsize = [], []
    for v in system.program.vars:
        n = _card(v.type.keys, sizes) if isinstance(v.type, MapT) else 1
        goff.append(len(ranges))
        gsize.append(n)
        ranges += [value_range(v.type, sizes)] * n
    n_threads = len(system.threads)
    loff = len(ranges)
    for info in system.locks:
        # lock words: 0 free, t+1 held by thread t, -mask held for read by the threads in mask
        lo = -((1 << n_threads) - 1) if info.cls.kind == "rwsem" else 0
        ranges += [(lo, n_threads, False)] * info.count
    toff = len(ranges)
    n_inst = len(system.inst_class)
    nloc = max([len(op.local_init) for op in system.ops] + [1])
    most = max_held(system)
    per_thread = [max([most[op] for op in th.ops] + [0]) for th in system.threads]
    maxh = max(per_thread + [1])
    ncode = len(system.code)
    held_limits: list[int] = []
    for th in system.threads:
        slots: list[tuple[int, int, bool]] = [(0, 0, False)] * nloc
        for op_id in th.ops:
            op = system.ops[op_id]
            for j, t in enumerate(op.local_types):
                lo, hi, chk = value_range(t, sizes)
                a, b, c = slots[j]
                slots[j] = (min(a, lo, 0), max(b, hi, 0), c or chk)
        nh = len(ranges) + 1
        ranges += [(-2, ncode - 1, False), (0, 0, "nheld")] + slots   # pc: DEAD, IDLE or an instruction
        for k in range(maxh):  # present pairs stored as value + 1, absent ones as 0; never more than `most`
            if k >= per_thread[len(held_limits)]:
                ranges += [(0, 0, False), (0, 0, False)]
                continue
            ranges += [(0, n_inst, ("held", nh, k)), (0, ncode, ("held", nh, k))]
        held_limits.append(per_thread[len(held_limits)])
    # Fields fill each word from its most significant bit, in the order of the Python explorer's state
    # tuples, and encode values monotonically: comparing packed words compares the states as Python
    # compares the tuples, so the least renaming (symmetry) is the Python explorer's representative.
    fields, word, used = [], 0, 0
    for i, (lo, hi, chk) in enumerate(ranges):
        width = (hi - lo).bit_length()
        if width > 64 - used:
            word, used = word + 1, 0
        used += width
        fields.append((i, lo, hi, word, 64 - used, chk))
    return Layout(goff, gsize, loff, toff, nloc, maxh, len(ranges), fields, word + 1, held_limits)


def max_held(system: System) -> list[int]:
    """Per operation, the most locks a thread running it can hold at once: a forward dataflow over the
    instructions (an acquire adds one, a release takes one away), capped at the number of instances."""
    code, cap = system.code, max(len(system.inst_class), 1)
    out = []
    for op in system.ops:
        most = {op.entry: 0}
        work = [op.entry]
        while work:
            pc = work.pop()
            n = most[pc]
            ins = code[pc]
            k = ins.kind
            if k == RETURN:
                continue
            nxt = []
            if k in (ACQUIRE, TRY):
                nxt.append((pc + 1, min(n + 1, cap)))
                if k == TRY:
                    nxt.append((ins.target, n))
            elif k == RELEASE:
                nxt.append((pc + 1, max(n - 1, 0)))
            elif k == JUMP:
                nxt.append((ins.target, n))
            elif k in (BRANCH, FOR):
                nxt += [(pc + 1, n), (ins.target, n)]
            else:
                nxt.append((pc + 1, n))
            for q, m in nxt:
                if q < len(code) and most.get(q, -1) < m:
                    most[q] = m
                    work.append(q)
        out.append(max(most.values()))
    return out


class _Expr:
    """Typed expressions -> C expressions over `w` (the wide state) and a locals array."""

    def __init__(self, gen: "Generator", env: dict, locals_name: str, null_stmt: str):
        self.g = gen
        self.env = env
        self.l = locals_name
        self.null = null_stmt
        self.sz = gen.sizes

    def c(self, e: P.Expr) -> str:
        return getattr(self, "c_" + type(e).__name__)(e)

    def elem(self, e: P.Expr) -> str:
        x = self.c(e)
        if isinstance(e.type, ElemT) and e.type.optional:
            v = self.g.tmp()
            return f"({{ V {v} = {x}; if ({v} < 0) {{ {self.null} }} {v}; }})"
        return x

    def c_Const(self, e: P.Const) -> str:
        return f"((V){int(e.value)})"

    def c_GlobalRef(self, e: P.GlobalRef) -> str:
        if isinstance(e.var.type, MapT):
            raise Unsupported(f"the whole map '{e.var.name}' used as a value")
        return f"w[{self.g.lay.goff[e.var.slot]}]"

    def c_LocalRef(self, e: P.LocalRef) -> str:
        return f"{self.l}[{self.env[e.local]}]"

    def c_SortAll(self, e: P.SortAll) -> str:
        return f"((V){(1 << self.sz[e.sort]) - 1})"

    def c_SetLiteral(self, e: P.SetLiteral) -> str:
        if not e.items:
            return "((V)0)"
        return "(" + " | ".join(f"((V)1 << {self.tuple_index(i)})" for i in e.items) + ")"

    def tuple_index(self, e: P.Expr) -> str:
        return self.c_TupleLiteral(e) if isinstance(e, P.TupleLiteral) else self.elem(e)

    def c_TupleLiteral(self, e: P.TupleLiteral) -> str:
        out = "((V)0)"
        for i in e.items:
            out = f"({out} * {self.sz[i.type.sort]} + {self.elem(i)})"
        return out

    def c_Op(self, e: P.Op) -> str:
        op = e.op
        if op == "!":
            return f"((V)!({self.c(e.args[0])}))"
        if op == "#":
            return f"((V)__builtin_popcountll((uint64_t)({self.c(e.args[0])})))"
        x, y = e.args
        if op in ("in", "notin"):
            test = f"((({self.c(y)}) >> ({self.tuple_index(x)})) & 1)"
            return test if op == "in" else f"({test} ^ 1)"
        a, b = self.c(x), self.c(y)
        simple = {"&&": f"((V)(({a}) && ({b})))", "||": f"((V)(({a}) || ({b})))",
                  "==>": f"((V)(!({a}) || ({b})))", "==": f"((V)(({a}) == ({b})))",
                  "!=": f"((V)(({a}) != ({b})))", "le": f"((V)(({a}) <= ({b})))",
                  "<=": f"((V)!(({a}) & ~({b})))", "+": f"(({a}) | ({b}))", "-": f"(({a}) & ~({b}))",
                  "&": f"(({a}) & ({b}))"}
        if op in simple:
            return simple[op]
        if op == "*":
            nb = _card(y.type.sorts, self.sz)
            va, vb, o, i = self.g.tmp(), self.g.tmp(), self.g.tmp(), self.g.tmp()
            return (f"({{ uint64_t {va} = (uint64_t)({a}), {vb} = (uint64_t)({b}), {o} = 0; int {i} = 0; "
                    f"while ({va}) {{ if ({va} & 1) {o} |= {vb} << ({i} * {nb}); {va} >>= 1; {i}++; }} (V){o}; }})")
        raise Unsupported(f"operator {op}")

    def key(self, sorts: tuple[str, ...], args: list[P.Expr]) -> str:
        if len(args) == 1:
            return self.elem(args[0])
        out = "((V)0)"
        for s, a in zip(sorts, args):
            out = f"({out} * {self.sz[s]} + {self.elem(a)})"
        return out

    def c_Image(self, e: P.Image) -> str:
        width = _card(e.type.sorts, self.sz)
        key = self.key(e.base.type.sorts[: len(e.args)], e.args)
        return f"((({self.c(e.base)}) >> (({key}) * {width})) & {(1 << width) - 1})"

    def c_Lookup(self, e: P.Lookup) -> str:
        if not isinstance(e.base, P.GlobalRef):
            raise Unsupported("a lookup in a map that is not a state variable")
        return f"w[{self.g.lay.goff[e.base.var.slot]} + {self.key(e.base.type.keys, e.args)}]"

    def c_Quant(self, e: P.Quant) -> str:
        """Mirrors explore/compile.py: the binders' slots are saved and restored; a comprehension
        sets bit `flat` (the row-major index over the binders' sorts) where the body holds."""
        r, done = self.g.tmp(), self.g.tmp()
        kind = e.kind
        init = "1" if kind == "forall" else "0"
        saves, restores, loops, closes = [], [], [], []
        flat = "0"
        for b, dom in e.binders:
            slot = self.env[b]
            n = self.sz[b.type.sort]
            s, x, m, f = self.g.tmp(), self.g.tmp(), self.g.tmp(), self.g.tmp()
            saves.append(f"V {s} = {self.l}[{slot}];")
            restores.append(f"{self.l}[{slot}] = {s};")
            mask = f"V {m} = {self.c(dom)}; " if dom is not None else ""
            test = f"if (!(({m} >> {x}) & 1)) continue; " if dom is not None else ""
            loops.append(f"{mask}for (V {x} = 0; {x} < {n}; {x}++) {{ {test}{self.l}[{slot}] = {x}; "
                         f"V {f} = {flat} * {n} + {x}; (void){f};")
            closes.append("}")
            flat = f
        body = self.c(e.body)
        if kind == "forall":
            act = f"if (!({body})) {{ {r} = 0; goto {done}; }}"
        elif kind == "exists":
            act = f"if ({body}) {{ {r} = 1; goto {done}; }}"
        else:
            act = f"if ({body}) {r} |= (V)1 << {flat};"
        return (f"({{ V {r} = {init}; {' '.join(saves)} {' '.join(loops)} {act} {' '.join(closes)} "
                f"goto {done}; {done}: ; {' '.join(restores)} {r}; }})")


class Generator:
    def __init__(self, system: System):
        self.sys = system
        self.sizes = system.sizes.n
        self.lay = layout(system)
        self.n_tmp = 0
        if len(system.threads) > 62:
            raise Unsupported(f"{len(system.threads)} threads (the native core supports up to 62)")
        if len(system.locks) > 64:
            raise Unsupported(f"{len(system.locks)} lock classes (the native core supports up to 64)")

    def tmp(self) -> str:
        self.n_tmp += 1
        return f"_t{self.n_tmp}"

    # ---- the whole file ------------------------------------------------------------------

    def source(self) -> str:
        s, lay = self.sys, self.lay
        perms = renamings(self.sizes)  # used where the search asks for symmetry (ap_new): one build for both
        out = ["/* generated by apcheck (explore/native/codegen.py); do not edit */",
               f"#define NW {lay.nw}", f"#define NP {lay.words}", f"#define NT {len(s.threads)}",
               f"#define NC {max(len(s.locks), 1)}", f"#define NI {max(len(s.inst_class), 1)}",
               f"#define NINV {len(s.invariants)}", f"#define NCOV {len(s.covers)}",
               f"#define NPERM {len(perms)}", f"#define MAXH {lay.maxh}", f"#define NLOC {lay.nloc}",
               f"#define NCODE {len(s.code)}", f"#define NOPS {len(s.ops)}", f"#define LOFF {lay.loff}", f"#define TOFF0 {lay.toff}",
               *_codes(),
               '#include "core.h"',
               "enum { " + ", ".join(f"{name} = {k}" for k, name in KIND_NAMES.items()) + " };",
               self.array("int32_t", "CODE_KIND", [ins.kind for ins in s.code]),
               self.array("int32_t", "INST_CLASS", s.inst_class or [0]),
               self.array("int32_t", "OP_OF_PC", s.op_of_pc),
               self.array("int32_t", "HELD_LIMIT", lay.held_limit),
               "static void pack(Ctx *c, const V *w, uint64_t *p);",
               "static void unpack(const uint64_t *p, V *w);",
               "static void apply_perm(int k, const V *in, V *out);",
               "static int prop_inv(Ctx *c, int k, const V *w);",
               "static int prop_cov(Ctx *c, int k, const V *w);",
               "static int inv_masked(int k, const V *w);",
               "static void init_state(V *w);",
               "static void expand(Ctx *c, const V *s);",
               "static int waiting_on(Ctx *c, const V *w, int t, V *inst, int *mode);",
               self.pack(), self.unpack(), self.init_state(), self.props(), self.perm_code(perms),
               self.steps(), '#include "core.c"']
        return "\n".join(out) + "\n"

    @staticmethod
    def array(ctype: str, name: str, values) -> str:
        vals = list(values) or [0]
        return f"static const {ctype} {name}[{len(vals)}] = {{{', '.join(str(int(v)) for v in vals)}}};"

    # ---- layout ------------------------------------------------------------------------------

    def pack(self) -> str:
        out = ["static void pack(Ctx *c, const V *w, uint64_t *p) {", "    uint64_t x;",
               f"    memset(p, 0, NP * sizeof(uint64_t));"]
        for i, lo, hi, word, shift, how in self.lay.fields:
            if how == "nheld" or hi == lo:
                if how is True:
                    out.append(f"    if (w[{i}] != {lo}) c->error = E_RANGE;")
                continue
            if isinstance(how, tuple):
                _, nh, k = how
                out.append(f"    x = {k} < w[{nh}] ? (uint64_t)(w[{i}] + 1) : 0;")
            else:
                out.append(f"    x = (uint64_t)(w[{i}] - ({lo}));")
                if how is True:
                    out.append(f"    if (x > {hi - lo}ULL) c->error = E_RANGE;")
            out.append(f"    p[{word}] |= x << {shift};")
        out.append("}")
        return "\n".join(out)

    def unpack(self) -> str:
        out = ["static void unpack(const uint64_t *p, V *w) {", "    uint64_t x;"]
        for i, lo, hi, word, shift, how in self.lay.fields:
            mask = (1 << (hi - lo).bit_length()) - 1
            if how == "nheld":
                out.append(f"    w[{i}] = 0;")
            elif isinstance(how, tuple):
                _, nh, k = how
                count = f" w[{nh}] += x != 0;" if i == nh + 1 + self.lay.nloc + 2 * k else ""
                out.append(f"    x = (p[{word}] >> {shift}) & {mask}ULL; w[{i}] = x ? (V)x - 1 : 0;{count}")
            elif hi == lo:
                out.append(f"    w[{i}] = {lo};")
            else:
                out.append(f"    w[{i}] = (V)((p[{word}] >> {shift}) & {mask}ULL) + ({lo});")
        out.append("}")
        return "\n".join(out)

    def init_state(self) -> str:
        out = ["static void init_state(V *w) {"]
        for v, value in zip(self.sys.program.vars, self.sys.init_globals):
            base = self.lay.goff[v.slot]
            values = value if isinstance(value, tuple) else (value,)
            for k, x in enumerate(values):
                if not isinstance(x, int):
                    raise Unsupported(f"the initial value of '{v.name}'")
                if x:
                    out.append(f"    w[{base + k}] = {x};")
        for t in range(len(self.sys.threads)):
            out.append(f"    w[{self.lay.thread(t)}] = IDLE;")
        out.append("}")
        return "\n".join(out)

    # ---- properties --------------------------------------------------------------------------

    def props(self) -> str:
        s = self.sys
        scratch = s.lowered.scratch
        null = "{ c->error = E_PROPERTY_NULL; return 0; }"
        out = ["static int prop_inv(Ctx *c, int k, const V *w) {",
               f"    V sc[{max(s.scratch, 1)}] = {{0}}; (void)sc; (void)c;", "    switch (k) {"]
        for k, (prop, _, _) in enumerate(s.invariants):
            out.append(f"    case {k}: return ({_Expr(self, scratch, 'sc', null).c(prop.expr)}) != 0;")
        out += ["    }", "    return 1;", "}",
                "static int prop_cov(Ctx *c, int k, const V *w) {",
                f"    V sc[{max(s.scratch, 1)}] = {{0}}; (void)sc; (void)c;", "    switch (k) {"]
        for k, (prop, _) in enumerate(s.covers):
            out.append(f"    case {k}: return ({_Expr(self, scratch, 'sc', null).c(prop.expr)}) != 0;")
        out += ["    }", "    return 0;", "}"]
        # an invariant with unlocked(...) is not judged where a thread holds every lock of a guard;
        # one `between operations`, where a thread is not idle
        out += ["static int inv_masked(int k, const V *w) {", "    (void)w;", "    switch (k) {"]
        for k, (prop, _, guards) in enumerate(s.invariants):
            if not guards and not prop.between:
                continue
            body = ""
            if prop.between:
                body += "if (th[0] != IDLE) return 1; "
            if guards:
                masks = [sum(1 << cl for cl in g) for g in guards]
                tests = " || ".join(f"(m & {m}ULL) == {m}ULL" for m in masks)
                body += f"if (th[1]) {{ uint64_t m = held_classes(th); if ({tests}) return 1; }} "
            out.append(f"    case {k}: for (int t = 0; t < NT; t++) {{ const V *th = w + TOFF0 + t * TW; "
                       f"{body}}} return 0;")
        out += ["    }", "    return 0;", "}"]
        return "\n".join(out)

    # ---- symmetry ----------------------------------------------------------------------------

    def perm_code(self, perms) -> str:
        """Data-driven renamings: per permutation, moves of wide values (dst, src, rename) for
        the globals and locks, per operation the locals renamed in place, and the instance map."""
        s, lay, n = self.sys, self.lay, self.sizes
        tables: list[int] = []
        kinds: list[tuple[int, int]] = [(0, 0)]  # rename id -> (kind, offset): 0 none, 1 elem, 2 index, 3 set
        cache: dict = {}

        def rename(t: Type | None, perm) -> int:
            if t is None:
                return 0
            if isinstance(t, MapT):
                t = t.value
            if isinstance(t, ElemT):
                if t.sort not in perm:
                    return 0
                key = ("e", t.sort, perm[t.sort])
                table, kind = list(perm[t.sort]), 1
            elif isinstance(t, (SetT, TupleT)) and t.sorts:
                if not any(x in perm for x in t.sorts):
                    return 0
                key = ("i", t.sorts, tuple(perm.get(x, ()) for x in t.sorts), isinstance(t, SetT))
                table, kind = index_table(t.sorts, n, perm), (3 if isinstance(t, SetT) else 2)
            else:
                return 0
            if key not in cache:
                cache[key] = len(kinds)
                kinds.append((kind, len(tables)))
                tables.extend(table)
            return cache[key]

        moves, mstart = [], [0]
        lmoves, lstart = [], [0]
        imap: list[int] = []
        for perm in perms:
            for v in s.program.vars:
                base, size = lay.goff[v.slot], lay.gsize[v.slot]
                rid = rename(v.type, perm)
                src = list(range(size))
                if isinstance(v.type, MapT) and any(x in perm for x in v.type.keys):
                    table = index_table(v.type.keys, n, perm)
                    for old, new in enumerate(table):
                        src[new] = old
                for k in range(size):
                    if rid or src[k] != k:
                        moves += [base + k, base + src[k], rid]
            inst_map = instance_map(s, perm)
            for old, new in enumerate(inst_map):
                if old != new:
                    moves += [lay.loff + new, lay.loff + old, 0]
            imap += inst_map or [0]
            mstart.append(len(moves) // 3)
            for op in s.ops:
                for j, t in enumerate(op.local_types):
                    rid = rename(t, perm)
                    if rid:
                        lmoves += [j, rid]
                lstart.append(len(lmoves) // 2)
        out = [self.array("int32_t", "PM", moves), self.array("int32_t", "PM_START", mstart),
               self.array("int32_t", "LM", lmoves), self.array("int32_t", "LM_START", lstart),
               self.array("int32_t", "IMAP", imap), self.array("int32_t", "RT", tables),
               self.array("int32_t", "RKIND", [k for k, _ in kinds]),
               self.array("int32_t", "ROFF", [o for _, o in kinds]),
               """static inline V rename_value(int rid, V v) {
    if (!rid) return v;
    const int32_t *tab = RT + ROFF[rid];
    switch (RKIND[rid]) {
    case 1: return v < 0 ? v : tab[v];
    case 2: return tab[v];
    default: { uint64_t m = (uint64_t)v, o = 0; while (m) { int b = __builtin_ctzll(m); m &= m - 1; o |= 1ULL << tab[b]; } return (V)o; }
    }
}
static void apply_perm(int k, const V *in, V *out) {
    memcpy(out, in, NW * sizeof(V));
    for (int m = PM_START[k]; m < PM_START[k + 1]; m++) out[PM[3 * m]] = rename_value(PM[3 * m + 2], in[PM[3 * m + 1]]);
    for (int t = 0; t < NT; t++) {
        const V *ti = in + TOFF0 + t * (2 + NLOC + 2 * MAXH);
        V *to = out + TOFF0 + t * (2 + NLOC + 2 * MAXH);
        if (ti[0] == IDLE) continue;
        if (ti[0] >= 0) {   /* a dead thread has no locals, only its locks */
            int op = OP_OF_PC[ti[0]];
            for (int m = LM_START[k * NOPS + op]; m < LM_START[k * NOPS + op + 1]; m++)
                to[2 + LM[2 * m]] = rename_value(LM[2 * m + 1], ti[2 + LM[2 * m]]);
        }
        for (V i = 0; i < ti[1]; i++) to[2 + NLOC + 2 * i] = IMAP[k * NI + ti[2 + NLOC + 2 * i]];
    }
}"""]
        return "\n".join(out)

    # ---- steps -------------------------------------------------------------------------------

    def steps(self) -> str:
        s = self.sys
        code = s.code
        lowered = s.lowered.code
        entries = {op.entry for op in s.ops}
        entries |= {k + 1 for k, ins in enumerate(code) if ins.kind in SCHED or ins.kind == FOR}
        entries = sorted(e for e in entries if e < len(code))
        out = ["#define DEFECT(kind) do { defect(c, w, t, kind); return; } while (0)",
               "static void run(Ctx *c, V *w, int t, int pc);",
               "static void run(Ctx *c, V *w, int t, int pc) {",
               "    V *th = w + TOFF0 + t * TW; V *l = th + 2; int rounds = 0; (void)rounds; (void)l;",
               "    switch (pc) {"]
        out += [f"    case {e}: goto L{e};" for e in entries]
        out += ["    default: c->error = E_RANGE; return;", "    }"]
        for k, (ins, low) in enumerate(zip(code, lowered)):
            out.append(f"L{k}: {{ /* {KIND_NAMES[ins.kind][2:].lower()} {ins.span.file}:{ins.span.line} */")
            out += self.instr(k, ins, low)
            out.append("}")
        out.append(f"L{len(code)}: c->error = E_RANGE; return;")
        out.append("}")
        # the scheduling point a busy thread is at (semantics.py: _sched_step)
        out += ["static void sched(Ctx *c, const V *s, int t, int pc, const V *start) {",
                "    V w[NW]; memcpy(w, s, sizeof(w));",
                "    V *th = w + TOFF0 + t * TW; V *l = th + 2; (void)l;",
                "    if (start) memcpy(l, start, NLOC * sizeof(V));",
                "    switch (pc) {"]
        for k, ins in enumerate(code):
            if ins.kind in SCHED:
                out.append(f"    case {k}: {{ " + " ".join(self.sched_body(k)) + " }")
        out += ["    }", "    c->error = E_RANGE;", "}"]
        out += self.lead_steps()
        out += self.thread_steps()
        out += self.waiting_on()
        return "\n".join(out)

    def sched_body(self, k: int, lead: tuple[int, ...] = ()) -> list[str]:
        """The step from the scheduling point k (semantics.py `_sched_step`): blocked, or taken,
        and counted as executed with the operation's leading acquires `lead` before it."""
        s = self.sys
        ins, low = s.code[k], s.lowered.code[k]
        spin = sum(1 << cid for cid, info in enumerate(s.locks) if info.cls.kind == "spinlock")
        e = _Expr(self, low.env, "l", "DEFECT(D_NULL);")
        body = self.guard_check(ins, low, e)
        sleeps = bool(spin) and (ins.kind == WAIT or (ins.kind == ACQUIRE and
                                                      s.locks[ins.lock].cls.kind != "spinlock"))
        if sleeps:
            body.append(f"if (th[1] && (held_classes(th) & {spin}ULL)) DEFECT(D_SLEEP_IN_ATOMIC);")
        taken = " ".join(f"c->executed[{j}]++;" for j in (*lead, k))   # coverage: the step is taken
        if ins.kind == ACQUIRE:
            body.append(f"V inst = {self.instance(ins, low, e)};")
            body.append(f"if (holder(w[LOFF + inst], t, {ins.mode}) == OTHER) return;")
            body.append(taken)
            body.append(f"if (do_acquire(c, w, t, {k}, inst, {ins.mode}, 1) < 0) return;")
        elif ins.kind == WAIT:
            body.append(f"if (!({e.c(low.cond)})) return;")
            body.append(taken)
        elif ins.kind == RELEASE:
            body.append(taken)
            body.append(f"if (do_release(c, w, t, {self.instance(ins, low, e)}) < 0) return;")
        else:
            body.append(taken)
        body.append(f"run(c, w, t, {k + 1}); return;")
        return body

    def lead_steps(self) -> list[str]:
        """semantics.py `start`: an operation with leading acquires no other thread contends
        (System.leads) takes them with its start, then the scheduling point after them."""
        s = self.sys
        out = ["static void start_lead(Ctx *c, const V *s, int t, int op, const V *start) {",
               "    V w[NW]; memcpy(w, s, sizeof(w));",
               "    V *th = w + TOFF0 + t * TW; V *l = th + 2; (void)l; (void)th;",
               "    memcpy(l, start, NLOC * sizeof(V));",
               "    switch (op) {"]
        for op_id, lead in enumerate(s.leads):
            if not lead:
                continue
            body = []
            for k in lead:
                ins, low = s.code[k], s.lowered.code[k]
                e = _Expr(self, low.env, "l", "DEFECT(D_NULL);")
                body.append(f"if (do_acquire(c, w, t, {k}, {self.instance(ins, low, e)}, {ins.mode}, 1) < 0) return;")
            first = lead[-1] + 1
            if s.code[first].kind == ACQUIRE:
                body += self.sched_body(first, lead)
            else:
                body += [f"c->executed[{k}]++;" for k in lead] + [f"run(c, w, t, {first}); return;"]
            out.append(f"    case {op_id}: {{ " + " ".join(body) + " }")
        out += ["    }", "    c->error = E_RANGE;", "}"]
        return out

    def waiting_on(self) -> list[str]:
        """The lock instance and mode a thread at an acquire asks for (0: not at an acquire, or the
        instance is null), for the wait-for cycles of --first (core.c: waits_forever)."""
        out = ["static int waiting_on(Ctx *c, const V *w, int t, V *inst, int *mode) {",
               "    V *th = (V *)w + TOFF0 + t * TW; V *l = th + 2; (void)l; (void)c;",
               "    switch (th[0]) {"]
        for k, (ins, low) in enumerate(zip(self.sys.code, self.sys.lowered.code)):
            if ins.kind != ACQUIRE:
                continue
            e = _Expr(self, low.env, "l", "return 0;")
            out.append(f"    case {k}: *inst = {self.instance(ins, low, e)}; *mode = {ins.mode}; return 1;")
        out += ["    }", "    return 0;", "}"]
        return out

    def thread_steps(self) -> list[str]:
        s, lay = self.sys, self.lay
        out = []
        starts, sstart, nargs = [], [], []
        for op, arg_tuples in zip(s.ops, s.arg_tuples):
            sstart.append(len(starts) // lay.nloc)
            nargs.append(len(arg_tuples))
            for args in arg_tuples:
                loc = op.start_locals(args)
                if not all(isinstance(x, int) for x in loc):
                    raise Unsupported(f"the arguments of {op.name}")
                starts += loc + [0] * (lay.nloc - len(loc))
        out.append(self.array("V", "START", starts))
        out.append(self.array("int32_t", "START_AT", sstart))
        out.append(self.array("int32_t", "NARGS", nargs))
        out.append(self.array("int32_t", "OP_ENTRY", [op.entry for op in s.ops]))
        out.append(self.array("int32_t", "LEADS", [len(lead) for lead in s.leads]))
        tops, tstart = [], []
        for th in s.threads:
            tstart.append(len(tops))
            tops += th.ops
        tstart.append(len(tops))
        out.append(self.array("int32_t", "TOPS", tops))
        out.append(self.array("int32_t", "TOPS_AT", tstart))
        out.append("""static void expand(Ctx *c, const V *s) {
    for (int t = 0; t < NT; t++) {
        const V *ts = s + TOFF0 + t * TW;
        if (ts[0] == DEAD) continue;
        if (ts[0] != IDLE) { sched(c, s, t, (int)ts[0], NULL); if (c->error) return; continue; }
        for (int k = TOPS_AT[t]; k < TOPS_AT[t + 1]; k++) {
            int op = TOPS[k], entry = OP_ENTRY[op];
            for (int a = 0; a < NARGS[op]; a++) {
                const V *start = START + (START_AT[op] + a) * NLOC;
                if (LEADS[op] && c->merge) start_lead(c, s, t, op, start);
                else if (CODE_KIND[entry] == K_ACQUIRE) sched(c, s, t, entry, start);
                else {
                    V w[NW]; memcpy(w, s, sizeof(w));
                    memcpy(w + TOFF0 + t * TW + 2, start, NLOC * sizeof(V));
                    run(c, w, t, entry);
                }
                if (c->error) return;
            }
        }
    }
}""")
        return out

    def instance(self, ins, low, e: _Expr) -> str:
        base = self.sys.locks[ins.lock].base
        if low.instance is None:
            return f"((V){base})"
        return f"((V){base} + {e.elem(low.instance)})"

    def guard_check(self, ins, low, e: _Expr) -> list[str]:
        """semantics.py _check_guards: the lock classes, then the instances of per-instance guards."""
        if not low.guards:
            return []
        tests = []
        for gd in low.guards:
            m = gd.mask
            tests.append(f"(have & {m}ULL) == {m}ULL" if gd.write else f"(have & {m}ULL)")
        out = ["{ uint64_t have = held_classes(th); if (!(" + " && ".join(tests) + ")) DEFECT(D_UNGUARDED); }"]
        for gd in low.guards:
            if not gd.per_instance:
                continue
            parts = []  # every part evaluated (a null entry is a defect even where another lock is held)
            for cl, at in zip(gd.locks, gd.at):
                info = self.sys.locks[cl]
                v = self.tmp()
                parts.append(v)
                if at is None:
                    out.append(f"int {v} = (held_classes(th) >> {cl}) & 1;")
                elif at == EVERY:
                    out.append(f"int {v} = holds_all(th, {info.base}, {info.count});")
                else:
                    out.append(f"int {v} = holds_instance(th, {info.base} + {e.elem(at)});")
            joined = (" && " if gd.write else " || ").join(parts)
            out.append(f"if (!({joined})) DEFECT(D_UNGUARDED);")
        return out

    def instr(self, k: int, ins, low) -> list[str]:
        e = _Expr(self, low.env, "l", "DEFECT(D_NULL);")
        out = ["    " + x for x in self.guard_check(ins, low, e)]
        kind = ins.kind
        if kind in (EXEC, BRANCH, JUMP, FOR, TRY):   # coverage (a return counts once it returns)
            out.append(f"    c->executed[{k}]++;")
        if kind == EXEC:
            out.append("    " + self.effect(low.effect, e))
        elif kind == BRANCH:
            out.append(f"    if (!({e.c(low.cond)})) goto L{ins.target};")
        elif kind == JUMP:
            if ins.target < k:  # a loop goes round
                out.append("    if (++rounds >= MAX_LOOP_ROUNDS) DEFECT(D_ENDLESS);")
            out.append(f"    goto L{ins.target};")
        elif kind == FOR:
            out.append(f"""    {{ uint64_t rem = (uint64_t)l[{ins.rem}]; if (!rem) goto L{ins.target};
      int low = __builtin_ctzll(rem); uint64_t rest = rem & ~(1ULL << low), other = rest;
      while (other) {{ int b = __builtin_ctzll(other); other &= other - 1;
        V w2[NW]; memcpy(w2, w, sizeof(w2)); V *l2 = w2 + TOFF0 + t * TW + 2;
        l2[{ins.slot}] = b; l2[{ins.rem}] = (V)(rem & ~(1ULL << b)); run(c, w2, t, {k + 1}); if (c->error) return; }}
      l[{ins.slot}] = low; l[{ins.rem}] = (V)rest; }}""")
        elif kind == TRY:
            out.append(f"    {{ int r = do_acquire(c, w, t, {k}, {self.instance(ins, low, e)}, {ins.mode}, 0); "
                       f"if (r < 0) return; if (!r) goto L{ins.target}; }}")
        elif kind == RETURN:
            value = e.c(low.value) if low.value is not None else "0"
            op = self.sys.op_of_pc[k]
            out.append(f"    {{ V res = {value}; (void)res; if (th[1]) DEFECT(D_HELD_AT_RETURN); "
                       f"c->executed[{k}]++; c->returned[{op}]++; if (res >= 0) {{ c->succeeded[{op}]++; "
                       f"completed(c, {op}, t); }} "
                       f"memset(th, 0, TW * sizeof(V)); th[0] = IDLE; emit(c, w, t); return; }}")
        else:
            if kind == RELEASE and ins.private_release:
                out.append(f"    if (c->merge) {{ c->executed[{k}]++; "
                           f"if (do_release(c, w, t, {self.instance(ins, low, e)}) < 0) return; goto L{k + 1}; }}")
            for slot, value in ins.dead:
                if not isinstance(value, int):
                    raise Unsupported("a dead local's reset value")
                out.append(f"    l[{slot}] = {value};")
            out.append(f"    th[0] = {k}; emit(c, w, t); return;")
        return out

    def effect(self, eff, e: _Expr) -> str:
        if isinstance(eff, Assert):
            return f"if (!({e.c(eff.cond)})) DEFECT(D_ASSERT);"
        if isinstance(eff, Store):
            if eff.value is None:
                value = "0"
            else:
                value = e.elem(eff.value) if eff.element else e.c(eff.value)
            return f"l[{eff.slot}] = {value};"
        assert isinstance(eff, Assign)
        st = eff.stmt
        val = e.c(st.value)

        def combine(old: str, new: str) -> str:
            return new if st.op == ":=" else f"({old} | {new})" if st.op == "+=" else f"({old} & ~{new})"
        if isinstance(st.target, P.Var):
            base = self.lay.goff[st.target.slot]
            typ = st.target.type
            if not st.indices:
                if isinstance(typ, MapT):
                    raise Unsupported(f"an assignment to the whole map '{st.target.name}'")
                return f"w[{base}] = {combine(f'w[{base}]', f'({val})')};"
            keys = typ.keys if isinstance(typ, MapT) else typ.sorts[: len(st.indices)]
            key = e.key(keys, st.indices)
            if isinstance(typ, MapT):
                return f"{{ V _k = {key}; V _v = {val}; w[{base} + _k] = {combine(f'w[{base} + _k]', '_v')}; }}"
            width = _card(typ.sorts[len(st.indices):], self.sizes)
            mask = (1 << width) - 1
            return (f"{{ V _k = {key}; V _v = {val}; V _sh = _k * {width}; V _old = (w[{base}] >> _sh) & {mask}; "
                    f"V _new = {combine('_old', '_v')} & {mask}; "
                    f"w[{base}] = (w[{base}] & ~((V){mask} << _sh)) | (_new << _sh); }}")
        if st.indices:
            raise Unsupported("an indexed assignment to a local")
        slot = e.env[st.target]
        return f"l[{slot}] = {combine(f'l[{slot}]', f'({val})')};"


def generate(system: System) -> tuple[str, Layout]:
    """The C source of the model part for this system, and its state layout."""
    gen = Generator(system)
    return gen.source(), gen.lay
