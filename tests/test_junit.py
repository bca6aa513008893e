"""JUnit XML output: validates against the JUnit schema CI systems read, and maps verdicts to outcomes."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from importlib import resources

import pytest

from deepscan.results import ScanResult, WindowScore
from deepscan.writers import write_junit

xmlschema = pytest.importorskip("xmlschema", reason="xmlschema is in the dev extra: pip install -e '.[dev]'")

DETECTOR = {"name": "demo", "sha256": "ab" * 32, "trained_on": "synthetic", "synthetic": True,
            "label": "DEMO detector: verdicts are a demonstration"}


@pytest.fixture(scope="module")
def schema():
    xsd = resources.files("deepscan.writers").joinpath("junit.xsd")
    with resources.as_file(xsd) as path:
        return xmlschema.XMLSchema(str(path))


def _result(path: str, verdict: str | None, p_fake: float | None = None, status: str = "ok",
            reason: str | None = None) -> ScanResult:
    if status == "error":
        return ScanResult.error(path, reason or "decode error", "the bytes are not a video",
                                detector=dict(DETECTOR), elapsed_s=0.01)
    windows = [WindowScore(index=0, start_s=0.0, end_s=4.0, p_fake=p_fake, logit=0.0,
                           modalities={"image": p_fake, "audio": None, "video": None}, frames=32,
                           frames_with_face=30)]
    return ScanResult(path=path, status="ok", reason=reason, verdict=verdict, p_fake=p_fake, threshold=0.5,
                      top_modality="image", windows=windows, detector=dict(DETECTOR), elapsed_s=1.25)


def _mixed() -> list[ScanResult]:
    return [
        _result("clips/real_one.mp4", "real", 0.1),
        _result("clips/fake <one> & \"two\".mp4", "fake", 0.93),
        _result("clips/名前_é.png", "unknown", 0.5, reason="no face"),
        _result("clips/broken.mp4", None, status="error", reason="truncated or corrupt"),
        _result("clips/ctrl\x01name\udcff.wav", "real", 0.2),
        _result("clips/fake_two.wav", "fake", 0.7),
    ]


def _junit(results) -> str:
    stream = io.StringIO()
    write_junit(results, stream)
    return stream.getvalue()


def test_junit_validates_against_schema(schema):
    text = _junit(_mixed())
    errors = [f"{e.reason} at {e.path}" for e in schema.iter_errors(text)]
    assert errors == []
    text.encode("utf-8")  # no lone surrogates left: the file can be written as UTF-8


def test_schema_rejects_what_ci_systems_reject(schema):
    # the schema is not vacuous: a testcase without a name, a non-numeric count, and "skipped" on
    # <testsuites> (absent from Jenkins' junit-10.xsd) are refused
    bad = [
        '<testsuites><testsuite tests="1"><testcase classname="x"/></testsuite></testsuites>',
        '<testsuites><testsuite tests="one"/></testsuites>',
        '<testsuites skipped="1"><testsuite tests="0"/></testsuites>',
        '<testsuites><testsuite tests="1"><testcase name="a"><flaky/></testcase></testsuite></testsuites>',
    ]
    for text in bad:
        assert not schema.is_valid(text), text
    assert schema.is_valid('<testsuites><testsuite tests="1"><testcase name="a" time="0.5"/></testsuite></testsuites>')


def test_outcomes_fake_and_error_fail_unknown_skips_real_passes():
    results = _mixed()
    root = ET.fromstring(_junit(results))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(results)
    outcome = {}
    for case in cases:
        kinds = [child.tag for child in case if child.tag in ("failure", "skipped", "error")]
        assert len(kinds) <= 1
        outcome[case.get("name")] = kinds[0] if kinds else "pass"
    expected = {"real": "pass", "fake": "failure", "unknown": "skipped", None: "failure"}
    for r in results:
        name = r.path.replace("\x01", "\\x01").replace("\udcff", "\\udcff")
        assert outcome[name] == expected[r.verdict], r.path
    assert suite.get("tests") == str(len(results))
    assert suite.get("failures") == "3"  # two fakes and one scan error
    assert suite.get("skipped") == "1"
    assert root.get("tests") == "6" and root.get("failures") == "3"


def test_failure_messages_say_why():
    root = ET.fromstring(_junit(_mixed()))
    by_name = {c.get("name"): c for c in root.iter("testcase")}
    fake = by_name['clips/fake <one> & "two".mp4'].find("failure")
    assert fake.get("type") == "fake" and "0.930" in fake.get("message") and "0.500" in fake.get("message")
    error = by_name["clips/broken.mp4"].find("failure")
    assert error.get("type") == "error" and "truncated or corrupt" in error.get("message")
    assert "not a video" in error.text
    assert by_name["clips/名前_é.png"].find("skipped").get("message") == "no face"
    properties = root.find("testsuite/properties")
    assert [p.get("value") for p in properties] == [DETECTOR["label"]]


def test_empty_results_still_validate(schema):
    text = _junit([])
    assert schema.is_valid(text)
    assert ET.fromstring(text).find("testsuite").get("tests") == "0"


@pytest.mark.slow
def test_cli_check_junit_validates(schema, tmp_path):
    """``deepscan check --format junit`` end to end on generated media, with the debug encoders."""
    from typer.testing import CliRunner

    from deepscan import synth
    from deepscan.cli import app

    helpers = pytest.importorskip("tests.helpers")
    detector = helpers.make_detector(tmp_path / "demo.safetensors")
    media = tmp_path / "media"
    media.mkdir()
    synth.write_image(media / "face.png", seed=4)
    (media / "empty.mp4").write_bytes(b"")
    out = tmp_path / "junit.xml"
    html = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["check", str(media / "face.png"), str(media / "empty.mp4"), "--encoders", "debug", "--detector", str(detector),
                                      "--precision", "fp32", "--workers", "0", "--format", "junit", "--output", str(out),
                                      "--html", str(html), "--quiet"])
    assert result.exit_code == 3, result.output  # one file could not be scanned
    text = out.read_text(encoding="utf-8")
    assert [f"{e.reason}" for e in schema.iter_errors(text)] == []
    cases = ET.fromstring(text).findall("testsuite/testcase")
    assert sorted(c.get("name").rsplit("/", 1)[-1] for c in cases) == ["empty.mp4", "face.png"]
    assert html.read_text(encoding="utf-8").count('<article class="card') == 2


def _fusion_fake(path: str = "clips/lipsync.mp4") -> ScanResult:
    """A fake of the cue-fusion detector with the detector block a real scan carries (its provenance, ~6 KB)."""
    result = _result(path, "fake", 0.93, reason="no face")
    result.windows = result.windows * 40  # a long file
    result.cues = {"av_sync": {"p_fake": 0.91, "lag_ms": -130.0, "windows": 40},
                   "face_forgery": {"p_fake": 0.85, "weights_sha256": "14" * 32, "trained_on": "harvest"},
                   "aasist": {"p_fake": 0.2, "weights_sha256": "51" * 32, "trained_on": "ASVspoof 2019 LA"},
                   "synthetic_speech": {"p_fake": 0.1}, "meso4": {"p_fake": None, "reason": "no face"}}
    result.modalities = {"image": {"present": True, "p_fake": 0.85}, "audio": {"present": True, "p_fake": 0.15},
                         "video": {"present": True, "p_fake": 0.91}}
    result.top_modality = "video"
    result.detector = {**DETECTOR, "kind": "cue-fusion", "label": None, "name": "default",
                       "metrics": {k: {"auc": 0.7, "eer": 0.3, "n_real": 120, "n_fake": 120,
                                       "confusion": list(range(50))} for k in ("audio", "image", "video")},
                       "limits": ["misses vocoder copies of real speech"] * 30, "summary": "cue fusion " * 100}
    return result


def test_failure_body_is_a_few_lines_not_the_record():
    result = _fusion_fake()
    root = ET.fromstring(_junit([result]))
    failure = root.find("testsuite/testcase/failure")
    body = failure.text
    assert len(body.encode("utf-8")) < 600, body
    lines = body.splitlines()
    assert 3 <= len(lines) <= 6, body
    assert lines[0] == "fake: p_fake 0.930 >= threshold 0.500, margin +0.430"
    assert "modalities: image 0.850, audio 0.150, video 0.910" in lines
    assert "top cues: av_sync 0.910, face_forgery 0.850, aasist 0.200 (+1 more)" in lines
    assert "reason: no face" in lines and f"detector: default ({'ab' * 6})" in lines
    assert "windows" not in body and "metrics" not in body and "{" not in body  # no record dumped as JSON


def test_uncertain_is_visible_but_not_a_failure(schema):
    uncertain = _result("clips/close_call.mp4", "uncertain", 0.49)
    results = [uncertain, _result("clips/fake.mp4", "fake", 0.9), _result("clips/real.mp4", "real", 0.1)]
    text = _junit(results)
    assert [f"{e.reason}" for e in schema.iter_errors(text)] == []
    suite = ET.fromstring(text).find("testsuite")
    case = next(c for c in suite.iter("testcase") if c.get("name") == "clips/close_call.mp4")
    assert [child.tag for child in case] == ["system-out"]  # passes: no failure, not skipped
    out = case.find("system-out").text
    assert out.startswith("UNCERTAIN") and "not a failure" in out and "margin -0.010" in out
    assert suite.get("failures") == "1" and suite.get("skipped") == "0" and suite.get("tests") == "3"
    real = next(c for c in suite.iter("testcase") if c.get("name") == "clips/real.mp4")
    assert real.find("system-out").text.startswith("real: p_fake 0.100 < threshold 0.500")
