"""Random small models for the soundness test of the induction over interleaved steps
(tests/test_interleaved.py): two sets kept in step by operations that update them, in half of
the models with discipline (both updates under the lock that guards the sets, the subset kept at
every step), in the others without (the lock dropped between the updates, another lock or none,
the updates in either order); yields, trylocks, flag writes and asserts in between; invariants
with and without `unlocked(...)`. Whatever Z3 proves for any number of threads, the explorer must
not violate at its bounds."""
from __future__ import annotations

import random


def random_interleaved_model(rng: random.Random) -> str:
    disciplined = rng.random() < 0.5
    guard = " guarded_by a" if disciplined else rng.choice(["", " guarded_by a"])
    out = [f"sort S bound {rng.randint(1, 2)}",
           "lock a: mutex", "lock b: mutex", "lock sem: rwsem", "lock per[S]: mutex",
           f"var xs: set<S> = {{}}{guard}",
           f"var ys: set<S> = {{}}{guard}",
           "var flag: bool = false",
           f"var owner: map<S -> S?> = null{guard}"]
    ops = []
    for k in range(rng.randint(2, 3)):
        body = _op_body(rng, disciplined)
        ops.append(f"op{k}")
        out += [f"op op{k}(s: S) {{"] + ["    " + line for line in body] + ["}"]
    for k in range(2):
        runs = rng.sample(ops, rng.randint(1, len(ops)))
        out.append(f"thread th{k}{rng.choice(['', '[2]'])} runs {', '.join(runs)}")
    unlocked = rng.choice(["", " unlocked(xs, ys)", " unlocked(xs, ys)"]) if guard else ""
    out += [f"invariant sub{unlocked}: xs <= ys",
            f"invariant same{unlocked}: xs == ys",
            f"invariant keyed{unlocked.replace('xs, ys', 'owner, ys')}: forall x: S :: owner[x] != null ==> x in ys"]
    return "\n".join(out) + "\n"


def _op_body(rng: random.Random, disciplined: bool) -> list[str]:
    add = rng.random() < 0.6
    if disciplined:
        lock = "a"
        first, second = ("ys", "xs") if add else ("xs", "ys")
        middle = rng.choice([[], ["yield"], ["flag := !flag"], ["if trylock sem {", "release sem", "}"],
                             ["assert xs <= ys"]])
    else:
        lock = rng.choice(["a", "a", "b", "per[s]", None])
        first, second = ("ys", "xs") if rng.random() < 0.5 else ("xs", "ys")
        middle = rng.choice([[], ["yield"], ["flag := !flag"], ["assert xs <= ys"], ["release LOCK", "acquire LOCK"]])
    sign = "+=" if add else "-="
    body = [f"{first} {sign} {{s}}"] + middle + [f"{second} {sign} {{s}}"]
    if add:
        body += rng.choice([[], ["if owner[s] == null {", "owner[s] := s", "}"]])
    else:
        body = rng.choice([["owner[s] := null"], [], ["owner[s] := null"]]) + body
    if lock is None:
        return [line for line in body if "LOCK" not in line]
    return [f"acquire {lock}"] + [line.replace("LOCK", lock) for line in body] + [f"release {lock}"]
