"""`apcheck diff OLD NEW`: what changed between two versions of a model.

Lock-order edges added and removed (with their acquisition sites and call
chains), operations added, removed or changed (an operation changes when the
text of it or of a procedure it calls changes, comments and layout aside),
and the verdicts that changed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from apcheck.ir import program as P
from apcheck.results import LockEdge, Verdict, VerifyResult


@dataclass
class OpChange:
    op: str
    procs: list[str]          # the procedures (the operation itself included) whose text changed


@dataclass
class VerdictChange:
    prop: str
    old: str | None           # None: the property is new
    new: str | None           # None: the property is gone
    message: str = ""


@dataclass
class ModelDiff:
    old: VerifyResult
    new: VerifyResult
    edges_added: list[LockEdge] = field(default_factory=list)
    edges_removed: list[LockEdge] = field(default_factory=list)
    ops_added: list[str] = field(default_factory=list)
    ops_removed: list[str] = field(default_factory=list)
    ops_changed: list[OpChange] = field(default_factory=list)
    verdicts: list[VerdictChange] = field(default_factory=list)

    @property
    def new_violations(self) -> list[VerdictChange]:
        return [v for v in self.verdicts if v.new == Verdict.VIOLATED and v.old != Verdict.VIOLATED]


def diff_models(old: P.Program, new: P.Program, old_res: VerifyResult, new_res: VerifyResult) -> ModelDiff:
    d = ModelDiff(old_res, new_res)
    before = {(e.src, e.dst): e for e in old_res.lock_edges}
    after = {(e.src, e.dst): e for e in new_res.lock_edges}
    d.edges_added = [e for k, e in after.items() if k not in before]
    d.edges_removed = [e for k, e in before.items() if k not in after]
    old_ops = {n for n, p in old.procs.items() if p.is_op}
    new_ops = {n for n, p in new.procs.items() if p.is_op}
    d.ops_added = sorted(new_ops - old_ops)
    d.ops_removed = sorted(old_ops - new_ops)
    for op in sorted(old_ops & new_ops):
        changed = [p for p in P.proc_closure(new.procs, op)
                   if p not in old.procs or old.procs[p].syntax != new.procs[p].syntax]
        changed += [p for p in P.proc_closure(old.procs, op) if p not in new.procs and p not in changed]
        if changed:
            d.ops_changed.append(OpChange(op, changed))
    was = {p.name: p for p in old_res.properties}
    now = {p.name: p for p in new_res.properties}
    for name in list(was) + [n for n in now if n not in was]:
        a, b = was.get(name), now.get(name)
        va, vb = (a.verdict if a else None), (b.verdict if b else None)
        if va != vb:
            d.verdicts.append(VerdictChange(name, va, vb, b.message if b else ""))
    return d

