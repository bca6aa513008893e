"""JUnit XML output, so that CI systems show one test case per scanned file.

The layout follows the JUnit XML schema as CI systems read it (Jenkins, GitLab, GitHub Actions test
reporters; https://github.com/testmoapp/junitxml): ``<testsuites>`` holding one ``<testsuite>``
whose ``<testcase>`` elements are the files. A fake verdict or a scan error is a ``<failure>``; an
``unknown`` verdict is ``<skipped>`` with its reason; a real verdict passes. The output validates
against ``deepscan/writers/junit.xsd`` (the element model of Jenkins' junit-10.xsd).
"""

from __future__ import annotations

import json
import re
import socket
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from typing import IO, Sequence

from deepscan.results import ScanResult, summarize

SUITE_NAME = "deepscan"


def junit_tree(results: Sequence[ScanResult], name: str = SUITE_NAME) -> ET.ElementTree:
    """Build the JUnit XML tree of ``results``.

    Parameters
    ----------
    results : sequence of ScanResult
    name : str
        Test suite name.

    Returns
    -------
    xml.etree.ElementTree.ElementTree
    """
    counts = summarize(results)
    failures = counts["fake"] + counts["errors"]
    total_time = sum(r.elapsed_s or 0.0 for r in results)
    attrs = {"name": name, "tests": str(counts["files"]), "failures": str(failures), "errors": "0",
             "skipped": str(counts["unknown"]), "time": f"{total_time:.3f}"}
    # junit-10.xsd (Jenkins) has no "skipped" on <testsuites>: the count lives on <testsuite> only
    root = ET.Element("testsuites", {k: v for k, v in attrs.items() if k != "skipped"})
    suite = ET.SubElement(root, "testsuite", {
        **attrs, "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        "hostname": socket.gethostname()})
    labels = sorted({r.detector.get("label") for r in results if r.detector.get("label")})
    if labels:
        properties = ET.SubElement(suite, "properties")
        for label in labels:
            ET.SubElement(properties, "property", {"name": "detector", "value": label})
    for r in results:
        case = ET.SubElement(suite, "testcase", {"classname": f"{name}.check", "name": r.path,
                                                 "time": f"{r.elapsed_s or 0.0:.3f}"})
        if r.status != "ok":
            failure = ET.SubElement(case, "failure", {"message": f"scan error: {r.reason}", "type": "error"})
            failure.text = (r.media or {}).get("error") or r.reason or ""
        elif r.verdict == "fake":
            failure = ET.SubElement(case, "failure", {
                "message": f"fake: p_fake {r.p_fake:.3f} >= threshold {r.threshold:.3f}"
                           + (f" ({r.top_modality})" if r.top_modality else ""),
                "type": "fake"})
            failure.text = json.dumps({"windows": [w if isinstance(w, dict) else w.__dict__ for w in r.windows],
                                       "detector": r.detector}, default=str)
        elif r.verdict == "unknown":
            ET.SubElement(case, "skipped", {"message": r.reason or "unknown"})
        detail = f"verdict={r.verdict} p_fake={r.p_fake} detector={r.detector.get('label') or r.detector.get('name')}"
        ET.SubElement(case, "system-out").text = detail
    for element in root.iter():
        element.text = _xml_text(element.text)
        for key, value in element.attrib.items():
            element.attrib[key] = _xml_text(value)
    ET.indent(root)
    return ET.ElementTree(root)


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str | None) -> str | None:
    """Characters XML 1.0 cannot carry (controls, lone surrogates from undecodable file names) as ``\\xNN``.

    ElementTree writes them as they are, which makes the whole document ill-formed and unreadable
    by every CI system.
    """
    if text is None:
        return None
    return _NOT_XML.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)


def write_junit(results: Sequence[ScanResult], stream: IO[str], name: str = SUITE_NAME) -> None:
    """Write ``results`` as JUnit XML to a text stream (UTF-8 declaration included)."""
    tree = junit_tree(results, name)
    stream.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    stream.write(ET.tostring(tree.getroot(), encoding="unicode"))
    stream.write("\n")
