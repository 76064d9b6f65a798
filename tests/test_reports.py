"""Reports: golden files for every format, the JSON schema, SARIF and JUnit structure, and the
HTML report rendered in a real (headless) browser.

The golden files are for tests/models/report_demo.apm: a lock-order cycle with a deadlock, a
violated invariant and an invariant proved for every size. Timings, memory and the version are
masked. Regenerate after an intended change with UPDATE_GOLDEN=1 and review the diff.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from xml.etree import ElementTree as ET

import jsonschema
import pytest

from apcheck.report import render_format
from apcheck.report.json_report import SCHEMA_PATH
from apcheck.commands.model import VerifyConfig, load_program
from apcheck.commands.verify import verify

DEMO = "tests/models/report_demo.apm"
GOLDEN = "tests/golden"
FORMATS = {"text": "txt", "json": "json", "markdown": "md", "junit": "junit.xml", "sarif": "sarif",
           "html": "html", "dot": "dot"}

MASKS = [
    (r"\d+\.\d+ s\b", "<secs> s"),
    (r"[\d,]+ states/s", "<rate> states/s"),
    (r"peak memory \d+ MiB", "peak memory <mem> MiB"),
    (r'"(seconds|search_seconds|states_per_second|peak_memory_mb)": [\d.e+-]+', r'"\1": 0'),
    (r'time="[\d.]+"', 'time="<secs>"'),
    (r'"apcheck": "[^"]+"', '"apcheck": "<version>"'),
    (r'"name": "apcheck",\n(\s+)"version": "[^"]+"', r'"name": "apcheck",\n\1"version": "<version>"'),
]


def masked(text: str) -> str:
    for pattern, repl in MASKS:
        text = re.sub(pattern, repl, text)
    return text


@pytest.fixture(scope="module")
def demo():
    return verify(load_program(DEMO))


def assert_golden(got: str, path: str) -> None:
    """The report equals its golden file (UPDATE_GOLDEN=1 rewrites the file: review the diff)."""
    if os.environ.get("UPDATE_GOLDEN"):
        with open(path, "w") as f:
            f.write(got)
    with open(path) as f:
        want = f.read()
    assert got == want, f"the report differs from {path} (UPDATE_GOLDEN=1 to regenerate, then review)"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_golden(demo, fmt):
    assert_golden(masked(render_format(demo, fmt)), os.path.join(GOLDEN, f"report_demo.{FORMATS[fmt]}"))


def test_demo_has_a_cycle_a_violation_and_a_proof(demo):
    verdicts = {p.name: p.verdict for p in demo.properties}
    assert verdicts == {"one_user_per_slot": "proved", "never_reset": "violated", "deadlock": "violated",
                        "defects": "holds", "order": "violated"}


def test_json_validates_against_its_schema(demo):
    with open(SCHEMA_PATH) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = json.loads(render_format(demo, "json"))
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    # and the schema is strict enough to catch a malformed document
    doc["results"][0]["properties"][0]["verdict"] = "fine"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)


def test_sarif_has_the_required_fields_of_2_1_0(demo):
    doc = json.loads(render_format(demo, "sarif"))
    assert doc["version"] == "2.1.0" and "sarif" in doc["$schema"]
    run, = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "apcheck"
    rule_ids = {r["id"] for r in driver["rules"]}
    assert run["results"]
    for res in run["results"]:
        assert res["ruleId"] in rule_ids
        assert res["message"]["text"]
        assert res["level"] in ("none", "note", "warning", "error")
        for loc in res.get("locations", []):
            phys = loc["physicalLocation"]
            assert phys["artifactLocation"]["uri"]
            assert phys["region"]["startLine"] >= 1
    inv = next(r for r in run["results"] if "never_reset violated" in r["message"]["text"])
    assert inv["ruleId"] == "invariant"
    assert inv["locations"][0]["physicalLocation"]["region"]["startLine"] == 47


def test_junit_parses_with_the_standard_library(demo):
    root = ET.fromstring(render_format(demo, "junit"))
    suite, = root.findall("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {p.name for p in demo.properties}
    assert cases["never_reset"].find("failure") is not None
    assert cases["one_user_per_slot"].find("failure") is None
    assert suite.get("failures") == "3"


# ---- the HTML report in a real browser ------------------------------------------------

BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--disable-dev-shm-usage"]

# Appended to a copy of the report by the test only: measures what the browser laid out.
PROBE = """<script>
const box = el => { const b = el.getBoundingClientRect(); return b.width > 0 && b.height > 0; };
const q = s => Array.from(document.querySelectorAll(s));
const out = {
  cycle_edges: q('svg.lockgraph .cycle-edge path').filter(p => p.getTotalLength() > 20).length,
  cycle_pairs: q('svg.lockgraph .cycle-edge').map(g => g.dataset.src + '>' + g.dataset.dst).sort(),
  nodes: q('svg.lockgraph .node').filter(box).length,
  steps: q('svg.sequence .step rect').filter(box).length,
  blocked: q('svg.sequence .blocked').filter(box).map(g => g.dataset.thread).sort(),
};
const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


def _browser() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("APCHECK_REQUIRE_BROWSER"):
        pytest.fail("APCHECK_REQUIRE_BROWSER is set but no chromium is installed (.ci/run installs it)")
    if found is None:
        pytest.skip("chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    return found


def _run_browser(browser: str, tmp_path, *args: str) -> str:
    cmd = [browser, *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _red_pixels(png: bytes) -> int:
    """Pixels close to the report's cycle red (#dd1111) in an 8-bit RGB or RGBA PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", data[:10])
            assert depth == 8 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    count = 0
    for y in range(height):
        base = y * (stride + 1)
        filt, line = raw[base], bytearray(raw[base + 1: base + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if filt == 1:
                line[i] = (line[i] + a) & 255
            elif filt == 2:
                line[i] = (line[i] + b) & 255
            elif filt == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for i in range(0, stride, channels):
            r, g, bl = line[i], line[i + 1], line[i + 2]
            if r > 180 and g < 80 and bl < 80:
                count += 1
        prev = line
    return count


@pytest.mark.slow
def test_v15_html_report_draws_the_cycle_and_the_trace_in_a_browser(tmp_path):
    browser = _browser()
    result = verify(load_program("models/vfio_ap_v15.apm", ["specs/vfio_ap.aps"]), VerifyConfig(scenario="locking"),
                    specs=["specs/vfio_ap.aps"])
    html = render_format(result, "html")
    page = tmp_path / "report.html"
    page.write_text(html)
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", PROBE + "</body>"))
    dom = _run_browser(browser, tmp_path, "--dump-dom", f"file://{probed}")
    found = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom).group(1).replace("&gt;", ">"))
    # the seed's cycle: three red edges between the three lock classes, drawn with real length
    assert found["cycle_pairs"] == sorted(["kvm->lock>vcpu->mutex", "vcpu->mutex>matrix_dev->lock",
                                           "matrix_dev->lock>kvm->lock"])
    assert found["cycle_edges"] == 3
    assert found["nodes"] >= 3
    # the deadlock trace and the cover's trace are drawn step by step, with the blocked threads marked
    deadlock = next(p for p in result.properties if p.name == "deadlock")
    assert found["steps"] >= len(deadlock.trace.steps) > 0
    assert found["blocked"], "no blocked thread drawn"
    # and the screenshot shows it: the cycle's red is on screen
    shot = tmp_path / "report.png"
    _run_browser(browser, tmp_path, "--window-size=1400,1800", f"--screenshot={shot}", f"file://{page}")
    assert _red_pixels(shot.read_bytes()) > 500


def test_a_hierarchy_violation_without_a_cycle_has_its_own_report(tmp_path):
    model = tmp_path / "h.apm"
    model.write_text("lock x: mutex\nlock y: mutex\nop t() {\n    acquire y\n    acquire x\n    release x\n"
                     "    release y\n}\nthread a runs t\nlockorder h: x < y\n")
    res = verify(load_program(str(model)))
    p = {q.name: q for q in res.properties}["h"]
    assert p.verdict == "violated" and p.hierarchy == ["x", "y"]
    text = render_format(res, "text")
    assert "lock order violates the declared hierarchy\n  declared: x < y\n  y -> x  [reached]" in text
    assert "circular locking dependency" not in text and "x --> x" not in text
    assert "lock order violates the declared hierarchy" in render_format(res, "html")


REPORT_KINDS = {"cycle_2": "tests/models/abba.apm", "cycle_3_lockdep_rule": "tests/models/lockdep_chain.apm",
                "cycle_4": "tests/models/four_locks.apm", "hidden_lock": "tests/models/hidden_lock.apm",
                "hierarchy_only": "tests/models/hierarchy_only.apm", "sleep_in_atomic": "tests/models/spin_sleep.apm",
                "wrong_instance": "tests/models/wrong_instance.apm", "rwsem": "tests/models/rwsem_inversion.apm"}


@pytest.mark.parametrize("kind", sorted(REPORT_KINDS))
def test_golden_report_kinds(kind):
    """One golden text report per kind of finding (issue: reports a kernel engineer trusts)."""
    assert_golden(masked(render_format(verify(load_program(REPORT_KINDS[kind])), "text")),
                  os.path.join(GOLDEN, f"kind_{kind}.txt"))
