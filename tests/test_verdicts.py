"""The verdict scale: ``uncertain`` within a band around the threshold, the band in the checkpoint, and the
exit codes, records and summaries that carry it."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from typer.testing import CliRunner

from deepscan import synth
from deepscan.cli import app
from deepscan.cli.common import EXIT_FAKE, EXIT_OK, EXIT_USAGE
from deepscan.model.fusion import FusionDetector, KindModel
from deepscan.results import (
    MIN_UNCERTAIN_MARGIN, ScanResult, counts_line, decide, summarize, uncertain_band,
)
from deepscan.training.fusion import BAND_PRECISION, uncertain_band_from_oof

runner = CliRunner()


def test_a_result_near_its_threshold_is_uncertain_not_real_or_fake():
    assert MIN_UNCERTAIN_MARGIN == 0.05
    threshold = 0.665
    assert decide(0.664, threshold) == "uncertain"  # 0.001 below: not "real"
    assert decide(0.70, threshold) == "uncertain"  # 0.035 above: not "fake"
    assert decide(threshold - 0.049, threshold) == "uncertain" and decide(threshold + 0.049, threshold) == "uncertain"
    assert decide(threshold - 0.051, threshold) == "real" and decide(threshold + 0.051, threshold) == "fake"
    # a checkpoint's wider band holds; a narrower one is widened to the minimum
    assert decide(0.55, threshold, (0.5, 0.7)) == "uncertain" and decide(0.49, threshold, (0.5, 0.7)) == "real"
    assert decide(0.71, threshold, (0.5, 0.7)) == "uncertain"  # 0.7 < the minimum's 0.715
    assert uncertain_band(threshold, (0.66, 0.67)) == pytest.approx((0.615, 0.715))
    assert uncertain_band(0.02) == pytest.approx((0.0, 0.07))  # kept within [0, 1]


def test_band_from_out_of_fold_scores_follows_the_local_precision_and_keeps_the_minimum():
    rng = np.random.default_rng(0)
    # well separated: the calls are reliable right next to the threshold, so the band is the minimum
    labels = np.array([0] * 200 + [1] * 200)
    scores = np.concatenate([rng.uniform(0.0, 0.3, 200), rng.uniform(0.7, 1.0, 200)])
    band = uncertain_band_from_oof(labels, scores, 0.5)
    assert band["band"] == pytest.approx([0.45, 0.55], abs=1e-4) and band["oof_in_band"] == {"real": 0, "fake": 0}
    # overlapping classes: the band is wider where real and fake files mix
    scores = np.concatenate([rng.uniform(0.0, 0.6, 200), rng.uniform(0.4, 1.0, 200)])
    band = uncertain_band_from_oof(labels, scores, 0.5)
    lo, hi = band["band"]
    assert lo < 0.45 and hi > 0.55 and 0.3 < lo and hi < 0.7
    assert band["oof_in_band"]["real"] > 0 and band["oof_in_band"]["fake"] > 0
    assert band["precision"] == BAND_PRECISION and "0.05" in band["rule"]
    # a call that never reaches the precision: the band runs to the end
    scores = rng.uniform(0.0, 1.0, 400)
    assert uncertain_band_from_oof(labels, scores, 0.5)["band"] == [0.0, 1.0]


def test_fitting_the_fusion_records_each_kinds_band_from_its_out_of_fold_scores(tmp_path):
    from deepscan.labelled import LabelledFile
    from deepscan.training.fusion import fit_fusion

    rng = np.random.default_rng(0)
    rows = []
    for i in range(120):
        label = i % 2
        p = float(np.clip(0.5 + (0.2 if label else -0.2) + rng.normal(0, 0.2), 0.01, 0.99))
        f = LabelledFile(None, "audio", label, "m", f"sys{i % 6}", f"page{i % 10}", f"pair{i}", f"{i:064x}")
        rows.append((f, {"aasist": {"p_fake": p}}, "audio"))
    models, oof = fit_fusion(rows, seed=0)
    model = models["audio"]
    again = uncertain_band_from_oof(oof["audio"]["labels"], oof["audio"]["p_fake"], model.threshold,
                                    oof["audio"]["weights"])
    assert model.band == again["band"] and model.band_detail["oof_files"] == 120
    assert model.band[0] <= model.threshold - 0.05 and model.band[1] >= model.threshold + 0.05
    loaded = FusionDetector.load(FusionDetector(models, {}).save(tmp_path / "fit.safetensors"))
    assert loaded.kinds["audio"].band == model.band


def test_the_band_recorded_in_a_fusion_checkpoint_is_read_and_never_narrower_than_the_minimum(tmp_path):
    models = {"audio": KindModel(["aasist"], np.array([1.0, 0.0]), 0.0, 0.6, {}, [0.4, 0.62], {"precision": 0.8}),
              "image": KindModel(["generated_image"], np.array([1.0, 0.0]), 0.0, 0.5)}
    path = FusionDetector(models, {}).save(tmp_path / "f.safetensors")
    loaded = FusionDetector.load(path)
    assert loaded.kinds["audio"].band == [0.4, 0.62] and loaded.kinds["audio"].band_detail == {"precision": 0.8}
    assert loaded.band("audio") == pytest.approx((0.4, 0.65))  # above: the recorded edge is widened to 0.05
    assert loaded.band("image") == pytest.approx((0.45, 0.55))  # no band recorded: the minimum
    assert loaded.band("video") == pytest.approx((0.45, 0.55))  # no model for the kind: threshold 0.5
    bad = FusionDetector({"audio": KindModel(["aasist"], np.array([1.0, 0.0]), 0.0, 0.6, {}, [0.7, 0.2])}, {})
    with pytest.raises(Exception, match="uncertain_band"):
        FusionDetector.load(bad.save(tmp_path / "bad.safetensors"))


def test_records_and_counts_carry_uncertain_and_the_margin():
    result = ScanResult(path="a.mp4", status="ok", verdict=decide(0.63, 0.6, [0.5, 0.7]), p_fake=0.63, threshold=0.6,
                        uncertain_band=[0.5, 0.7])
    record = result.to_dict()
    assert record["verdict"] == "uncertain" and record["margin"] == pytest.approx(0.03)
    assert record["uncertain_band"] == [0.5, 0.7]
    keys = list(record)
    assert keys.index("margin") == keys.index("threshold") + 1
    again = ScanResult.from_dict(json.loads(json.dumps(record)))
    assert again.verdict == "uncertain" and again.margin == pytest.approx(0.03) and again.uncertain_band == [0.5, 0.7]
    fake = ScanResult(path="b.mp4", status="ok", verdict="fake", p_fake=0.9, threshold=0.6)
    counts = summarize([result, fake, ScanResult.error("c.mp4", "empty file")])
    assert counts == {"files": 3, "fake": 1, "uncertain": 1, "real": 0, "unknown": 0, "errors": 1}
    assert counts_line(counts) == "3 files, 1 fake, 1 uncertain, 0 real, 0 unknown, 1 error"


def test_the_table_shows_margins_bands_and_what_real_means(tmp_path):
    from rich.console import Console

    from deepscan.writers import render_table

    band = [0.545, 0.725]
    rows = [ScanResult(path=str(tmp_path / name), status="ok", verdict=decide(p, 0.665, band), p_fake=p, threshold=0.665,
                       uncertain_band=band, media={"kind": "video"})
            for name, p in (("film.mp4", 0.664), ("swap.mp4", 0.9), ("talk.mp4", 0.2))]
    console = Console(width=80, record=True, file=io.StringIO(), color_system=None)
    console.print(render_table(rows, cwd=str(tmp_path)))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    film = next(line for line in text.splitlines() if line.startswith("film.mp4"))
    assert film.split()[1:4] == ["uncertain", "0.664", "-0.00"]
    assert next(line for line in text.splitlines() if line.startswith("swap.mp4")).split()[1:4] == ["fake", "0.900", "+0.23"]
    flat = " ".join(text.split())
    assert "1 fake, 1 uncertain, 1 real" in flat
    assert "uncertain: margin within -0.12..+0.06" in flat
    assert "real: no sign of manipulation found by these cues" in flat


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return synth.write_image(tmp_path_factory.mktemp("verdicts") / "face.png", seed=4)


def _detector(folder, threshold: float, band=None):
    """A fusion detector whose image p_fake is 0.5 whatever the cue says (weight 0, intercept 0)."""
    model = KindModel(["generated_image"], np.zeros(2), 0.0, threshold, {}, band)
    return FusionDetector({"image": model}, {"trained_on": "test"}).save(folder / f"t{threshold}.safetensors")


def _check(image, detector, *args):
    return runner.invoke(app, ["check", str(image), "--detector", str(detector), "--experts", "generated_image",
                               "--workers", "0", "--no-cache", "-q", *args])


def test_fail_on_uncertain_and_fail_on_fake_exit_codes(image, tmp_path):
    near = _detector(tmp_path, 0.52)  # p_fake 0.5 is 0.02 below: uncertain
    result = _check(image, near, "-f", "json")
    assert result.exit_code == EXIT_OK, result.output
    record = json.loads(result.stdout)[0]
    assert record["verdict"] == "uncertain" and record["p_fake"] == pytest.approx(0.5)
    assert record["margin"] == pytest.approx(-0.02) and record["uncertain_band"] == pytest.approx([0.47, 0.57])
    assert _check(image, near, "-f", "json", "--fail-on-fake").exit_code == EXIT_OK  # uncertain is not fake
    assert _check(image, near, "-f", "json", "--fail-on-uncertain").exit_code == EXIT_FAKE
    far = _detector(tmp_path, 0.3)  # 0.2 above: fake
    assert _check(image, far, "-f", "json", "--fail-on-fake").exit_code == EXIT_FAKE
    assert _check(image, far, "-f", "json", "--fail-on-uncertain").exit_code == EXIT_FAKE  # fake or uncertain
    clear = _detector(tmp_path, 0.8)  # 0.3 below: real
    assert _check(image, clear, "-f", "json", "--fail-on-uncertain").exit_code == EXIT_OK
    wide = _detector(tmp_path, 0.4, band=[0.3, 0.55])  # 0.1 above the threshold, inside the recorded band
    result = _check(image, wide, "-f", "jsonl", "--fail-on-uncertain")
    assert result.exit_code == EXIT_FAKE and json.loads(result.stdout)["verdict"] == "uncertain"


def test_csv_and_junit_carry_uncertain(image, tmp_path):
    near = _detector(tmp_path, 0.52)
    result = _check(image, near, "-f", "csv")
    row = next(csv.DictReader(io.StringIO(result.stdout)))
    assert row["verdict"] == "uncertain" and float(row["margin"]) == pytest.approx(-0.02)
    assert (float(row["uncertain_lo"]), float(row["uncertain_hi"])) == pytest.approx((0.47, 0.57))
    result = _check(image, near, "-f", "junit", "--fail-on-fake")
    assert result.exit_code == EXIT_OK
    suite = ET.fromstring(result.stdout).find("testsuite")
    case = suite.find("testcase")
    assert case.find("failure") is None and case.find("skipped") is None  # not a failure ...
    assert "uncertain" in case.find("system-out").text.lower()  # ... but visible
    assert suite.get("failures") == "0"


def test_an_empty_folder_is_a_set_up_mistake_with_the_fix(tmp_path, image):
    empty = tmp_path / "nothing here"
    empty.mkdir()
    (empty / "notes.txt").write_text("not media")
    result = runner.invoke(app, ["check", str(empty), "--detector", str(_detector(tmp_path, 0.5)),
                                 "--experts", "generated_image", "-q"])
    assert result.exit_code == EXIT_USAGE, result.output
    text = " ".join(result.output.split())
    assert "error: no media files found in" in text and "nothing here" in text
    assert "name video, audio or image files" in text and ".mp4" in text


def test_finish_check_refuses_no_media_for_local_and_ray_checks_alike(capsys):
    """``check`` and ``check --ray`` end through ``finish_check``: no media file at all is exit 2, with the fix."""
    from deepscan.cli.common import OutputFormat, finish_check

    code = finish_check([], ["s3://bucket/empty/"], output_format=OutputFormat.jsonl, output=None, html=None,
                        interrupted=False, fail_on_fake=True)
    assert code == EXIT_USAGE
    err = " ".join(capsys.readouterr().err.split())
    assert "no media files found in s3://bucket/empty/" in err and "name video, audio or image files" in err
    uncertain = ScanResult(path="a.wav", status="ok", verdict="uncertain", p_fake=0.6, threshold=0.62)
    common = dict(output_format=OutputFormat.jsonl, output=None, html=None, interrupted=False)
    assert finish_check([uncertain], ["a.wav"], fail_on_fake=True, **common) == EXIT_OK
    assert finish_check([uncertain], ["a.wav"], fail_on_fake=False, fail_on_uncertain=True, **common) == EXIT_FAKE
