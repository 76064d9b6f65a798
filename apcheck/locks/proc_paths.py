"""The lock operations on each path of one procedure of a model, calls followed into the
procedures they call (each operation with its call chain): what `apcheck drift` compares with the
C function of the same name, whose helpers `apcheck extract` follows the same way.

A loop's body runs at most once on a path (as `apcheck extract` reads C); a condition tested
again, word for word, with nothing assigned in between to what it names (the procedure's own
assignments, or a callee's writes), goes the way it went before.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from apcheck.csource.extract import polarity
from apcheck.diagnostics import Span
from apcheck.ir import program as P

MAX_PATHS = 256
MAX_CALL_DEPTH = 8


@dataclass(frozen=True)
class ModelLockOp:
    op: str                  # acquire | release | trylock
    lock: str                # the lock class
    instance: str            # the instance expression ('' for a lock with one instance)
    mode: str                # exclusive | read
    span: Span
    guarded: tuple[str, ...]  # the conditions tested true before it on its path (texts)
    via: tuple[str, ...] = ()  # the calls it was reached through, outermost first


@dataclass
class ModelPath:
    ops: list[ModelLockOp]
    conditions: list[tuple[str, bool]]


def proc_paths(program: P.Program, proc: P.Proc, _active: tuple[str, ...] = ()) -> tuple[list[ModelPath], bool]:
    """The distinct lock sequences of a procedure's paths (at most MAX_PATHS; True if cut)."""
    snippet = program.sources.snippet
    cut = [False]
    written = {name: {v.name for v in P.globals_written(program.procs, name)} for name in program.procs}
    start = ((), (), (), False)   # ops, conditions, known conditions, returned

    def block(stmts: list[P.Stmt], paths: list[tuple]) -> list[tuple]:
        for s in stmts:
            paths = [q for p in paths for q in (stmt(s, p) if not p[3] else [p])]
            if len(paths) > 4 * MAX_PATHS:
                paths = _distinct(paths)[:MAX_PATHS]
        return paths

    def op(kind: str, s, mode: str, path: tuple) -> tuple:
        t = s.target
        inst = snippet(t.index.span) if t.index is not None else ""
        guarded = tuple(text for text, value in path[1] if value)
        return path[0] + (ModelLockOp(kind, t.lock.name, inst, mode, s.span, guarded),)

    def stmt(s: P.Stmt, path: tuple) -> list[tuple]:
        ops, conds, known, _ = path
        if isinstance(s, P.SAcquire):
            return [(op("acquire", s, "read" if s.mode == "read" else "exclusive", path), conds, known, False)]
        if isinstance(s, P.SRelease):
            return [(op("release", s, "exclusive", path), conds, known, False)]
        if isinstance(s, P.STrylock):
            took = block(s.then, [(op("trylock", s, "exclusive", path), conds, known, False)])
            return took + block(s.orelse, [path])
        if isinstance(s, P.SIf):
            text = snippet(s.cond.span)
            tested, need = polarity(text)
            was = dict(known).get(tested)
            out = []
            for value, body in ((True, s.then), (False, s.orelse)):
                truth = value == need
                if was is not None and was != truth:
                    continue
                now = known if was is not None else known + ((tested, truth),)
                out += block(body, [(ops, conds + ((text, value),), now, False)])
            return out
        if isinstance(s, (P.SFor, P.SWhile)):
            return [path] + block(s.body, [path])
        if isinstance(s, P.SReturn):
            return [(ops, conds, known, True)]
        if isinstance(s, P.SAssign):
            return [(ops, conds, _forget(known, {s.target.name}), False)]
        if isinstance(s, P.SCall):
            after = _forget(known, written.get(s.proc, set()))
            callee = program.procs.get(s.proc)
            if callee is None or s.proc in _active or len(_active) >= MAX_CALL_DEPTH:
                cut[0] = cut[0] or callee is not None
                return [(ops, conds, after, False)]
            inner, more = proc_paths(program, callee, _active + (proc.name,))
            cut[0] = cut[0] or more
            return [(ops + tuple(ModelLockOp(o.op, o.lock, o.instance, o.mode, o.span, o.guarded,
                                             (s.proc,) + o.via) for o in q.ops), conds, after, False)
                    for q in inner]
        return [path]

    paths = _distinct(block(proc.body, [start]))
    return [ModelPath(list(p[0]), list(p[1])) for p in paths[:MAX_PATHS]], len(paths) > MAX_PATHS or cut[0]


def _distinct(paths: list[tuple]) -> list[tuple]:
    seen: dict[tuple, tuple] = {}
    for p in paths:
        key = tuple((o.op, o.lock, o.span.file, o.span.line) for o in p[0]) + (p[3],)
        seen.setdefault(key, p)
    return list(seen.values())


def _forget(known: tuple, names: set[str]) -> tuple:
    return tuple((t, v) for t, v in known if not any(re.search(rf"\b{re.escape(n)}\b", t) for n in names))
