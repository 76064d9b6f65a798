"""`apcheck drift`: does the model still lock as the C source does?

Each model procedure is matched with the C function of its name (a procedure's own name first,
then its `aka` names) in the source files (`apcheck extract`), and their lock operations are
compared path by path, calls followed on both sides (a model may inline a helper the C calls, or
the other way round; a change in a helper shows in each function that calls it):

- added / removed: a lock class of the model acquired on some path of one and on no path of the
  other;
- reordered: two classes acquired one after the other in one and the other way round in the
  other, and never in that order there;
- trylock-now-blocking / blocking-now-trylock: a class only tried in one, taken blocking in the
  other;
- null-check: a lock taken through a pointer member (`&matrix_mdev->kvm->lock`) that the C path
  does not test before taking it, where the model tests its instance (or the other way round);
- not-modelled: a C function that takes a lock class of the model, has no procedure, and is not
  a helper that a compared function calls.

Each finding has both locations. Lock classes are compared by name, as lockdep names them.
"""
from __future__ import annotations

import os

from apcheck.csource.extract import extract
from apcheck.diagnostics import UsageError
from apcheck.ir import program as P
from apcheck.locks.proc_paths import ModelPath, proc_paths
from apcheck.results import DriftFinding, DriftReport, FunctionLocks


def c_files(sources: list[str]) -> list[str]:
    """The .c files given, and those in the directories given (not recursively)."""
    out = []
    for src in sources:
        if os.path.isdir(src):
            out += sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(".c"))
        elif os.path.exists(src):
            out.append(src)
        else:
            raise UsageError(f"no such file or directory: '{src}'")
    if not out:
        raise UsageError(f"no .c files in {', '.join(sources)}")
    return out


def drift(program: P.Program, sources: list[str]) -> DriftReport:
    files = c_files(sources)
    x = extract(files)
    by_name = {f.name: f for f in x.functions}
    modelled = {cls.name for cls in program.locks.values()}
    findings: list[DriftFinding] = []
    compared: list[tuple[str, str]] = []
    unmatched: list[str] = []
    matched_c: set[str] = set()
    procs = [p for p in program.procs.values() if not (not p.body and p.name in program.undefined)]
    exact = {p.name for p in procs if p.name in by_name}
    for proc in procs:
        names = [proc.name] + [a for a in proc.aka if a not in exact]
        fn = next((by_name[n] for n in names if n in by_name), None)
        mpaths, _ = proc_paths(program, proc)
        if fn is None:
            if any(o.op in ("acquire", "trylock") for p in mpaths for o in p.ops):
                unmatched.append(proc.name)
            continue
        matched_c.add(fn.name)
        compared.append((proc.name, fn.name))
        findings += _compare(proc, mpaths, fn, modelled)
    reached = {name for f in x.functions if f.name in matched_c for p in f.paths for e in p.events for name in e.via}
    for f in x.functions:
        if f.name in matched_c or f.name in reached:  # a helper of a compared function is compared in it
            continue
        taken = sorted({e.lock for p in f.paths for e in p.events if e.op in ("acquire", "trylock") and not e.via
                        and e.lock in modelled})
        if taken:
            e = next(e for p in f.paths for e in p.events if e.lock == taken[0] and not e.via)
            findings.append(DriftFinding(kind="not-modelled", function=f.name, proc=None,
                                         message=f"{f.name} takes {', '.join(taken)} and no procedure of the model "
                                                 "has its name", c_site=(e.file, e.line)))
    nu = [u for f in x.functions if f.name in matched_c for u in f.not_understood]
    return DriftReport(model=program.model_name, sources=files, compared=compared, findings=findings,
                       unmatched_procs=sorted(unmatched), not_understood=nu)


def _compare(proc: P.Proc, mpaths: list[ModelPath], fn: FunctionLocks, modelled: set[str]) -> list[DriftFinding]:
    out: list[DriftFinding] = []
    site = (proc.span.file, proc.span.line)

    def finding(kind: str, message: str, c=None, m=None) -> None:
        out.append(DriftFinding(kind=kind, function=fn.name, proc=proc.name, message=message,
                                c_site=(c.file, c.line) if c is not None else (fn.file, fn.line),
                                model_site=(m.span.file, m.span.line) if m is not None else site))

    m_acq = _first_sites([[o for o in p.ops if o.op in ("acquire", "trylock")] for p in mpaths])
    c_acq = _first_sites([[e for e in p.events if e.op in ("acquire", "trylock")] for p in fn.paths])
    c_acq = {k: v for k, v in c_acq.items() if k in modelled}
    for cls in sorted(set(c_acq) - set(m_acq)):
        finding("added", f"{fn.name} takes {cls}; {proc.name} does not", c=c_acq[cls])
    for cls in sorted(set(m_acq) - set(c_acq)):
        finding("removed", f"{proc.name} takes {cls}; {fn.name} no longer does", m=m_acq[cls])
    m_order = _orders([[o.lock for o in p.ops if o.op in ("acquire", "trylock")] for p in mpaths])
    c_order = _orders([[e.lock for e in p.events if e.op in ("acquire", "trylock")] for p in fn.paths])
    for a, b in sorted(c_order):
        if (b, a) in m_order and (a, b) not in m_order:
            finding("reordered", f"{fn.name} takes {a} before {b}; {proc.name} takes {b} before {a}",
                    c=c_acq.get(b), m=m_acq.get(a))
    m_kinds = _kinds([o for p in mpaths for o in p.ops])
    c_kinds = _kinds([e for p in fn.paths for e in p.events])
    for cls in sorted(set(m_kinds) & set(c_kinds)):
        if m_kinds[cls] == {"trylock"} and "acquire" in c_kinds[cls]:
            finding("trylock-now-blocking", f"{fn.name} takes {cls} blocking; {proc.name} only tries it",
                    c=c_acq.get(cls), m=m_acq.get(cls))
        elif c_kinds[cls] == {"trylock"} and "acquire" in m_kinds[cls]:
            finding("blocking-now-trylock", f"{fn.name} only tries {cls}; {proc.name} takes it blocking",
                    c=c_acq.get(cls), m=m_acq.get(cls))
    for cls in sorted(set(m_acq) & set(c_acq)):
        c_unchecked = _c_acquire(fn, cls, tested=False)
        m_checked = _m_checked(mpaths, cls)
        if c_unchecked is not None and m_checked is not None:
            pointer = c_unchecked.instance.rsplit("->", 1)[0]
            finding("null-check", f"{fn.name} takes {c_unchecked.instance} without testing {pointer}; "
                    f"{proc.name} takes {cls} only where {m_checked.guarded[-1]}", c=c_unchecked, m=m_checked)
        elif c_unchecked is None and m_checked is None:
            c_checked = _c_acquire(fn, cls, tested=True)
            m_unchecked = next((o for p in mpaths for o in p.ops if o.lock == cls and o.op == "acquire"
                                and o.instance and not _mentions(o.guarded, o.instance)), None)
            if c_checked is not None and m_unchecked is not None:
                finding("null-check", f"{fn.name} tests the pointer before taking {c_checked.instance}; "
                        f"{proc.name} takes {cls}[{m_unchecked.instance}] without a test", c=c_checked, m=m_unchecked)
    return out


def _first_sites(paths: list[list]) -> dict:
    out: dict = {}
    for p in paths:
        for e in p:
            out.setdefault(e.lock, e)
    return out


def _orders(paths: list[list[str]]) -> set[tuple[str, str]]:
    out = set()
    for p in paths:
        for i, a in enumerate(p):
            for b in p[i + 1:]:
                if a != b:
                    out.add((a, b))
    return out


def _kinds(events: list) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in events:
        if e.op in ("acquire", "trylock"):
            out.setdefault(e.lock, set()).add(e.op)
    return out


def _pointer(instance: str) -> str | None:
    """The pointer member a lock is reached through (`matrix_mdev->kvm` of `matrix_mdev->kvm->lock`)."""
    parts = instance.split("->")
    return "->".join(parts[:-1]) if len(parts) >= 3 else None


def _c_acquire(fn: FunctionLocks, cls: str, tested: bool):
    """The first acquire of `cls` through a pointer member whose path tests that pointer before it
    (`tested`), or does not."""
    for p in fn.paths:
        conditions = [c.text for c in p.conditions]
        for e in p.events:
            ptr = _pointer(e.instance)
            if e.lock == cls and e.op == "acquire" and ptr and any(ptr in t for t in conditions) == tested:
                return e
    return None


def _m_checked(mpaths: list[ModelPath], cls: str):
    for p in mpaths:
        for o in p.ops:
            if o.lock == cls and o.op == "acquire" and o.instance and _mentions(o.guarded, o.instance):
                return o
    return None


def _mentions(conditions: tuple[str, ...], instance: str) -> bool:
    return any(instance in c for c in conditions)
