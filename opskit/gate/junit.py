"""JUnit XML for CI systems: one testcase per criterion and per baseline comparison.

Written to satisfy the commonly used Jenkins JUnit schema and the stricter Ant one it extends
(tests/gate/junit.xsd): a testsuite carries properties, system-out and system-err, and a
failure carries measured vs limit in its message. An inconclusive comparison or a skipped SLO is
<skipped>; a criterion that could not be judged is <error>, so it can never look green.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET

from opskit.gate.report import GateReport, allowed_text, change_text, value_text


def render_junit(report: GateReport) -> str:
    n = report.counts()
    tests = len(report.verdicts) + len(report.comparisons) + (1 if report.aborted or report.error else 0)
    failures, errors = n["fail"], n["error"] + (1 if report.error else 0)
    skipped = n["skipped"] + n["inconclusive"]
    time = f"{report.duration_s:.3f}" if report.duration_s is not None else "0"
    root = ET.Element("testsuites", name="opskit gate", tests=str(tests), failures=str(failures),
                      errors=str(errors), time=time)
    suite = ET.SubElement(root, "testsuite", {
        "name": f"opskit gate: {report.scenario}", "tests": str(tests), "failures": str(failures),
        "errors": str(errors), "skipped": str(skipped), "time": time,
        "timestamp": _timestamp(report.started_at), "hostname": _hostname(), "id": "0", "package": "opskit.gate",
    })
    props = ET.SubElement(suite, "properties")
    for name, value in (("scenario", report.scenario), ("model", report.model), ("results", report.results),
                        ("baseline", report.baseline or ""), ("tolerance", f"{report.tolerance_pct:g}%"),
                        ("status", report.status)):
        ET.SubElement(props, "property", name=name, value=value)

    if report.error:
        case = _case(suite, "opskit.gate.results", "results can be judged")
        ET.SubElement(case, "error", message=report.error, type="unreadable").text = report.error
    if report.aborted:
        case = _case(suite, "opskit.gate.criteria", "abort_on_fail")
        ET.SubElement(case, "failure", message=f"the run was aborted early: {report.aborted}",
                      type="abort").text = report.aborted
    for v in report.verdicts:
        case = _case(suite, "opskit.gate.criteria", v.criterion)
        message = f"measured {v.measured_text}, limit {v.limit}"
        body = f"{v.criterion}\nmeasured: {v.measured_text}\nlimit: {v.limit}\nsource: {v.source}"
        if v.status == "fail":
            ET.SubElement(case, "failure", message=message, type="criterion").text = body
        elif v.status == "error":
            ET.SubElement(case, "error", message=v.detail, type="no-data").text = f"{body}\n{v.detail}"
        elif v.status == "skipped":
            ET.SubElement(case, "skipped", message=v.detail)
    for c in report.comparisons:
        case = _case(suite, "opskit.gate.baseline", c.name)
        message = (f"baseline {value_text(c.metric, c.baseline)}, current {value_text(c.metric, c.current)}, "
                   f"change {change_text(c)}, allowed {allowed_text(c)}")
        if c.status == "fail":
            ET.SubElement(case, "failure", message=message, type="regression").text = message
        elif c.status == "inconclusive":
            ET.SubElement(case, "skipped", message=f"inconclusive: {c.detail or message}")
    ET.SubElement(suite, "system-out").text = "\n".join([report.summary(), *report.reasons(), *report.notes])
    ET.SubElement(suite, "system-err").text = ""
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _case(suite: ET.Element, classname: str, name: str) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")


def _timestamp(started_at: str | None) -> str:
    """The run's start, as the Ant schema wants it: ISO 8601 without a zone (it is UTC)."""
    match = re.match(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", started_at or "")
    return match.group(0) if match else "1970-01-01T00:00:00"


def _hostname() -> str:
    return socket.gethostname() or "localhost"
