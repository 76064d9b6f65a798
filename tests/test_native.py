"""The native core against the Python explorer: the same states in the same order (state by state,
after the Python canonicalization), the same transitions, first violations, defects, deadlock,
can-move masks and lock-order edges, and the same verdicts and traces; on every test model, the
shipped models at their default bounds (slow), and random models (tests/native_models.py).

In CI (APCHECK_REQUIRE_NATIVE=1) a missing C compiler fails these tests instead of skipping them."""
import os
import random
import re

import pytest

from apcheck.commands.model import build, load_program
from apcheck.explore.engine import ExploreConfig, explore
from apcheck.explore.native.build import NativeUnavailable, compiler
from apcheck.explore.symmetry import canonicalizer
from apcheck.explore.system import bounds_of, scenario_system
from apcheck.results import WHOLE_SYSTEM
from conftest import run_main
from native_models import random_model

TEST_MODELS = sorted(f"tests/models/{f}" for f in os.listdir("tests/models") if f.endswith(".apm"))
SHIPPED = ["models/vfio_ap_5_12.apm", "models/vfio_ap_v15.apm", "models/vfio_ap_merged.apm",
           "models/vfio_ap_merged_2026.apm"]
CONFIGS = {"default": {}, "plain": {"symmetry": False, "reduction": False}, "dfs": {"order": "dfs"},
           "closure": {"closure_edges": True}, "one-thread": {"threads": 1}, "three-threads": {"threads": 3},
           "first": {"order": "dfs", "first": True}, "first-bfs": {"first": True}}
RANDOM_MODELS = int(os.environ.get("APCHECK_NATIVE_RANDOM", "200"))
RANDOM_MAX_STATES = 30_000  # a larger random model is cut here, in both cores alike


@pytest.fixture(autouse=True, scope="module")
def need_compiler():
    try:
        compiler()
    except NativeUnavailable as why:
        if os.environ.get("APCHECK_REQUIRE_NATIVE"):
            pytest.fail(f"APCHECK_REQUIRE_NATIVE is set: {why}")
        pytest.skip(str(why))


def summary(r) -> tuple:
    return (len(r.states), r.transitions, r.complete, r.limit, r.deadlock_at_once, r.max_depth_reached,
            r.invariant_violations,
            r.covers_reached, {k: (i, o.thread, o.defect.kind, o.defect.message) for k, (i, o) in r.defects.items()},
            r.deadlock, r.edges, [n for n in r.notes if not n.startswith("native core built")],
            {op: (i, o.thread, o.result) for op, (i, o) in r.completions.items()})


def compare(system, states_limit: int = 300_000, **kw):
    """Both cores on one system; every difference fails. The Python explorer's result."""
    py = explore(system, ExploreConfig(engine="python", **kw))
    nat = explore(system, ExploreConfig(engine="native", **kw))
    assert summary(nat) == summary(py)
    if py.complete:  # a cut search may have expanded a different last few states
        assert nat.coverage == py.coverage
    if len(py.states) <= states_limit:
        canon = canonicalizer(system) if kw.get("symmetry", True) else None
        for i in range(len(py.states)):
            s = nat.states[i]
            assert (canon(s) if canon else s) == py.states[i], f"state {i}"
            assert nat.parent[i] == py.parent[i] and nat.depth[i] == py.depth[i], f"state {i}"
            assert nat.can_move[i] == py.can_move[i], f"can_move of state {i}"
    return py


def systems(path: str, specs=()):
    program = load_program(path, list(specs))
    lowered, _ = build(program)
    return [scenario_system(lowered, bounds_of(program), sc) for sc in [program.system] + program.scenarios]


@pytest.mark.parametrize("config", [c if c in ("default", "plain") else pytest.param(c, marks=pytest.mark.slow)
                                    for c in sorted(CONFIGS)])
@pytest.mark.parametrize("path", TEST_MODELS)
def test_test_models(path, config):
    for system in systems(path):
        compare(system, **CONFIGS[config])


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED)
def test_shipped_models(path):
    """Every scenario whole; the whole system (millions of states, beyond the Python core) cut at the
    same 150,000 states in both cores."""
    for system in systems(path, ["specs/vfio_ap.aps"]):
        cut = {"max_states": 150_000} if system.scenario == WHOLE_SYSTEM else {}
        compare(system, states_limit=60_000, **cut)


@pytest.mark.slow
def test_threads_agree_on_a_large_search():
    """The native core's parallel parts give the search one thread gives, state by state: 5.12's
    whole system (392,752 states, a deadlock), where the table grows while workers read it (the
    merge waits for them, then grows it in parts), and the rehash and the stuck-thread analysis run
    in parts of 65,536 states or more."""
    system = systems("models/vfio_ap_5_12.apm", ["specs/vfio_ap.aps"])[0]
    one = explore(system, ExploreConfig(engine="native", threads=1))
    assert len(one.states) == 392_752 and one.deadlock is not None
    for threads in (2, 3):
        more = explore(system, ExploreConfig(engine="native", threads=threads))
        assert summary(more) == summary(one) and more.coverage == one.coverage
        for i in range(0, len(one.states), 7):
            assert more.states[i] == one.states[i] and more.parent[i] == one.parent[i], f"state {i}"
        assert list(more.can_move) == list(one.can_move)


def test_the_worklist_finishes_what_the_sweeps_leave(monkeypatch):
    """The stuck-thread analysis's fallback: built with no sweeps at all (SWEEPS 0), the predecessor
    worklist computes the whole can-move fixpoint, and the deadlock and masks are the same."""
    import apcheck.explore.native.search as native_search
    systems_ = systems("tests/models/report_demo.apm") + systems("tests/models/after_defect.apm")
    expected = [explore(system, ExploreConfig(engine="native")) for system in systems_]
    real = native_search.generate
    monkeypatch.setattr(native_search, "generate", lambda system: (lambda src, lay: ("#define SWEEPS 0\n" + src, lay))(
        *real(system)))
    for system, want in zip(systems_, expected):
        got = explore(system, ExploreConfig(engine="native"))
        assert got.deadlock == want.deadlock and list(got.can_move) == list(want.can_move)
    assert any(w.deadlock for w in expected)


@pytest.mark.slow
def test_random_models(tmp_path):
    rng = random.Random(20261126)
    seen = set()
    for n in range(RANDOM_MODELS):
        path = tmp_path / f"random{n}.apm"
        path.write_text(random_model(rng))
        config = CONFIGS[rng.choice(sorted(CONFIGS))]
        try:
            for system in systems(str(path)):
                py = compare(system, max_states=RANDOM_MAX_STATES, **config)
                seen |= {o.defect.kind for _, o in py.defects.values()} | set(py.invariant_violations)
                seen |= {"deadlock"} if py.deadlock else set()
                seen |= {"edges"} if py.edges else set()
                seen |= {"large"} if len(py.states) > 1000 else set()
        except AssertionError as err:
            raise AssertionError(f"random model {n} ({config}):\n{path.read_text()}") from err
    if RANDOM_MODELS >= 100:  # the models exercise what the cores must agree on
        assert {"deadlock", "unguarded", "null-instance", "assert", "inv2", "edges", "large"} <= seen, seen


def test_limits_agree():
    """A search cut by --max-states or --max-depth stops at the same state in both cores, with any
    number of threads."""
    system = systems("tests/models/report_demo.apm")[0]
    for threads in (1, 2):
        compare(system, max_states=40, threads=threads)
        compare(system, max_depth=3, threads=threads)
        compare(system, max_depth=3, order="dfs", threads=threads)


@pytest.mark.slow
def test_limits_agree_on_blocks():
    """The same on a search of many blocks, cut inside one (the native core's merge stops there)."""
    big = systems("models/vfio_ap_v15.apm", ["specs/vfio_ap.aps"])[3]  # locking: 33,432 states
    for threads in (1, 2):
        compare(big, max_states=20_000, threads=threads)
        compare(big, max_depth=12, threads=threads)


def test_verdicts_and_traces_agree():
    outs = []
    for engine in ("python", "native"):
        done = run_main("verify", "tests/models/report_demo.apm", "--engine", engine, "--no-induction", "-q")
        out = re.sub(r"(?m)^(states \d+, |note: native core built ).*$", "", done.stdout)
        outs.append((done.returncode, out, done.stdout))
    assert outs[0][:2] == outs[1][:2]
    assert "python core" in outs[0][2] and "native core" in outs[1][2]
    assert "violated" in outs[0][1] and "never_reset" in outs[0][1]


def test_engine_native_reports_what_it_cannot_build(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("APCHECK_NATIVE_CACHE", str(tmp_path / "cache"))
    done = run_main("verify", "tests/models/abba.apm", "--engine", "native", "--no-induction", "-q")
    assert done.returncode == 2
    assert "--engine native:" in done.stderr and "Traceback" not in done.stderr


def test_auto_falls_back_with_a_note(tmp_path, capsys, monkeypatch):
    """engine auto on a search beyond the Python-only size, where the compiler is missing: the
    Python explorer runs it and the report says why."""
    from apcheck.explore import engine
    monkeypatch.setattr(engine, "AUTO_PYTHON_STATES", 5)
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("APCHECK_NATIVE_CACHE", str(tmp_path / "cache"))
    system = systems("tests/models/report_demo.apm")[0]
    result = explore(system, ExploreConfig(engine="auto"))
    assert result.complete and len(result.states) == 32
    assert any("the Python explorer ran this search" in n for n in result.notes)


@pytest.mark.parametrize("engine", [pytest.param("python", marks=pytest.mark.slow), "native"])
def test_first_stops_at_the_first_violation(engine):
    """--first: the deadlock of the v15 design (a wait-for cycle, found during the search) in a fraction
    of the states; every other verdict is unknown, the run says it was partial."""
    full = run_main("verify", "models/vfio_ap_v15.apm", "--spec", "specs/vfio_ap.aps", "--scenario", "locking",
                    "--no-induction", "-q", "--engine", engine, "--format", "json")
    first = run_main("verify", "models/vfio_ap_v15.apm", "--spec", "specs/vfio_ap.aps", "--scenario", "locking",
                     "--no-induction", "-q", "--engine", engine, "--first", "--format", "json")
    import json
    a, b = json.loads(full.stdout)["results"][0], json.loads(first.stdout)["results"][0]
    verdicts = {p["name"]: p["verdict"] for p in b["properties"]}
    assert b["stats"]["limit"] == "stopped at the first violation (--first)"
    assert b["stats"]["states"] * 10 < a["stats"]["states"]
    assert verdicts["deadlock"] == "violated"
    assert "wait-for cycle" in first_trace_text(engine)
    assert all(v in ("violated", "unknown") for v in verdicts.values())


def first_trace_text(engine: str) -> str:
    return run_main("verify", "models/vfio_ap_v15.apm", "--spec", "specs/vfio_ap.aps", "--scenario", "locking",
                    "--no-induction", "-q", "--engine", engine, "--first").stdout


def test_memory_limit_is_a_limit(tmp_path):
    """The native store stops at its share of --max-memory: the verdicts are unknown with the reason,
    and the Python explorer is not started instead."""
    done = run_main("verify", "models/vfio_ap_merged_2026.apm", "--spec", "specs/vfio_ap.aps", "--scenario",
                    "config", "--no-induction", "-q", "--engine", "native", "--max-memory", "120")
    assert done.returncode == 3, done.stdout + done.stderr  # unknown (in a scenario, it decides no expectation)
    assert "memory limit of 120 MiB reached" in done.stdout and "native core" in done.stdout


def test_stop_when_decided_agrees():
    """A run for some properties stops after the expansion that decides the last of them, at the
    same state in both cores."""
    for path in ("tests/models/report_demo.apm", "tests/models/after_defect.apm", "tests/models/lost_update.apm"):
        for threads in (1, 2):
            py = compare(systems(path)[0], stop_when_decided=True, threads=threads)
            assert py.invariant_violations or py.covers_reached
