"""JUnit XML output, so that CI systems show one test case per scanned file.

The layout follows the JUnit XML schema as CI systems read it (Jenkins, GitLab, GitHub Actions test
reporters; https://github.com/testmoapp/junitxml): ``<testsuites>`` holding one ``<testsuite>``
whose ``<testcase>`` elements are the files. A fake verdict or a scan error is a ``<failure>``; an
``unknown`` verdict is ``<skipped>`` with its reason; a real verdict passes, and so does an
``uncertain`` one (too close to the threshold to call), whose ``<system-out>`` starts with
``UNCERTAIN`` so that it shows on the dashboards that list a test's output. What a case says about
its file is a few lines (:func:`case_lines`): verdict, ``p_fake`` against the threshold and the
margin, the modality scores, the top cues, the reason and the detector; the full record is in the
JSON output. The output validates against ``deepscan/writers/junit.xsd`` (the element model of
Jenkins' junit-10.xsd).
"""

from __future__ import annotations

import math
import re
import socket
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from typing import IO, Sequence

from deepscan.results import VERDICT_FAKE, VERDICT_UNCERTAIN, VERDICT_UNKNOWN, ScanResult, summarize

SUITE_NAME = "deepscan"
TOP_CUES = 3  # cues named in a case's lines, highest score first


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
            continue
        lines = "\n".join(case_lines(r))
        if r.verdict == VERDICT_FAKE:
            failure = ET.SubElement(case, "failure", {
                "message": f"fake: p_fake {_num(r.p_fake)} >= threshold {_num(r.threshold)}"
                           + (f" ({r.top_modality})" if r.top_modality else ""),
                "type": "fake"})
            failure.text = lines
            continue
        if r.verdict == VERDICT_UNKNOWN:
            ET.SubElement(case, "skipped", {"message": r.reason or "unknown"})
        ET.SubElement(case, "system-out").text = lines
    for element in root.iter():
        element.text = _xml_text(element.text)
        for key, value in element.attrib.items():
            element.attrib[key] = _xml_text(value)
    ET.indent(root)
    return ET.ElementTree(root)


def case_lines(result: ScanResult) -> list[str]:
    """What a test case says about a scanned file, in a few lines.

    For example::

        fake: p_fake 0.930 >= threshold 0.500, margin +0.430
        modalities: image 0.980, audio 0.880
        top cues: av_sync 0.910, face_forgery 0.850, aasist 0.200 (+1 more)
        reason: no face
        detector: default (3e1ba0144769)

    An ``uncertain`` verdict's first line starts with ``UNCERTAIN`` and says it is not a failure.

    Parameters
    ----------
    result : ScanResult
        A scanned file (``status == "ok"``).

    Returns
    -------
    list of str
    """
    verdict = result.verdict or VERDICT_UNKNOWN
    margin = result.margin
    score = f"p_fake {_num(result.p_fake)}"
    if _is_number(result.p_fake) and _is_number(result.threshold):
        score += f" {'>=' if result.p_fake >= result.threshold else '<'} threshold {_num(result.threshold)}"
    elif _is_number(result.threshold):
        score += f", threshold {_num(result.threshold)}"
    if margin is not None:
        score += f", margin {margin:+.3f}"
    band = result.uncertain_band
    if verdict == VERDICT_UNCERTAIN:
        where = f" (band {_num(band[0])}-{_num(band[1])})" if band and len(band) == 2 else ""
        lines = [f"UNCERTAIN, not a failure: too close to the threshold to call, look at it yourself{where}",
                 score]
    else:
        lines = [f"{verdict}: {score}"]
    modalities = [(m, (info or {}).get("p_fake")) for m, info in (result.modalities or {}).items()]
    scored = [f"{m} {_num(p)}" for m, p in modalities if _is_number(p)]
    if scored:
        lines.append("modalities: " + ", ".join(scored))
    cues = sorted(((n, c.get("p_fake")) for n, c in (result.cues or {}).items()
                   if isinstance(c, dict) and _is_number(c.get("p_fake"))), key=lambda item: -item[1])
    if cues:
        more = f" (+{len(cues) - TOP_CUES} more)" if len(cues) > TOP_CUES else ""
        lines.append("top cues: " + ", ".join(f"{n} {_num(p)}" for n, p in cues[:TOP_CUES]) + more)
    if result.reason:
        lines.append(f"reason: {result.reason}")
    detector = result.detector or {}
    label = detector.get("label") or detector.get("name")
    if label:
        sha = detector.get("sha256") or ""
        lines.append(f"detector: {label}" + (f" ({sha[:12]})" if sha else ""))
    return lines


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value) -> str:
    return f"{value:.3f}" if _is_number(value) else "–"


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
