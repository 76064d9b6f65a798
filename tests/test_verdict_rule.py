"""The one verdict rule (results.PropertyResult.is_failure), seen through every output.

For every verdict x every expectation (and a run of one scenario of several), the text report's
`(!)` marker, the JUnit failure, the SARIF level, the JSON `failed` field, `apcheck ci`'s mismatch
list and the exit status must agree with the rule stated here, independently of the code:

- with an expectation the run can decide, a verdict fails iff it differs from it, where `proved`
  meets an expected `holds`;
- a run of some scenarios cannot decide an expected `violated` or `reached` by finding `holds`,
  `unreachable` or `unknown`: that expectation is the whole model's;
- with no expectation (or one the run cannot decide), only `violated` fails.
"""
import json
from xml.etree import ElementTree as ET

import pytest

from apcheck.commands.ci import compare
from apcheck.report.json_report import render_json
from apcheck.report.junit import render_junit
from apcheck.report.sarif import render_sarif
from apcheck.report.text import render_verdicts
from apcheck.results import ExitStatus, Kind, Method, PropertyResult, Stats, Verdict, VerifyResult, exit_status

VERDICTS = list(Verdict)
EXPECTATIONS = [None] + list(Verdict)


def expected_failure(verdict: Verdict, expected: Verdict | None, partial: bool) -> bool:
    witnessed = (Verdict.VIOLATED, Verdict.REACHED)
    decidable = expected is not None and (not partial or verdict in witnessed or verdict == Verdict.PROVED)
    if decidable:
        return not (verdict == expected or (expected == Verdict.HOLDS and verdict == Verdict.PROVED))
    return verdict == Verdict.VIOLATED


def one_property(verdict: Verdict, expected: Verdict | None, partial: bool) -> VerifyResult:
    method = Method(engine="explicit-state", bounds=(("Slot", 2),), scenarios=("all",))
    prop = PropertyResult(name="p", kind=Kind.INVARIANT, verdict=verdict, method=method, message="m",
                          expected=expected, partial=partial)
    stats = Stats(states=1, transitions=0, depth=0, seconds=0.0, states_per_second=0.0, peak_memory_mb=0.0,
                  complete=True, limit=None, symmetry=True)
    return VerifyResult(model="m", path="m.apm", specs=[], bounds={"Slot": 2}, scenarios={"all": []},
                        properties=[prop], lock_edges=[], stats=stats)


CASES = [(v, e, partial) for v in VERDICTS for e in EXPECTATIONS for partial in (False, True)]


@pytest.mark.parametrize("verdict,expected,partial", CASES)
def test_every_output_agrees_with_the_rule(verdict, expected, partial):
    res = one_property(verdict, expected, partial)
    fails = expected_failure(verdict, expected, partial)
    prop = res.properties[0]
    assert prop.is_failure == fails

    text = render_verdicts(res)
    assert ("(!)" in text) == (fails and prop.judged)

    case = ET.fromstring(render_junit([res])).find("testsuite/testcase")
    assert (case.find("failure") is not None) == fails
    assert "None" not in (case.find("failure").get("message") if fails else "")

    levels = [r["level"] for r in json.loads(render_sarif([res]))["runs"][0]["results"]]
    if fails:
        assert levels == ["error"]
    elif verdict == Verdict.UNKNOWN:
        assert levels == ["warning"]
    else:
        assert levels in ([], ["note"])

    assert json.loads(render_json([res]))["results"][0]["properties"][0]["failed"] == fails

    if expected is not None:
        assert bool(compare(res)) == fails

    want = ExitStatus.FAILED if fails else ExitStatus.UNKNOWN if verdict == Verdict.UNKNOWN else ExitStatus.OK
    assert exit_status(res.properties) == want


def test_proved_meets_an_expected_holds_everywhere():
    res = one_property(Verdict.PROVED, Verdict.HOLDS, partial=False)
    assert "(!)" not in render_verdicts(res)
    assert ET.fromstring(render_junit([res])).find("testsuite/testcase/failure") is None
    assert [r["level"] for r in json.loads(render_sarif([res]))["runs"][0]["results"]] == ["note"]
    assert exit_status(res.properties) == ExitStatus.OK
    assert compare(res) == []


def test_a_scenario_that_does_not_find_an_expected_violation_does_not_decide_it():
    res = one_property(Verdict.HOLDS, Verdict.VIOLATED, partial=True)
    assert "violated (whole model, not decided by this run)" in render_verdicts(res)
    assert exit_status(res.properties) == ExitStatus.OK
    # the same verdict over every scenario is a stale expectation
    assert exit_status(one_property(Verdict.HOLDS, Verdict.VIOLATED, partial=False).properties) == \
        ExitStatus.FAILED
