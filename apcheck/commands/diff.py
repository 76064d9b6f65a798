"""`apcheck diff OLD NEW`: what changed between two versions of a model.

Lock-order edges added and removed (with their acquisition sites and call
chains), operations added, removed or changed (an operation changes when the
text of it or of a procedure it calls changes, comments and layout aside),
and the verdicts that changed.
"""
from __future__ import annotations

from apcheck.ir import program as P
from apcheck.results import ModelDiff, OpChange, VerdictChange, VerifyResult


def diff_models(old: P.Program, new: P.Program, old_res: VerifyResult, new_res: VerifyResult) -> ModelDiff:
    d = ModelDiff(old=old_res, new=new_res)
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
            d.ops_changed.append(OpChange(op=op, procs=changed))
    was = {p.name: p for p in old_res.properties}
    now = {p.name: p for p in new_res.properties}
    for name in list(was) + [n for n in now if n not in was]:
        a, b = was.get(name), now.get(name)
        va, vb = (a.verdict if a else None), (b.verdict if b else None)
        if va != vb:
            d.verdicts.append(VerdictChange(prop=name, old=va, new=vb, message=b.message if b else ""))
    return d

