"""The default human-readable report: verdict table, statistics, then each counterexample."""
from __future__ import annotations

from tabulate import tabulate

from apcheck.results import (Coverage, InductionResult, LockEdge, PropertyResult, Site, Trace, Verdict,
                             VerifyResult, exploration_title)

INDUCTION_SHORT = {"proved": "proved", "cti": "CTI", "refuted": "false initially", "unknown": "unknown",
                   "untranslatable": "not translatable"}


def induction_cell(p: PropertyResult) -> str:
    """The every-size column: Z3's induction over atomic operations. A proof that is not the verdict
    (the interleavings can break what atomic operations keep) says so in the cell itself."""
    if p.induction is None:
        return ""
    if p.induction.status == "proved" and p.verdict != Verdict.PROVED:
        return "proved for atomic ops only"
    return INDUCTION_SHORT[p.induction.status]


def expected_cell(p: PropertyResult) -> str:
    """The expected column: `(!)` marks a verdict that differs from its expectation; an expectation
    that a run of some scenarios cannot decide is marked as the whole model's."""
    if p.expected is None:
        return ""
    if not p.judged and p.proof_not_tried and p.verdict == "holds":
        return f"{p.expected} (not decided by this run: {p.proof_not_tried})"
    if not p.judged:
        return f"{p.expected} (whole model, not decided by this run)"
    return f"{p.expected} (!)" if p.mismatch else p.expected


def render_verdicts(res: VerifyResult) -> str:
    rows = []
    for p in res.properties:
        rows.append([p.name, p.kind, p.verdict_text, expected_cell(p), induction_cell(p), p.message])
    return tabulate(rows, headers=["property", "kind", "verdict", "expected", "every size*", "detail"],
                    tablefmt="simple")


INDUCTION_FOOTNOTE = ("* every size: Z3 induction over the operations taken atomically, for all numbers of "
                      "elements of every sort; the verdict is `proved` where no operation with a lock, "
                      "wait or yield writes what the proved invariants read, or where Z3's induction over "
                      "the interleaved steps proves it for any number of threads")


def render_stats(res: VerifyResult) -> str:
    s = res.stats
    done = "complete" if s.complete else f"stopped early: {s.limit}"
    parallel = f" ({s.search_seconds:.2f} s of search in {len(res.scenarios)} scenarios)" \
        if len(res.scenarios) > 1 else ""
    return (f"states {s.states}, transitions {s.transitions}, depth {s.depth}, {s.seconds:.2f} s{parallel}, "
            f"{s.states_per_second:,.0f} states/s, peak memory {s.peak_memory_mb:.0f} MiB, "
            f"symmetry {'on' if s.symmetry else 'off'}{_cores(s.cores)} ({done})")


def _cores(cores: list[str]) -> str:
    return f", {' and '.join(cores)} core" if cores else ""


def render(res: VerifyResult, details: bool = True) -> str:
    bounds = ", ".join(f"{k}={v}" for k, v in res.bounds.items())
    out = [f"model {res.path}" + (f" with {', '.join(res.specs)}" if res.specs else ""), f"bounds: {bounds}"]
    out += [f"{exploration_title(name)}: threads {', '.join(threads)}" for name, threads in res.scenarios.items()]
    out += ["", render_verdicts(res)]
    if any(p.induction is not None for p in res.properties):
        out.append(INDUCTION_FOOTNOTE)
    out += ["", render_stats(res)] + [f"note: {n}" for n in res.stats.notes]
    for cov in res.coverage:
        out += ["", render_coverage(cov)]
    if details:
        for p in res.properties:
            body = render_property(p)
            if body:
                out += ["", body]
    return "\n".join(out) + "\n"


def render_coverage(cov: Coverage) -> str:
    """Per operation: started, returned, succeeded, and its automatic cover "OP completes" (the
    steps to its first successful return); then the statements never executed."""
    rows = [[o.op, o.started, o.returned, o.succeeded, completes_text(o.completes, cov.complete)]
            for o in cov.operations]
    head = f"coverage of {exploration_title(cov.scenario)}" + ("" if cov.complete else " (search cut: lower bounds)")
    out = [head + ":", tabulate(rows, headers=["operation", "started", "returned", "succeeded", "first completes"],
                                tablefmt="simple")]
    never = cov.never_executed
    if never:
        out.append(f"never executed ({len(never)} of {len(cov.statements)} statements):")
        out += [f"  {s.span.file}:{s.span.line}  {s.text}" for s in never]
    else:
        out.append(f"every one of the {len(cov.statements)} statements executed")
    return "\n".join(out)


def completes_text(steps: int | None, complete: bool) -> str:
    """The automatic cover "OP completes" in words."""
    if steps is not None:
        return f"after {steps} step{'s' if steps != 1 else ''}"
    return "never" if complete else "not seen (search cut)"


def render_property(p: PropertyResult) -> str:
    parts = []
    if p.cycle and p.verdict == Verdict.VIOLATED:
        parts.append(render_order_violation(p))
    if p.certificate:
        parts.append("lock order certificate: " + " < ".join(p.certificate))
    if p.trace is not None:
        parts.append((f"in {exploration_title(p.scenario)}:\n" if p.scenario else "") + render_trace(p.trace))
    if p.induction is not None and p.verdict != Verdict.PROVED:
        parts.append(render_induction(p.induction))
    parts += [f"note: {n}" for n in p.notes if n]
    if not parts:
        return ""
    where = f" ({p.span})" if p.span else ""
    head = f"=== {p.name}: {p.verdict_text}{where} ===\n{p.message}"
    return head + "\n\n" + "\n\n".join(parts)


def render_induction(ind: InductionResult) -> str:
    out = [f"every size (operations atomic): {ind.status}: {ind.message}"]
    cti = ind.cti
    if cti is not None:
        out.append("  counterexample to induction, replayed concretely:" if cti.op else
                   "  initial state violating it, replayed concretely:")
        if cti.op:
            out.append(f"    operation: {cti.op}({', '.join(f'{k}={v}' for k, v in cti.args)})")
        out.append("    state before: " + "; ".join(f"{k} = {v}" for k, v in cti.state))
        for c in cti.changes:
            out.append(f"    {c.var}: {c.old} -> {c.new}")
    return "\n".join(out)


def render_site(site: Site, indent: str = "       ") -> list[str]:
    lines = []
    for i, f in enumerate(site.chain):
        suffix = f"  {site.text}" if i == 0 else ""
        lines.append(f"{indent}{f.function} ({f.file}:{f.line}){suffix}")
    return lines


def render_order_violation(p: PropertyResult) -> str:
    """A violated lock-order property: the cycle in lockdep's layout, or the edge against the hierarchy."""
    return render_hierarchy(p.cycle[0], p.hierarchy) if p.hierarchy else render_cycle(p.cycle)


def render_hierarchy(e: LockEdge, order: list[str]) -> str:
    """A lock-order edge against the declared hierarchy (not a cycle): the edge with both sites."""
    state = "reached" if e.reached else "static path only"
    out = ["lock order violates the declared hierarchy", f"  declared: {' < '.join(order)}",
           f"  {e.src} -> {e.dst}  [{state}]: {e.dst} is declared before {e.src}, but is taken while holding it",
           f"     {e.dst} acquired at:"]
    out += render_site(e.dst_site)
    out.append(f"     while holding {e.src}, acquired at:")
    out += render_site(e.src_site)
    return "\n".join(out)


def render_cycle(cycle: list[LockEdge]) -> str:
    """Lockdep's layout: the chain of dependencies with call chains, then the unsafe scenario."""
    names = [e.src for e in cycle]
    out = ["WARNING: possible circular locking dependency detected",
           "the dependency chain is:", ""]
    for i, e in enumerate(cycle):
        state = "reached" if e.reached else "static path only"
        out.append(f"-> #{i} ({e.src}) -> ({e.dst})  [{state}]:")
        out.append(f"     {e.dst} acquired at:")
        out += render_site(e.dst_site)
        out.append(f"     while holding {e.src}, acquired at:")
        out += render_site(e.src_site)
        out.append("")
    out.append("Chain exists of:")
    out.append("  " + " --> ".join(names + [names[0]]))
    out += ["", " Possible unsafe locking scenario:", ""] + _scenario(names)  # a CPU column per lock
    return "\n".join(out)


def _scenario(names: list[str]) -> list[str]:
    n = len(names)
    width = max(24, max(len(x) for x in names) + 10)
    header = "".join(f"CPU{i}".ljust(width) for i in range(n))
    rule = "".join("----".ljust(width) for _ in range(n))
    rows = [f"       {header}", f"       {rule}"]
    for i in range(n):
        rows.append("       " + " " * (width * i) + f"lock({names[i]});")
    for i in range(n):
        rows.append("       " + " " * (width * i) + f"lock({names[(i + 1) % n]});")
    rows += ["", "  *** DEADLOCK ***"]
    return rows


def render_trace(trace: Trace) -> str:
    out = ["counterexample:" if trace.steps else "counterexample (initial state):"]
    if trace.initial:
        out.append("  initial state: " + "; ".join(f"{k} = {v}" for k, v in trace.initial))
    for s in trace.steps:
        args = ", ".join(f"{k}={v}" for k, v in s.args)
        out.append(f"  {s.index:>3}. {s.thread}: {s.op}({args})")
        where = " <- ".join(f"{f.function}" for f in s.chain)
        out.append(f"        at {s.span.file}:{s.span.line}  {s.text}   [{where}]")
        out.append(f"        {s.outcome}")
        out.append(f"        holds: {', '.join(s.held) if s.held else '-'}")
        for c in s.changes:
            out.append(f"        {c.var}: {c.old} -> {c.new}")
        if trace.certain_at == s.index and s.index < len(trace.steps):
            out.append("  -- the deadlock is certain from here; the steps below run its threads into it")
    for line in trace.final:
        out.append(f"  => {line}")
    return "\n".join(out)
