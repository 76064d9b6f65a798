"""Command line: the only place that reads argv, prints, and chooses the exit status.

Exit status: 0 nothing violated, 1 something violated (or `ci`: a verdict
differs from its expectation), 2 model, spec or usage error, 3 a verdict is
unknown, 4 internal error.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback

from apcheck import __version__
from apcheck.diagnostics import DiagnosticError, UsageError, render
from apcheck.results import ExitStatus, exit_status

EXIT_OK, EXIT_VIOLATED, EXIT_ERROR, EXIT_UNKNOWN, EXIT_INTERNAL = (
    ExitStatus.OK, ExitStatus.FAILED, ExitStatus.ERROR, ExitStatus.UNKNOWN, ExitStatus.INTERNAL)


# The front end and the compilers recurse over the syntax tree; parse() bounds its depth (E105)
# well within this limit, which the default 8 MiB stack of the main thread sustains.
RECURSION_LIMIT = 20000


class _Stopped(BaseException):
    """A termination signal arrived: the run stops (workers terminated) and says so."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stop(signum, frame) -> None:
    raise _Stopped(signum)


def main(argv: list[str] | None = None) -> int:
    """The command line; SIGTERM and SIGHUP stop it cleanly (exit 128 + the signal number)."""
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, RECURSION_LIMIT))
    try:
        return _main(argv)
    finally:
        sys.setrecursionlimit(limit)
        for s, handler in previous.items():
            signal.signal(s, handler)


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        return args.func(args)
    except DiagnosticError as err:
        for d in err.diagnostics:
            print(render(d, err.sources), file=sys.stderr)
        n = len(err.diagnostics)
        print(f"{n} error{'s' if n != 1 else ''}", file=sys.stderr)
        return EXIT_ERROR
    except UsageError as err:
        print(f"apcheck: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("apcheck: interrupted (SIGINT): stopped, no verdict", file=sys.stderr)
        return 128 + signal.SIGINT
    except _Stopped as stop:
        print(f"apcheck: stopped by {signal.Signals(stop.signum).name}: no verdict", file=sys.stderr)
        return 128 + stop.signum
    except MemoryError:
        print("apcheck: out of memory: no verdict (set a smaller --max-memory, lower the bounds, or pick a "
              "--scenario)", file=sys.stderr)
        return EXIT_UNKNOWN
    except Exception as err:  # an internal error: short message, full trace only on request
        if os.environ.get("APCHECK_DEBUG"):
            traceback.print_exc()
        print(f"apcheck: internal error: {type(err).__name__}: {err} (set APCHECK_DEBUG=1 for details)",
              file=sys.stderr)
        return EXIT_INTERNAL


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="apcheck", description="Model checker for driver locking and "
                                "configuration invariants (first subject: s390 vfio_ap).")
    p.add_argument("--version", action="version", version=f"apcheck {__version__}")
    sub = p.add_subparsers(metavar="COMMAND")

    c = sub.add_parser("check", help="parse and type-check models and specs")
    c.add_argument("paths", nargs="+", metavar="PATH")
    c.set_defaults(func=cmd_check)

    f = sub.add_parser("fmt", help="print files in canonical layout")
    f.add_argument("paths", nargs="+", metavar="PATH")
    f.add_argument("--check", action="store_true", help="exit 1 if a file is not formatted; print nothing else")
    f.add_argument("--write", action="store_true", help="rewrite the files in place")
    f.set_defaults(func=cmd_fmt)

    v = sub.add_parser("verify", help="explore every interleaving and check the properties")
    v.add_argument("model", metavar="MODEL")
    v.add_argument("--spec", action="append", default=[], metavar="SPEC", help="spec file (repeatable)")
    _add_run_options(v)
    v.add_argument("--format", choices=["text", "json", "markdown", "junit", "sarif", "html", "dot"],
                   default="text")
    v.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    v.add_argument("--brief", action="store_true", help="verdict table and statistics only (text format)")
    v.set_defaults(func=cmd_verify)

    lg = sub.add_parser("lockgraph", help="print the lock-order graph (static and reached edges)")
    lg.add_argument("model", metavar="MODEL")
    lg.add_argument("--spec", action="append", default=[], metavar="SPEC")
    _add_run_options(lg)
    lg.add_argument("--format", choices=["text", "dot"], default="text")
    lg.set_defaults(func=cmd_lockgraph)

    df = sub.add_parser("diff", help="compare two versions of a model: lock edges, operations, verdicts")
    df.add_argument("old", metavar="OLD")
    df.add_argument("new", metavar="NEW")
    df.add_argument("--spec", action="append", default=[], metavar="SPEC", help="spec file (repeatable)")
    _add_run_options(df)
    df.add_argument("--format", choices=["text", "json"], default="text")
    df.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    df.set_defaults(func=cmd_diff)

    ex = sub.add_parser("explain", help="does the model explain a lockdep report? (each dependency: reached, "
                                        "static only, or absent)")
    ex.add_argument("model", metavar="MODEL")
    ex.add_argument("splat", metavar="LOCKDEP_REPORT", help="the report as dmesg printed it")
    ex.add_argument("--spec", action="append", default=[], metavar="SPEC", help="spec file (repeatable)")
    _add_run_options(ex)
    ex.set_defaults(func=cmd_explain)

    xt = sub.add_parser("extract", help="lock operations on every path of every function of kernel C files "
                                        "(tree-sitter, no preprocessing)")
    xt.add_argument("files", nargs="+", metavar="FILE.c")
    xt.add_argument("--format", choices=["text", "json"], default="text")
    xt.add_argument("--all", action="store_true", help="list the functions that take no lock too")
    xt.add_argument("--skeleton", action="store_true",
                    help="write an apcheck model skeleton instead: procs and ops with their lock structure, "
                         "the data left as marked holes")
    xt.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    xt.set_defaults(func=cmd_extract)

    dr = sub.add_parser("drift", help="does the model still lock as the C source does? (exit 1 on drift)")
    dr.add_argument("model", metavar="MODEL")
    dr.add_argument("--source", action="append", required=True, metavar="DIR_OR_FILE",
                    help="a .c file or a directory of them (repeatable)")
    dr.add_argument("--spec", action="append", default=[], metavar="SPEC")
    dr.add_argument("--format", choices=["text", "json", "sarif"], default="text")
    dr.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    dr.set_defaults(func=cmd_drift)

    inf = sub.add_parser("infer", help="auxiliary invariants Z3 proves for every size (each operation "
                                       "atomic), ready to paste into a spec")
    inf.add_argument("model", metavar="MODEL")
    inf.add_argument("--spec", action="append", default=[], metavar="SPEC", help="spec file (repeatable)")
    inf.add_argument("--smt-timeout", type=float, default=10.0, help="seconds per Z3 query")
    inf.add_argument("--interleaved", action="store_true",
                     help="run the induction over the interleaved steps (any number of threads) from every "
                          "candidate, and print the facts it keeps: a certificate for verify "
                          "--interleaved-facts (may take an hour on a large model)")
    inf.add_argument("--interleaved-budget", type=float, default=None, metavar="SECONDS",
                     help="with --interleaved: seconds for the fixpoint (default: no limit)")
    inf.add_argument("--threads", type=int, default=0, metavar="N",
                     help="with --interleaved: processes (default: one per core)")
    inf.add_argument("--interleaved-facts", default=None, metavar="FILE",
                     help="with --interleaved: start from the facts of an earlier run instead of every "
                          "candidate (to renew a facts file after the model changed)")
    inf.add_argument("--output", "-o", metavar="FILE", help="with --interleaved: write the facts to FILE "
                     "(only if an invariant is proved) instead of stdout")
    inf.set_defaults(func=cmd_infer)

    ci = sub.add_parser("ci", help="verify every configured model and compare with the expected verdicts")
    ci.add_argument("--config", default=None, help="apcheck.toml or pyproject.toml (default: search upwards)")
    ci.add_argument("--junit", metavar="FILE", help="also write JUnit XML")
    ci.add_argument("--sarif", metavar="FILE", help="also write SARIF 2.1.0")
    ci.add_argument("--html", metavar="FILE", help="also write the HTML report of every model (one file)")
    ci.add_argument("--no-cache", action="store_true", help="verify even inputs that have not changed")
    ci.add_argument("--claims-table", action="store_true",
                    help="print the Markdown table of the configured claims (for the README)")
    ci.add_argument("--quiet", "-q", action="store_true")
    ci.set_defaults(func=cmd_ci)
    return p


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bound", action="append", default=[], metavar="SORT=N", help="override a sort's bound")
    p.add_argument("--max-states", type=int, default=None)
    p.add_argument("--max-depth", type=int, default=None)
    p.add_argument("--timeout", type=float, default=None, help="seconds for the search")
    p.add_argument("--max-memory", type=float, default=None, metavar="MIB",
                   help="memory for the whole run, in MiB (default: 80%% of the memory available at the start)")
    p.add_argument("--smt-timeout", type=float, default=10.0, help="seconds per Z3 query")
    p.add_argument("--interleaved-budget", type=float, default=None, metavar="SECONDS",
                   help="seconds for the induction over the interleaved steps (any number of threads), "
                        "tried at any size (default: three --smt-timeouts, on small models only)")
    p.add_argument("--interleaved-facts", default=None, metavar="FILE",
                   help="start the induction over the interleaved steps from the facts an earlier run "
                        "kept (apcheck infer --interleaved; Z3 checks them again), with --interleaved-budget")
    p.add_argument("--no-induction", action="store_true",
                   help="skip Z3's induction proofs of the invariants for every size")
    p.add_argument("--bmc", type=int, default=0, metavar="DEPTH",
                   help="cross-check the explorer with Z3 bounded model checking to DEPTH steps")
    p.add_argument("--scenario", default=None,
                   help="explore this scenario, a part of the system (default: the whole system)")
    p.add_argument("--needed-bounds", action="store_true",
                   help="explore each property that declares `needs` (e.g. Guest=2) again at those bounds, "
                        "as apcheck ci does")
    p.add_argument("--no-symmetry", action="store_true", help="turn symmetry reduction off")
    p.add_argument("--no-reduction", action="store_true",
                   help="take private releases, and the uncontended acquires that start an operation, as steps "
                        "of their own")
    p.add_argument("--lock-edges", choices=["lockdep", "closure"], default="lockdep",
                   help="lock-order edges by lockdep's rule (the most recent held lock and the trylocks above "
                        "it; default), or from every held lock")
    p.add_argument("--dfs", action="store_true", help="depth-first search (less memory; traces not shortest)")
    p.add_argument("--first", action="store_true",
                   help="stop at the first violation, defect or wait-for cycle (depth-first; the other verdicts "
                        "are unknown: the search was partial)")
    p.add_argument("--engine", choices=["auto", "native", "python"], default="auto",
                   help="the explorer core: native (C generated for the model, built with the system compiler "
                        "and cached), python (the reference), or auto (default: python for searches of up to "
                        "20,000 states, native beyond, python where the native core cannot build)")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="native core: threads per search; the induction over the interleaved steps: "
                        "processes (default: one per core); the result does not depend on it")
    p.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="distribute the search over a Ray cluster (pip install 'apcheck[distributed]'): 'auto' "
                        "starts a local Ray instance with a worker per core; 'ray://HOST:PORT' or 'HOST:PORT' joins a "
                        "running cluster. Breadth-first; the same states, counts and verdicts as on one machine")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="with --cluster: the partitions of the states, a worker each (default: one per CPU of the "
                        "cluster)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")


def parse_bounds(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.strip().isdigit():
            raise UsageError(f"--bound expects SORT=N, got '{item}'")
        out[name.strip()] = int(value)
    return out


def run_config(args):
    from apcheck.explore.engine import ExploreConfig
    from apcheck.commands.model import VerifyConfig
    for name in ("max_states", "max_depth"):
        val = getattr(args, name)
        if val is not None and val < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    if args.max_memory is not None and args.max_memory <= 0:
        raise UsageError("--max-memory must be positive")
    progress = None if args.quiet else _progress
    explore = ExploreConfig(max_states=args.max_states, max_depth=args.max_depth, timeout=args.timeout,
                            symmetry=not args.no_symmetry, reduction=not args.no_reduction,
                            closure_edges=args.lock_edges == "closure",
                            order="dfs" if args.dfs or args.first else "bfs", first=args.first,
                            engine=args.engine, threads=args.threads,
                            progress=progress, cluster=args.cluster, workers=args.workers)
    _check_smt_args(args)
    facts = None
    if args.interleaved_facts is not None:
        if args.interleaved_budget is None:
            raise UsageError("--interleaved-facts needs --interleaved-budget (the seconds the induction may take)")
        from apcheck.commands.facts import read_facts
        facts = read_facts(args.interleaved_facts)
    if args.bmc < 0:
        raise UsageError("--bmc must be at least 0")
    if args.workers and not args.cluster:
        raise UsageError("--workers needs --cluster")
    if not 0 <= args.workers <= 4096:
        raise UsageError("--workers must be between 0 (one per CPU of the cluster) and 4096")
    if args.cluster and (args.dfs or args.engine == "python"):
        raise UsageError("--cluster runs the native core breadth-first: it cannot take "
                         + ("--dfs" if args.dfs else "--engine python"))
    memory = args.max_memory
    if memory is None and args.cluster in (None, "auto"):   # a remote cluster's memory is not this machine's
        memory = _default_memory()
    return VerifyConfig(bounds=parse_bounds(args.bound), explore=explore, smt_timeout=args.smt_timeout,
                        scenario=args.scenario, induction=not args.no_induction, bmc_depth=args.bmc,
                        max_memory_mb=memory, interleaved_budget=args.interleaved_budget,
                        interleaved_facts=facts,
                        smt_progress=None if args.quiet else _smt_progress)


def _default_memory() -> float | None:
    from apcheck.explore.budget import available_mb
    free = available_mb()
    return 0.8 * free if free is not None else None


def _progress(p) -> None:
    from apcheck.results import exploration_title
    rate = p.states / p.seconds if p.seconds else 0
    workers = ""
    if p.workers:  # a distributed search: each worker's resident memory
        workers = ", workers " + " ".join(f"{w.rss / 2 ** 30:.1f}" for w in p.workers) + " GiB"
    print(f"apcheck: {exploration_title(p.scenario)}: {p.states:,} states, {p.transitions:,} transitions, depth {p.depth}, "
          f"frontier {p.frontier:,}, {rate:,.0f} states/s, {p.seconds:.0f} s{workers}", file=sys.stderr, flush=True)


def _smt_progress(text: str) -> None:
    print(f"apcheck: {text}", file=sys.stderr, flush=True)


def cmd_check(args) -> int:
    from apcheck.commands.check import check_paths
    report = check_paths(args.paths)
    for line in report:
        print(line)
    return EXIT_OK


def cmd_fmt(args) -> int:
    from apcheck.lang.loader import read_source
    from apcheck.lang.parser import parse
    from apcheck.lang.printer import format_module
    status = EXIT_OK
    for path in args.paths:
        text = read_source(path)
        pretty = format_module(parse(text, path), text)
        if args.check:
            if pretty != text:
                print(f"{path}: not formatted", file=sys.stderr)
                status = EXIT_VIOLATED
        elif args.write:
            if pretty != text:
                _write(pretty, path)
        else:
            sys.stdout.write(pretty)
    return status


def _verified(model: str, args):
    """Load a model with the --spec files and verify it with the run options: (program, result)."""
    from apcheck.commands.model import load_program
    from apcheck.commands.verify import verify, verify_at_needed_bounds
    program = load_program(model, args.spec)
    run = verify_at_needed_bounds if getattr(args, "needed_bounds", False) else verify
    return program, run(program, run_config(args), args.spec)


def cmd_verify(args) -> int:
    from apcheck.report import render_format
    _, result = _verified(args.model, args)
    text = render_format(result, args.format, brief=args.brief)
    _emit(text, args.output)
    return exit_status(result.properties)


def cmd_lockgraph(args) -> int:
    from apcheck.commands.lockorder import lock_order
    from apcheck.commands.model import load_program
    from apcheck.report.graph import render_lockgraph
    result = lock_order(load_program(args.model, args.spec), run_config(args), args.spec)
    sys.stdout.write(render_lockgraph(result, args.format))
    return EXIT_OK


def cmd_diff(args) -> int:
    """Exit 1 when the new version has a violation the old one did not have."""
    from apcheck.commands.diff import diff_models
    from apcheck.report.diff import render_diff_json, render_diff_text
    old, old_result = _verified(args.old, args)
    new, new_result = _verified(args.new, args)
    d = diff_models(old, new, old_result, new_result)
    _emit(render_diff_json(d) if args.format == "json" else render_diff_text(d), args.output)
    return EXIT_VIOLATED if d.new_violations else EXIT_OK


def cmd_explain(args) -> int:
    """Exit 0 when every dependency of the report is reached in the model, 1 otherwise."""
    from apcheck.commands.explain import explain
    from apcheck.commands.model import load_program
    from apcheck.lockdep import parse_splat
    from apcheck.report.explain import render_explanation
    try:
        with open(args.splat, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError as err:
        raise UsageError(f"cannot read '{args.splat}': {err.strerror}") from None
    splat = parse_splat(text, args.splat)
    ex = explain(load_program(args.model, args.spec), splat, run_config(args))
    sys.stdout.write(render_explanation(args.model, splat, ex))
    return EXIT_OK if ex.explained else EXIT_VIOLATED


def cmd_extract(args) -> int:
    from apcheck.csource.extract import extract
    from apcheck.report.extract import render_extract_json, render_extract_text
    if args.skeleton:
        if args.format != "text" or args.all:
            raise UsageError("--skeleton writes a model: it takes neither --format json nor --all")
        from apcheck.csource.skeleton import skeleton
        _emit(skeleton(args.files), args.output)
        return EXIT_OK
    x = extract(args.files)
    text = render_extract_json(x) if args.format == "json" else render_extract_text(x, args.all)
    _emit(text, args.output)
    return EXIT_OK


def cmd_drift(args) -> int:
    from apcheck.commands.drift import drift
    from apcheck.commands.model import load_program
    from apcheck.report.drift import render_drift_json, render_drift_sarif, render_drift_text
    report = drift(load_program(args.model, args.spec), args.source)
    render = {"text": render_drift_text, "json": render_drift_json, "sarif": render_drift_sarif}[args.format]
    _emit(render(report), args.output)
    return EXIT_VIOLATED if report.drifted else EXIT_OK


def _check_smt_args(args) -> None:
    """The options verify and infer share: --smt-timeout, --interleaved-budget and --threads."""
    if args.smt_timeout <= 0:
        raise UsageError("--smt-timeout must be positive")
    if args.interleaved_budget is not None and args.interleaved_budget <= 0:
        raise UsageError("--interleaved-budget must be positive")
    if not 0 <= args.threads <= 64:
        raise UsageError("--threads must be between 0 (one per core) and 64")


def cmd_infer(args) -> int:
    from apcheck.commands.infer import infer, infer_interleaved
    from apcheck.report.infer import render_infer, render_infer_facts
    if not args.interleaved and (args.interleaved_budget is not None or args.threads or args.output
                                 or args.interleaved_facts):
        raise UsageError("--interleaved-budget, --threads, --interleaved-facts and --output go with "
                         "--interleaved")
    _check_smt_args(args)
    if not args.interleaved:
        sys.stdout.write(render_infer(infer(args.model, args.spec, args.smt_timeout)))
        return EXIT_OK
    from apcheck.commands.facts import read_facts, render_facts
    facts = read_facts(args.interleaved_facts) if args.interleaved_facts else None
    res = infer_interleaved(args.model, args.spec, args.smt_timeout, args.interleaved_budget, args.threads,
                            _smt_progress, facts)
    sys.stderr.write(render_infer_facts(res))
    if not res.proved:
        return EXIT_UNKNOWN
    _emit(render_facts(res.model, res.facts, res.proved), args.output)
    return EXIT_OK


def cmd_ci(args) -> int:
    from apcheck.commands.ci import run_ci
    from apcheck.report.ci import render_ci
    outcome = run_ci(args.config, use_cache=not args.no_cache,
                     progress=None if args.quiet else _ci_progress)
    if args.claims_table:
        from apcheck.report.markdown import render_claims_table
        sys.stdout.write(render_claims_table([r.result for r in outcome.runs], outcome.claims))
        return EXIT_OK if outcome.ok else EXIT_VIOLATED
    sys.stdout.write(render_ci(outcome))
    if args.junit:
        from apcheck.report.junit import render_junit
        _emit(render_junit([r.result for r in outcome.runs]), args.junit)
    if args.sarif:
        from apcheck.report.sarif import render_sarif
        _emit(render_sarif([r.result for r in outcome.runs]), args.sarif)
    if args.html:
        from apcheck.report.html import render_html
        _emit(render_html([r.result for r in outcome.runs]), args.html)
    return EXIT_OK if outcome.ok else EXIT_VIOLATED


def _ci_progress(msg: str) -> None:
    print(f"apcheck ci: {msg}", file=sys.stderr, flush=True)


def _emit(text: str, path: str | None) -> None:
    if path:
        _write(text, path)
    else:
        sys.stdout.write(text)


def _write(text: str, path: str) -> None:
    """Replace a file whole (a full disk leaves the old one intact); write a device or pipe directly."""
    from apcheck.files import write_atomically
    try:
        if os.path.exists(path) and not os.path.isfile(path):
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        else:
            write_atomically(path, text)
    except OSError as err:
        raise UsageError(f"cannot write '{path}': {err.strerror or err}; the file was not changed") from None
