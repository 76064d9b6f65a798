"""Random small models for the differential tests of the native core (tests/test_native.py).

Each model has one or two sorts, mutexes, a spinlock, an rw-semaphore and a per-element lock,
guarded and unguarded sets, a relation, a map to an optional element, a bool, and two or three
threads running operations built from acquires and releases (sometimes unbalanced), trylocks,
ifs, for loops over sets, while loops, waits, yields, assignments, asserts and returns. The
properties use quantifiers, comprehensions and cardinalities. The models are valid by
construction; what they do (defects, deadlocks, endless loops) is whatever the dice say."""
from __future__ import annotations

import random


class _Gen:
    def __init__(self, rng: random.Random):
        self.r = rng
        self.depth = 0

    def pick(self, *xs):
        return self.r.choice(xs)

    def elem_s(self, params) -> str:
        return self.pick(*params["S"]) if params["S"] else "null"

    def cond(self, params) -> str:
        s = params["S"]
        opts = ["flag", "!flag", "#xs == 0", "xs <= ys", "exists x: S :: x in xs"]
        if s:
            v = self.pick(*s)
            opts += [f"{v} in xs", f"{v} not in ys", f"m[{v}] == null", f"m[{v}] != {v}"]
        if params["T"] and s:
            opts.append(f"({self.pick(*s)}, {self.pick(*params['T'])}) in rel")
        return self.pick(*opts)

    def assign(self, params) -> str:
        s, t = params["S"], params["T"]
        opts = ["flag := !flag", "flag := true", "xs := {}", "ys := xs", "xs := {x: S | x in ys}"]
        if s:
            v = self.pick(*s)
            opts += [f"xs += {{{v}}}", f"xs -= {{{v}}}", f"ys += {{{v}}}", f"m[{v}] := null",
                     f"m[{v}] := {self.pick(*s)}", f"count := #xs"]
            if t:
                opts += [f"rel[{v}] += {{{self.pick(*t)}}}", f"rel -= {{({v}, {self.pick(*t)})}}"]
        return self.pick(*opts)

    def block(self, params, held: list[str], n: int) -> list[str]:
        out = []
        for _ in range(n):
            out += self.stmt(params, held)
        return out

    def stmt(self, params, held: list[str]) -> list[str]:
        r = self.r.random()
        self.depth += 1
        try:
            if self.depth > 3 or r < 0.35:
                return [self.assign(params)]
            if r < 0.55:
                lock = self.lock(params)
                if lock in held:
                    return [self.assign(params)]
                read = lock == "sem" and self.r.random() < 0.5
                body = self.block(params, held + [lock], self.r.randint(1, 2))
                tail = [] if self.r.random() < 0.05 else [f"release {lock}"]  # sometimes left held
                return [f"acquire {'read ' if read else ''}{lock}"] + body + tail
            if r < 0.63:
                lock = self.lock(params)
                if lock in held:
                    return ["yield"]
                body = self.block(params, held + [lock], 1)
                return [f"if trylock {lock} {{"] + body + [f"release {lock}", "} else {", "yield", "}"]
            if r < 0.72:
                return [f"if {self.cond(params)} {{"] + self.block(params, held, 1) + ["} else {"] + \
                    self.block(params, held, 1) + ["}"]
            if r < 0.78:
                inner = {**params, "S": params["S"] + ["e"]}
                return ["for e in xs {"] + self.block(inner, held, 1) + ["}"]
            if r < 0.82:
                return ["while flag {", "flag := false", "}"] if self.r.random() < 0.8 else \
                    ["while #ys != 0 {", "yield", "}"]
            if r < 0.88:
                return ["wait until flag" if not held else "yield"]
            if r < 0.91:
                return [f"assert {self.cond(params)}"]
            if r < 0.95:
                return ["yield"]
            return [f"if {self.cond(params)} {{", "return -EBUSY", "}"] if not held else ["yield"]
        finally:
            self.depth -= 1

    def lock(self, params) -> str:
        opts = ["a", "b", "sem", "spin"]
        if params["S"]:
            opts.append(f"per[{self.pick(*params['S'])}]")
        opts.append("per[m[" + self.pick(*params["S"]) + "]]" if params["S"] else "a")
        return self.pick(*opts)


def random_model(rng: random.Random) -> str:
    g = _Gen(rng)
    s_bound, t_bound = rng.randint(1, 3), rng.randint(1, 2)
    out = [f"sort S bound {s_bound}", f"sort T bound {t_bound}",
           "lock a: mutex", "lock b: mutex", "lock sem: rwsem", "lock spin: spinlock", "lock per[S]: mutex",
           "var xs: set<S> = {}" + rng.choice(["", "", "", "", " guarded_by a", " guarded_by a, b"]),
           "var ys: set<S> = S",
           "var rel: rel<S, T> = {}" + rng.choice(["", "", "", " guarded_by sem"]),
           "var m: map<S -> S?> = null",
           "var flag: bool = false",
           "var count: int = 0"]
    ops = []
    for k in range(rng.randint(2, 4)):
        kinds = rng.choice([[], ["S"], ["S", "T"]])
        params = {"S": ["s"] if "S" in kinds else [], "T": ["t"] if "T" in kinds else []}
        sig = ", ".join(f"{n}: {k2}" for n, k2 in (("s", "S"), ("t", "T")) if params[k2])
        body = g.block(params, [], rng.randint(2, 5))
        ops.append(f"op{k}")
        out += [f"op op{k}({sig}) {{"] + ["    " + line for line in body] + ["}"]
    for k in range(rng.randint(2, 3)):
        runs = rng.sample(ops, rng.randint(1, min(2, len(ops))))
        count = rng.choice(["", "", "[2]"])
        out.append(f"thread th{k}{count} runs {', '.join(runs)}")
    out += ["invariant inv1: forall x: S :: x in xs ==> x in ys || m[x] != null",
            "invariant inv2: #{x: S | x in xs} <= 2",
            "invariant inv3 between operations: flag || xs <= ys",
            "cover cov1: exists x: S, y: T :: (x, y) in rel && flag",
            "lockorder order: acyclic"]
    return "\n".join(out) + "\n"
