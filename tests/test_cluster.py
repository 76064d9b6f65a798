"""The distributed search (apcheck/explore/cluster) against the single-machine native core: the same
states and transitions, the same verdicts, shortest traces of the same length that replay through
the Python semantics, and a run that loses a worker decides nothing.

The partitioned search itself is checked in this process (InProcessWorkers: the same calls, every
partition here) on every test model, several configurations and random models; the Ray transport
on a local Ray instance of two workers that the tests start and stop themselves. In CI
(APCHECK_REQUIRE_RAY=1) a missing Ray fails those tests instead of skipping them."""
import json
import os
import random
import signal
import sys
import time

import pytest

from apcheck.commands.model import VerifyConfig, load_program
from apcheck.commands.verify import verify, verify_at_needed_bounds
from apcheck.explore.cluster.search import LOST, explore_cluster
from apcheck.explore.engine import ExploreConfig, explore
from apcheck.explore.trace import replay
from apcheck.report import render_format
from conftest import run_main
from native_models import random_model
from test_native import RANDOM_MAX_STATES, TEST_MODELS, need_compiler, systems  # noqa: F401 (autouse fixture)

SPEC = ["specs/vfio_ap.aps"]
WHOLE_STATES = {"vfio_ap_5_12": 392_752, "vfio_ap_v15": 23_031_908}   # tests/test_models.py pins them on one machine
CONFIGS = {"default": {}, "plain": {"symmetry": False, "reduction": False}, "closure": {"closure_edges": True},
           "first": {"first": True}}


def firsts(r) -> dict:
    """What the two searches must agree on: counts, verdicts, and the depth (trace length) of each
    first finding; which state of that depth is found first may differ."""
    depth = r.depth.__getitem__
    return {"states": len(r.states), "transitions": r.transitions, "complete": r.complete, "limit": r.limit,
            "deepest": r.max_depth_reached, "at_once": r.deadlock_at_once,
            "inv": {k: depth(i) for k, i in r.invariant_violations.items()},
            "cov": {k: depth(i) for k, i in r.covers_reached.items()},
            "defects": {k: depth(i) for k, (i, o) in r.defects.items()},   # which kind first may differ
            "deadlock": None if r.deadlock is None else depth(r.deadlock[0]),
            "edges": sorted(r.edges), "done": {op: depth(i) for op, (i, _) in r.completions.items()}}


def compare(system, parts: int = 3, one=None, **kw):
    one = one or explore(system, ExploreConfig(engine="native", threads=1, **kw))
    dist = explore_cluster(system, ExploreConfig(engine="native", **kw), parts, backend="in-process")
    if kw.get("first"):
        # BFS levels: the single machine stops after the state that finds the first violation, the
        # cluster after that state's level; so it finds the same ones at the same least depth, or more
        a, b = firsts(one), firsts(dist)
        assert a["limit"] == b["limit"]
        found = lambda f: {**f["inv"], **f["defects"],
                           **({"deadlock": f["deadlock"]} if f["deadlock"] is not None else {})}
        assert found(a).items() <= found(b).items()
        assert min(found(a).values(), default=None) == min(found(b).values(), default=None)
    else:
        assert firsts(dist) == firsts(one)
        assert dist.coverage == one.coverage
        assert [n for n in dist.notes if not n.startswith(("distributed", "search:"))] == \
               [n for n in one.notes if not n.startswith("native core built")]
    for name, i in dist.invariant_violations.items():   # the trace replays, state by state
        steps = replay(dist, i)
        assert len(steps) == dist.depth[i]
        assert dist.index.get(dist.states[i]) == i
    if dist.deadlock is not None and not dist.deadlock_at_once:
        i, stuck = dist.deadlock
        assert dist.can_move[i] & stuck == 0
    return one, dist


@pytest.mark.parametrize("config", [c if c == "default" else pytest.param(c, marks=pytest.mark.slow)
                                    for c in sorted(CONFIGS)])
@pytest.mark.parametrize("path", TEST_MODELS)
def test_test_models(path, config):
    for system in systems(path):
        compare(system, **CONFIGS[config])


def test_one_partition_and_many():
    """One partition is the single-machine search in all but the transport; more partitions than
    states leave some empty."""
    for parts in (1, 2, 7):
        for system in systems("tests/models/report_demo.apm"):
            compare(system, parts=parts)


def test_limits_stop_at_a_level_and_decide_nothing_more():
    system = systems("models/vfio_ap_5_12.apm", ["specs/vfio_ap.aps"])[1]   # scenario masks: 7,716 states
    cut = explore_cluster(system, ExploreConfig(engine="native", max_states=1000), 2, backend="in-process")
    assert not cut.complete and cut.limit == "max states 1000" and len(cut.states) >= 1000
    deep = explore_cluster(system, ExploreConfig(engine="native", max_depth=4), 2, backend="in-process")
    one = explore(system, ExploreConfig(engine="native", max_depth=4))
    assert firsts(deep) == firsts(one) and deep.limit == "max depth 4"


def test_a_worker_out_of_memory_stops_the_run_with_the_reason():
    system = systems("models/vfio_ap_5_12.apm", ["specs/vfio_ap.aps"])[0]
    r = explore_cluster(system, ExploreConfig(engine="native", max_memory_mb=16), 2, backend="in-process")
    assert not r.complete and r.limit.startswith("memory limit of 16 MiB reached (8 MiB per worker")
    assert r.deadlock is None and r.can_move is None
    assert any("deadlock analysis did not run" in n for n in r.notes)


@pytest.mark.slow
def test_random_models(tmp_path):
    rng = random.Random(20261127)
    for n in range(int(os.environ.get("APCHECK_NATIVE_RANDOM", "200")) // 4):
        path = tmp_path / f"random{n}.apm"
        path.write_text(random_model(rng))
        config = CONFIGS[rng.choice(sorted(CONFIGS))]
        try:
            for system in systems(str(path)):
                one = explore(system, ExploreConfig(engine="native", threads=1, max_states=RANDOM_MAX_STATES, **config))
                if one.complete:   # a cut search stops at a level here, at a state there
                    compare(system, parts=rng.choice((2, 3, 5)), one=one, max_states=RANDOM_MAX_STATES, **config)
        except AssertionError as err:
            raise AssertionError(f"random model {n} ({config}):\n{path.read_text()}") from err


# ---- on Ray ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance of two CPUs for this module, stopped at its end."""
    try:
        import ray
    except ImportError:
        if os.environ.get("APCHECK_REQUIRE_RAY"):
            pytest.fail("APCHECK_REQUIRE_RAY is set and Ray is not installed")
        pytest.skip("Ray is not installed (pip install 'apcheck[distributed]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             object_store_memory=512 * 2 ** 20)
    yield ray
    ray.shutdown()


@pytest.mark.slow  # a Ray instance: seconds to start
def test_ray_workers_give_the_single_machine_answer(ray_local):
    for system in systems("models/vfio_ap_5_12.apm", ["specs/vfio_ap.aps"])[:2]:
        one = explore(system, ExploreConfig(engine="native", threads=1))
        dist = explore(system, ExploreConfig(engine="native", cluster="auto", workers=2))
        assert firsts(dist) == firsts(one) and dist.coverage == one.coverage


@pytest.mark.slow  # a Ray instance: seconds to start
def test_the_cli_on_ray(ray_local):
    """`apcheck verify --cluster auto`: the verdicts and counts of the single-machine run."""
    args = ["verify", "models/vfio_ap_5_12.apm", "--spec", "specs/vfio_ap.aps", "--format", "json", "--no-induction"]
    single_run = run_main(*args)
    dist_run = run_main(*args, "--cluster", "auto", "--workers", "2")
    single, dist = json.loads(single_run.stdout)["results"][0], json.loads(dist_run.stdout)["results"][0]
    assert dist_run.returncode == single_run.returncode
    assert [(p["name"], p["verdict"]) for p in dist["properties"]] == [(p["name"], p["verdict"]) for p in single["properties"]]
    assert dist["stats"]["states"] == single["stats"]["states"] == 392_752
    assert dist["stats"]["transitions"] == single["stats"]["transitions"]
    assert "workers" in dist_run.stderr   # progress per level names the workers' memory


@pytest.mark.slow  # a Ray instance: seconds to start
def test_a_lost_worker_decides_nothing(ray_local):
    """A worker killed mid-run (SIGKILL, as the kernel's OOM killer does): every verdict `unknown`
    with the reason, within a bounded time, never a verdict over the states that are left; the
    reports say so."""
    killed = []

    def progress(p):
        if p.depth >= 8 and not killed:
            os.kill(p.workers[1].pid, signal.SIGKILL)
            killed.append(time.monotonic())

    program = load_program("models/vfio_ap_v15.apm", SPEC)   # 23 M states: about a minute whole
    start = time.monotonic()
    res = verify(program, VerifyConfig(induction=False, explore=ExploreConfig(
        cluster="auto", workers=2, progress=progress, progress_every=0.0)), SPEC)
    assert killed and time.monotonic() - killed[0] < 60 and time.monotonic() - start < 120
    assert not res.stats.complete
    explored = [p for p in res.properties if p.kind != "lockorder" or p.verdict != "proved"]
    assert explored and all(p.verdict == "unknown" for p in explored), [(p.name, p.verdict) for p in explored]
    assert all(LOST in p.message or "stopped early" in p.message for p in explored)
    text = render_format(res, "text")
    assert "worker lost" in text
    json.loads(render_format(res, "json"))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["vfio_ap_5_12", "vfio_ap_v15"])
def test_shipped_models_on_two_ray_workers(ray_local, model):
    """What apcheck ci runs, on two workers: every verdict as the spec expects (as the single machine
    gives it, tests/test_models.py) and the whole system's pinned state count. The merged models:
    test_merged_scenarios_on_two_ray_workers."""
    program = load_program(f"models/{model}.apm", SPEC)
    res = verify_at_needed_bounds(program, VerifyConfig(explore=ExploreConfig(cluster="auto", workers=2)), SPEC)
    for p in res.properties:
        assert p.judged_verdict == p.expected or (p.expected == "holds" and p.verdict == "proved"), p.name
    assert res.stats.complete and res.stats.states == WHOLE_STATES[model]
    if model == "vfio_ap_v15":   # finding 2's trace: as long as the single machine's (tests/test_models.py)
        assert next(p for p in res.properties if p.name == "no_host_guest_sharing").message == "violated after 27 steps"


@pytest.mark.slow
@pytest.mark.parametrize("model", ["vfio_ap_merged", "vfio_ap_merged_2026"])
def test_merged_scenarios_on_two_ray_workers(ray_local, model):
    """The merged models' whole systems (59 M and 61 M states, over 9 GiB on one machine; the workers
    keep about 250 bytes a state with the predecessors, some 15 GiB) are left to tests/test_models.py
    on one machine; each of their scenarios on two workers gives the single machine's counts,
    verdicts and first findings."""
    for system in systems(f"models/{model}.apm", SPEC)[1:]:
        one = explore(system, ExploreConfig(engine="native", threads=1))
        dist = explore(system, ExploreConfig(engine="native", cluster="auto", workers=2))
        assert firsts(dist) == firsts(one) and dist.coverage == one.coverage, system.scenario


@pytest.mark.slow
def test_philosophers_on_two_ray_workers(ray_local, tmp_path):
    """The benchmark model of bench/philosophers.py at N=12: 1,684,801 states, as on one machine."""
    sys.path.insert(0, "bench")
    from philosophers import apcheck_model
    path = tmp_path / "phil12.apm"
    path.write_text(apcheck_model(12))
    system = systems(str(path))[0]
    one = explore(system, ExploreConfig(engine="native", symmetry=False, reduction=False))
    dist = explore(system, ExploreConfig(engine="native", symmetry=False, reduction=False, cluster="auto", workers=2))
    assert len(one.states) == 1_684_801 and firsts(dist) == firsts(one) and dist.coverage == one.coverage
    assert replay(dist, dist.deadlock[0]) is not None


def test_cluster_options_are_checked():
    r = run_main("verify", "tests/models/abba.apm", "--workers", "2")
    assert r.returncode == 2 and "--workers needs --cluster" in r.stderr
    r = run_main("verify", "tests/models/abba.apm", "--cluster", "auto", "--dfs")
    assert r.returncode == 2 and "cannot take --dfs" in r.stderr
