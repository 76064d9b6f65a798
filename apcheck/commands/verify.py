"""`apcheck verify`: explore every scenario, prove what Z3 can, and assemble the verdicts.

The only command that uses every back end; it returns a VerifyResult and
prints nothing.
"""
from __future__ import annotations

from dataclasses import replace

from apcheck.commands.lockorder import lockorder_result, union_edges
from apcheck.commands.model import VerifyConfig, build, check_expectations, select_scenarios
from apcheck.commands.scenario import explore_scenarios, stats_of
from apcheck.diagnostics import InternalError
from apcheck.explore.system import bounds_of
from apcheck.ir import program as P
from apcheck.ir.lowered import Lowered
from apcheck.lang.check import BUILTIN_PROPERTIES
from apcheck.results import WHOLE_SYSTEM, Kind, Method, PropertyResult, Verdict, VerifyResult
from apcheck.smt.induction import atomic_is_exact, prove_invariants
from apcheck.smt.interleaved import prove_interleaved


def verify(program: P.Program, config: VerifyConfig = VerifyConfig(), specs: list[str] = ()) -> VerifyResult:
    """Explore the whole system (or the scenario `config.scenario` names), prove what Z3 can, and
    assemble the verdicts."""
    check_expectations(program, [p.name for p in program.properties] + list(BUILTIN_PROPERTIES))
    scenarios = select_scenarios(program, config.scenario)
    bounds = bounds_of(program, config.bounds)  # a bad --bound is a usage error before any work
    lowered, static = build(program, config.explore.closure_edges)
    runs, wall = explore_scenarios(lowered, config, scenarios)
    (run,) = runs  # one exploration: the whole system or one scenario
    props = [run.results[p.name] for p in program.properties
             if p.kind in (Kind.INVARIANT, Kind.COVER) and p.name in run.results]
    if config.properties is None:
        props += [run.results[name] for name in ("deadlock", "defects")]
    for pr in props:
        pr.notes += run.notes.get(pr.name, [])
    edges = union_edges(runs, lowered, static)
    props += [lockorder_result(p, edges, runs, lowered, config) for p in program.properties
              if p.kind == Kind.LOCKORDER and config.properties is None]
    expect = {e.prop: e.verdict for e in program.expectations if e.model == program.model_name}
    partial = run.scenario != WHOLE_SYSTEM   # a scenario: a part of the system
    for pr in props:
        pr.expected = expect.get(pr.name)
        pr.partial = partial
    notes = []
    if config.induction:
        notes = _add_induction(lowered, props, config)
    else:
        _not_tried(props, "--no-induction")
    stats = stats_of(runs, wall, config)
    stats.notes += notes
    return VerifyResult(model=program.model_name, path=program.path, specs=list(specs), bounds=bounds,
                        scenarios={run.scenario: run.threads}, properties=props, lock_edges=edges,
                        stats=stats, coverage=[run.coverage] if run.coverage else [])


def verify_at_needed_bounds(program: P.Program, config: VerifyConfig = VerifyConfig(),
                            specs: list[str] = ()) -> VerifyResult:
    """`verify`, then each property that needs larger bounds (`needs Guest=2`) than the run's
    explored again at them: its verdict comes from that run (`apcheck ci`, `verify --needed-bounds`)."""
    res = verify(program, config, specs)
    groups: dict[tuple, list[str]] = {}
    verdicts = {p.name: p for p in res.properties}
    for prop in program.properties:
        short = {s: n for s, n in prop.needs.items() if res.bounds.get(s, 0) < n}
        if short and prop.name in verdicts and verdicts[prop.name].verdict != Verdict.PROVED:
            groups.setdefault(tuple(sorted({**res.bounds, **short}.items())), []).append(prop.name)
    for bounds, names in groups.items():
        explore = replace(config.explore, stop_when_decided=True)
        more = verify(program, replace(config, bounds=dict(bounds), induction=False, properties=tuple(names),
                                       explore=explore), specs)
        found = {p.name: p for p in more.properties}
        where = ", ".join(f"{s}={n}" for s, n in bounds if res.bounds.get(s) != n)
        for k, p in enumerate(res.properties):
            if p.name in names:
                new = found[p.name]
                new.message += f" (at {where}, the bounds it needs)"
                new.induction, new.expected, new.proof_not_tried = p.induction, p.expected, p.proof_not_tried
                res.properties[k] = new
        res.coverage += more.coverage
        need = "they need" if len(names) > 1 else "it needs"
        res.stats.notes.append(f"{', '.join(names)} explored at {where}, the bounds {need}: "
                               f"{more.stats.states:,} states, {more.stats.seconds:.1f} s, "
                               f"peak memory {more.stats.peak_memory_mb:.0f} MiB")
        res.stats.notes += [n for n in more.stats.notes if n not in res.stats.notes
                            and not n.startswith("native core built")]
    return res


def _add_induction(lowered: Lowered, props: list[PropertyResult], config: VerifyConfig) -> list[str]:
    """Attach Z3's every-size result to each invariant. Where the proofs carry over to the
    interleavings (see atomic_is_exact), a proof makes the verdict `proved`; otherwise the induction
    over the interleaved steps for any number of threads (smt/interleaved.py) can. Returns notes."""
    found = prove_invariants(lowered, config.smt_timeout)
    proved = [p for p in lowered.program.properties if p.name in found and found[p.name].status == "proved"]
    exact = atomic_is_exact(lowered, proved)
    notes = [f"loop invariant {li.name} ({li.span.file}:{li.span.line}): {found[li.name].status}: "
             f"{found[li.name].message}" for li in lowered.program.loop_invariants if li.name in found]
    for pr in props:
        ind = found.get(pr.name)
        if pr.kind != Kind.INVARIANT or ind is None:
            continue
        pr.induction = ind
        if not exact or ind.status != "proved":
            continue
        _upgrade(pr, Method(engine="z3-induction", then=pr.method), ind.message, "(atomic)")
    invariants = [pr for pr in props if pr.kind == Kind.INVARIANT and pr.verdict == Verdict.HOLDS]
    if not invariants:
        return notes
    facts = config.interleaved_facts
    inter = prove_interleaved(lowered, config.smt_timeout, config.interleaved_budget, config.smt_progress,
                              config.explore.threads, facts.facts if facts else None, [pr.name for pr in invariants])
    if inter.unmatched:
        notes.append(f"{len(inter.unmatched)} of the {len(facts.facts)} facts of {facts.path} are not candidates "
                     f"of the model (it changed since they were found?), such as '{inter.unmatched[0]}': "
                     "the induction starts from the others")
    if not inter.tried:
        _not_tried(invariants, "the induction over the interleaved steps is not tried at this size without "
                   "--interleaved-budget")
    if inter.status in ("untranslatable", "unknown"):
        return notes + [f"induction over the interleaved steps (any number of threads): {inter.message}"]
    for pr in props:
        if pr.kind == Kind.INVARIANT and pr.verdict == Verdict.VIOLATED and pr.name in inter.proved:
            raise InternalError(f"Z3 proved invariant {pr.name} inductive over the interleaved steps, but the "
                                "explorer reached a violation of it")
    for pr in invariants:
        if pr.name in inter.proved:
            helpers = len(inter.kept) - len(inter.proved)
            start = f" (from {facts.path})" if facts else ""
            _upgrade(pr, Method(engine="z3-interleaved", then=pr.method),
                     f"{inter.message}, with {helpers} facts of ownership and program points{start}",
                     "(interleaved)")
        elif pr.name in inter.dropped:
            pr.notes.append(f"any number of threads: {inter.dropped[pr.name]} (induction over the "
                            "interleaved steps)")
        elif inter.status != "proved":
            pr.notes.append(f"any number of threads: not proved: {inter.message}")
    return notes


def _not_tried(props: list[PropertyResult], why: str) -> None:
    """The invariants that hold, and for which this run tried no proof for any number of threads
    (an expected `proved` is not decided by it)."""
    for pr in props:
        if pr.kind == Kind.INVARIANT and pr.verdict == Verdict.HOLDS:
            pr.proof_not_tried = why


def _upgrade(pr: PropertyResult, method: Method, why: str, system: str) -> None:
    """A Z3 proof becomes the verdict of an invariant the explorer found to hold."""
    if pr.verdict == Verdict.VIOLATED:
        raise InternalError(f"Z3 proved invariant {pr.name} inductive {system}, but the explorer reached a "
                            "violation of it in the same system")
    if pr.verdict == Verdict.HOLDS:
        pr.verdict = Verdict.PROVED
        pr.method = method
        pr.message = f"{why}; {pr.message}"
        pr.vacuous = pr.trivial = None  # a proof covers every reachable state, at every size
