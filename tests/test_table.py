"""The terminal table in 80 columns: names from the scanned folder, cut in the middle, compact cues, no wrapped words."""

from __future__ import annotations

import io
import os
import re

import pytest
from rich.console import Console

from deepscan.results import ScanResult
from deepscan.writers import render_table
from deepscan.writers.paths import ELLIPSIS, display_root, middle_ellipsis, relative_to
from deepscan.writers.table import CUE_HEADERS, cue_score
from tests.conftest import MODELS, SAMPLES, media_files
from tests.helpers import make_detector

CUES = ("aasist", "meso4", "av_sync", "synthetic_speech", "generated_image", "face_forgery")


@pytest.fixture(scope="module")
def sample_results(tmp_path_factory):
    """One scan of every file of ../shared/samples (debug encoders, experts on), shared by the tests here."""
    if SAMPLES is None or MODELS is None:
        pytest.skip("../shared/samples and ../shared/models are not present")
    from deepscan.scanner import Scanner

    detector = make_detector(tmp_path_factory.mktemp("table") / "demo.safetensors")
    with Scanner(detector=detector, encoders="debug", experts="auto", models_dir=MODELS, workers=0) as scanner:
        return list(scanner.scan([str(p) for p in media_files(SAMPLES)], recursive=False))


def _render(results, width: int = 80, **kwargs) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(render_table(results, **kwargs))
    return console.export_text()


def _whole(word: str, text: str) -> bool:
    """Whether ``word`` appears in ``text`` bounded by white space or a line end (not split over lines)."""
    return re.search(r"(?<!\S)" + re.escape(word) + r"(?!\S)", text) is not None


def _assert_fits(text: str, width: int) -> None:
    lines = text.splitlines()
    assert lines and max(len(line) for line in lines) <= width, "\n" + text


def _shows(cell: str, name: str) -> bool:
    """Whether a file cell is ``name`` whole or cut in the middle with the ellipsis (head and tail kept)."""
    if cell == name:
        return True
    if cell.count(ELLIPSIS) != 1:
        return False
    head, tail = cell.split(ELLIPSIS)
    return name.startswith(head) and name.endswith(tail) and len(head) >= 3 and len(tail) >= 3


def _row_line(text: str, name: str) -> str:
    found = [line for line in text.splitlines() if line.split() and _shows(line.split()[0], name)]
    assert len(found) == 1, f"{name!r} is not on exactly one line:\n{text}"
    return found[0]


def test_shared_samples_in_80_columns(sample_results):
    text = _render(sample_results)
    _assert_fits(text, 80)
    folder = os.path.relpath(str(SAMPLES), os.getcwd())
    assert f"in {folder}{os.sep}" in text.splitlines()[0]  # the scanned folder is named once, in the title
    for r in sample_results:
        name = os.path.basename(r.path)
        line = _row_line(text, name)  # the name, relative (whole or cut in the middle), and its row on one line
        assert r.verdict in line.split() and f"{r.p_fake:.3f}" in line
        for cue in (r.cues or {}).values():
            if cue.get("p_fake") is not None:
                assert cue_score(cue["p_fake"]) in line.split()
    # a cue that does not apply is a dash pointing at its reason under the table
    wav = _row_line(text, "real_speech_22k_mono.wav")
    dash = next(tok for tok in wav.split() if tok.startswith("–"))
    reason = next(r for r in sample_results if r.path.endswith("real_speech_22k_mono.wav")).cues["meso4"]["reason"]
    assert f"{dash} {reason}" in text
    header = text.splitlines()[1].split()
    assert header[:3] == ["file", "verdict", "p_fake"]
    scored = [c for c in CUES if any((r.cues.get(c) or {}).get("p_fake") is not None for r in sample_results)]
    assert [h for h in header if h in CUE_HEADERS.values()] == [CUE_HEADERS[c] for c in scored]
    for cue in set(CUES) - set(scored):  # a cue that scored no file has a line, not a column
        if any(cue in r.cues for r in sample_results):
            assert cue in text.replace("\n", " ")
    # narrower still: names are cut in the middle, nothing else moves
    narrow = _render(sample_results, width=60)
    _assert_fits(narrow, 60)
    assert ELLIPSIS in narrow
    for r in sample_results:
        assert any(line.split()[0].endswith(os.path.splitext(r.path)[1]) for line in narrow.splitlines()
                   if line.startswith(os.path.basename(r.path)[:5]))


def _synthetic(root: str) -> list[ScanResult]:
    long_dir = os.path.join(root, "interviews", "2024-03-campaign-trail", "raw footage from the second camera")
    reason = "no cue applies: no audio stream; no face found in any sampled frame"
    cues = {"aasist": {"p_fake": 0.934}, "meso4": {"p_fake": None, "reason": "no face"},
            "av_sync": {"p_fake": 0.071, "lag_ms": 120.0}, "synthetic_speech": {"p_fake": 0.999},
            "generated_image": {"p_fake": None, "reason": "weights not shipped in this installation"},
            "face_forgery": {"p_fake": None, "reason": "no face"}}
    ok = dict(status="ok", threshold=0.62, faces={"frames": 40, "frames_with_face": 31},
              detector={"label": "DEMO detector trained on synthetic data: verdicts are a demonstration"})
    return [
        ScanResult(path=os.path.join(long_dir, "speaker_interview_take_03_final_FINAL_v2_export.mp4"),
                   verdict="fake", p_fake=0.9134, cues=cues, **ok),
        ScanResult(path=os.path.join(root, "a.wav"), verdict="real", p_fake=0.02,
                   cues={**cues, "aasist": {"p_fake": 0.004}}, **ok),
        ScanResult(path=os.path.join(root, "still.png"), verdict="unknown", p_fake=None, reason=reason,
                   cues={n: {"p_fake": None, "reason": "no face"} for n in CUES}, **ok),
        ScanResult.error(os.path.join(long_dir, "broken_upload_from_the_field_recorder.mp4"),
                         "truncated or corrupt: the moov atom is missing"),
    ]


@pytest.mark.parametrize("width", [80, 100, 64])
def test_synthetic_results_never_wrap_a_word(tmp_path, width):
    results = _synthetic(str(tmp_path))
    text = _render(results, width=width, cwd=str(tmp_path))
    _assert_fits(text, width)
    lines = text.splitlines()
    assert lines[0].startswith("deepscan check") and "in " not in lines[0]  # the folder is the working directory
    long_name = relative_to(results[0].path, str(tmp_path))
    shown = next(tok for line in lines for tok in line.split() if ELLIPSIS in tok and tok.endswith("v2_export.mp4"))
    head, tail = shown.split(ELLIPSIS)
    assert long_name.startswith(head) and long_name.endswith(tail) and head.startswith("interviews")
    for r in results:  # every word of every note is whole on some line
        for word in (r.reason or "").split():
            assert _whole(word, text), (word, text)
    for cell in ("fake", "real", "unknown", "error", "0.913", ".93", "1.0", ".07", ".00"):
        assert _whole(cell, text), cell
    assert "generated_image: no face; weights not shipped in this installation" in " ".join(text.split())
    assert "thr" not in lines[1].split() and "threshold 0.620" in text  # one threshold: said once
    assert lines[1].split()[:4] == ["file", "verdict", "p_fake", "margin"]
    assert _whole("+0.29", text) and _whole("-0.60", text)  # each file's margin to its threshold, signed
    assert "real: no sign of manipulation found by these cues" in " ".join(text.split())
    for line in lines:  # no line is one stray fragment of a wrapped cell
        tokens = line.split()
        assert not (len(tokens) == 1 and len(tokens[0]) <= 3 and tokens[0] not in ("–",)), (line, text)


def test_names_relative_to_the_scanned_folder_outside_the_working_directory(tmp_path):
    results = _synthetic(str(tmp_path / "scans"))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    text = _render(results, width=120, cwd=str(cwd))
    assert f"in ..{os.sep}scans{os.sep}" in text.splitlines()[0]
    assert _whole("a.wav", text) and _whole("still.png", text)
    assert str(tmp_path) not in text


def test_path_helpers():
    assert middle_ellipsis("abcdefghij", 10) == "abcdefghij"
    assert middle_ellipsis("abcdefghij", 7) == "abc…hij"
    assert middle_ellipsis("名前名前名前.mp4", 8) == "名….mp4"  # wide characters take two cells
    assert display_root(["/data/x/a.mp4", "/data/x/y/b.mp4"], cwd="/home") == "/data/x"
    assert display_root(["/data/x/a.mp4", "/data/x/y/b.mp4"], cwd="/data") == "/data"
    assert display_root(["/a.mp4", "/b/c.mp4"], cwd="/home") is None
    assert display_root(["s3://bucket/a.mp4"]) is None
    # relative paths stay relative: results read back need not be in the directory the scan ran in
    assert display_root(["rw/a/x.mp3", "rw/b/y.mp3"], cwd="/elsewhere") == "rw"
    assert display_root(["a.mp3", "b/c.mp3"]) is None
    assert relative_to("s3://bucket/a.mp4", "/data") == "s3://bucket/a.mp4"
    assert cue_score(0.0712) == ".07" and cue_score(0.999) == "1.0" and cue_score(0.5) == ".50"


def test_counts_line_says_one_file_and_one_error():
    from deepscan.results import counts_line

    assert counts_line({"files": 1, "fake": 0, "uncertain": 0, "real": 1, "unknown": 0, "errors": 0}) == \
        "1 file, 0 fake, 0 uncertain, 1 real, 0 unknown, 0 errors"
    assert counts_line({"files": 2, "fake": 0, "uncertain": 1, "real": 0, "unknown": 0, "errors": 1}) == \
        "2 files, 0 fake, 1 uncertain, 0 real, 0 unknown, 1 error"
