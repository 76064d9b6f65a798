"""Bounded model checking with Z3 as a cross-check of the explorer: on every test model, at the
declared bounds, both find the same violations and covers at the same shortest depth, and BMC
finds none where the explorer finds none (within the depth unrolled)."""
import glob

import pytest

from apcheck.diagnostics import InternalError
from apcheck.explore.engine import ExploreConfig, explore
from apcheck.explore.system import scenario_system
from apcheck.ir.lower import lower
from apcheck.smt import bmc as bmc_module
from apcheck.smt.bmc import bmc
from apcheck.commands.model import load_program

MAX_DEPTH = 8
SLOW = {"tests/models/unplug_loop.apm", "tests/models/unplug_locked.apm"}   # 30 s or more each
MODELS = sorted(glob.glob("tests/models/*.apm"))


def explored(path):
    program = load_program(path)
    bounds = {n: s.bound for n, s in program.sorts.items()}
    system = scenario_system(lower(program), bounds, program.system)
    # BMC counts every step; the explorer's reduction merges some, so compare without it
    res = explore(system, ExploreConfig(reduction=False))
    return system, res


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if p in SLOW else p for p in MODELS])
def test_bmc_agrees_with_the_explorer(path):
    system, res = explored(path)
    assert res.complete
    depth = min(res.max_depth_reached, MAX_DEPTH)
    found = bmc(system, depth)
    assert found.unknown is None and found.depth == depth
    want_inv = {k: res.depth[v] for k, v in res.invariant_violations.items() if res.depth[v] <= depth}
    want_cov = {k: res.depth[v] for k, v in res.covers_reached.items() if res.depth[v] <= depth}
    if res.defects:  # BMC ends a path at a defect; the explorer goes on with the other threads
        for got, want in ((found.violations, want_inv), (found.reached, want_cov)):
            assert all(k in want and want[k] <= d for k, d in got.items())
        return
    assert found.violations == want_inv
    assert found.reached == want_cov


def test_models_cover_both_outcomes():
    """The cross-check is not vacuous: some test models have violations, some have none."""
    with_violation = [p for p in MODELS if explored(p)[1].invariant_violations]
    assert len(with_violation) >= 3 and len(with_violation) < len(MODELS)


def test_bmc_path_that_does_not_replay_is_an_internal_error(monkeypatch):
    system, _ = explored("tests/models/lost_update.apm")

    class NoSteps(bmc_module.Semantics):
        def successors(self, state):
            return []
    monkeypatch.setattr(bmc_module, "Semantics", NoSteps)
    with pytest.raises(InternalError, match="does not replay"):
        bmc(system, 4)
