"""JUnit XML: one test suite per model, one test case per property."""
from __future__ import annotations

from xml.etree import ElementTree as ET

from apcheck.report.text import render_property
from apcheck.results import Verdict, VerifyResult


def render_junit(results: list[VerifyResult]) -> str:
    suites = ET.Element("testsuites", name="apcheck")
    for res in results:
        failures = sum(1 for p in res.properties if p.is_failure)
        suite = ET.SubElement(suites, "testsuite", name=res.model, tests=str(len(res.properties)),
                              failures=str(failures), time=f"{res.stats.seconds:.3f}")
        for p in res.properties:
            case = ET.SubElement(suite, "testcase", classname=res.model, name=p.name)
            if p.is_failure:
                expected = f" (expected {p.expected})" if p.judged else ""
                f = ET.SubElement(case, "failure", message=f"{p.verdict}{expected}: {p.message}", type=p.verdict)
                f.text = render_property(p)
            elif p.verdict == Verdict.UNKNOWN:
                ET.SubElement(case, "skipped", message=p.message)
            out = ET.SubElement(case, "system-out")
            out.text = f"{p.verdict}: {p.message} [{p.method}]"
            if p.induction is not None:
                out.text += f"\nevery size (operations atomic): {p.induction.status}: {p.induction.message}"
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
