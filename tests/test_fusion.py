"""The cue-fusion detector: features, checkpoint round trip, out-of-fold fit, and scans without encoders."""

from __future__ import annotations

import numpy as np
import pytest

from deepscan import synth
from deepscan.errors import CheckpointError
from deepscan.labelled import LabelledFile
from deepscan.model.fusion import FusionDetector, KindModel, cue_features, is_fusion_checkpoint
from deepscan.scanner import Scanner
from deepscan.training.fusion import fit_fusion


def test_cue_features_are_log_odds_with_presence_flags():
    x = cue_features({"aasist": {"p_fake": 0.9}, "meso4": {"p_fake": None, "reason": "no face"}}, ["aasist", "meso4"])
    assert x[1] == 1.0 and x[3] == 0.0 and x[2] == 0.0
    assert x[0] == pytest.approx(np.log(0.9 / 0.1))


def test_checkpoint_round_trip_and_refusal(tmp_path):
    model = FusionDetector({"audio": KindModel(["aasist"], np.array([2.0, -0.5]), 0.25, 0.7, {"auc": 0.8})},
                           {"trained_on": "test"})
    path = model.save(tmp_path / "f.safetensors")
    assert is_fusion_checkpoint(path)
    loaded = FusionDetector.load(path)
    assert loaded.threshold("audio") == pytest.approx(0.7) and loaded.cues == ["aasist"]
    assert loaded.logit("audio", {"aasist": {"p_fake": 0.5}}) == pytest.approx(-0.5 + 0.25)
    assert loaded.logit("audio", {"aasist": {"p_fake": None}}) is None  # no cue applies: no number
    assert loaded.logit("image", {"aasist": {"p_fake": 0.9}}) is None
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    assert not is_fusion_checkpoint(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError):
        FusionDetector.load(tmp_path / "junk.safetensors")


def test_fit_out_of_fold_learns_a_separating_cue_and_sets_the_threshold():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(120):
        label = i % 2
        p = float(np.clip(0.5 + (0.3 if label else -0.3) + rng.normal(0, 0.15), 0.01, 0.99))
        noise = float(rng.uniform(0.01, 0.99))
        f = LabelledFile(None, "audio", label, "m", f"sys{i % 6}", f"page{i % 10}", f"pair{i}", f"{i:064x}")
        rows.append((f, {"aasist": {"p_fake": p}, "noise": {"p_fake": noise}}, "audio"))
    models, oof = fit_fusion(rows, seed=0)
    model = models["audio"]
    assert model.metrics["auc"] > 0.9 and model.metrics["fpr"] <= 0.05 + 1e-9
    assert abs(model.coef[0]) > 3 * abs(model.coef[2])  # the informative cue weighs more than the noise
    assert len(oof["audio"]["p_fake"]) == 120


def test_fusion_scan_needs_no_encoders_and_withholds_a_verdict_without_cues(tmp_path):
    clip = synth.write_clip(tmp_path / "clip.mp4", duration_s=2.0, seed=1)
    path = FusionDetector({"video": KindModel(["aasist"], np.array([1.0, 0.0]), 0.0)}, {}).save(tmp_path / "f.safetensors")
    scanner = Scanner(detector=path, workers=0, cache=False, experts="none")
    assert scanner.extractors is None and scanner.model is None
    result = scanner.scan_file(clip)
    assert result.status == "ok" and result.verdict == "unknown" and result.p_fake is None
    assert result.reason.startswith("no cue applies")
    image = synth.write_image(tmp_path / "still.png", seed=2)
    other = scanner.scan_file(image)  # a kind the detector has no model for
    assert other.verdict == "unknown" and other.reason.startswith("no validated model for image")


def test_learned_cues_use_out_of_fold_scores_only_on_files_the_expert_saw():
    from deepscan.training.fusion import rows_from_records

    base = {"status": "ok", "kind": "audio", "label": 1, "system": "s", "group": "g", "pair": "p"}
    records = [
        {**base, "path": "seen.wav", "sha256": "a" * 64, "cues": {"synthetic_speech": {"p_fake": 0.99}}},
        {**base, "path": "unseen.wav", "sha256": "b" * 64, "cues": {"synthetic_speech": {"p_fake": 0.7}}},
        {**base, "path": "seen-no-oof.wav", "sha256": "c" * 64, "cues": {"synthetic_speech": {"p_fake": 0.98}}},
    ]
    overrides = {"synthetic_speech": {"a" * 64: 0.4}}
    trained_on = {"synthetic_speech": {"a" * 64, "c" * 64}, "generated_image": None, "face_forgery": None}
    rows = {f.path.name: cues for f, cues, _ in rows_from_records(records, overrides, trained_on)}
    assert rows["seen.wav"]["synthetic_speech"]["p_fake"] == 0.4  # the in-sample 0.99 is replaced
    assert rows["unseen.wav"]["synthetic_speech"]["p_fake"] == 0.7  # never trained on: the scan's own score
    assert rows["seen-no-oof.wav"]["synthetic_speech"]["p_fake"] is None  # seen, no held-out score: left out
    # without the training lists every file counts as seen
    rows = {f.path.name: cues for f, cues, _ in rows_from_records(records, overrides)}
    assert rows["unseen.wav"]["synthetic_speech"]["p_fake"] is None


def test_learned_training_files_are_read_from_the_packaged_weights():
    from deepscan.training.fusion import learned_training_files

    seen = learned_training_files()
    for cue in ("synthetic_speech", "generated_image", "face_forgery"):
        assert seen[cue] and all(len(sha) == 64 for sha in seen[cue])


def test_summary_says_what_the_detector_knows_and_the_table_prints_it(tmp_path):
    import io

    from rich.console import Console

    from deepscan.results import ScanResult
    from deepscan.writers import render_table

    models = {"audio": KindModel(["aasist", "synthetic_speech"], np.zeros(4), 0.0, 0.6, {"auc": 0.81}),
              "video": KindModel(["av_sync"], np.zeros(2), 0.0, 0.4, {"auc": 0.77})}
    untested = FusionDetector(models, {"limits": "weak on zero-shot TTS"})
    line = untested.summary()
    assert "out-of-fold AUC on its training data: audio 0.810, video 0.770" in line
    assert "no model for image (verdict unknown)" in line and line.endswith("weak on zero-shot TTS")
    tested = FusionDetector(models, {"real_media": {"audio": {"auc": 0.712}, "video": {"auc": 0.9}}})
    assert "AUC on real media (never trained on): audio 0.712, video 0.900" in tested.summary()
    result = ScanResult(path=str(tmp_path / "a.wav"), status="ok", verdict="real", p_fake=0.1, threshold=0.6,
                        detector=tested.describe())
    console = Console(width=80, record=True, file=io.StringIO(), color_system=None)
    console.print(render_table([result], cwd=str(tmp_path)))
    text = " ".join(console.export_text().split())
    assert "detector: cue fusion of aasist, av_sync, synthetic_speech per media kind" in text
    assert "audio 0.712, video 0.900" in text


def test_stamp_real_media_records_only_an_evaluation_of_the_same_file(tmp_path):
    from deepscan.training.fusion import stamp_real_media

    path = FusionDetector({"audio": KindModel(["aasist"], np.array([1.0, 0.0]), 0.0, 0.5, {"auc": 0.8})},
                          {"trained_on": "test"}).save(tmp_path / "f.safetensors")
    before = FusionDetector.load(path)
    metrics = {"auc": 0.7123, "auc_lo": 0.61, "auc_hi": 0.8, "ece": 0.08, "n_real": 30, "n_fake": 40, "coverage": 1.0}
    report = {"fused": True, "detector": {"sha256": before.sha256}, "table": {"kinds": {"audio": {"p_fake": metrics}}}}
    with pytest.raises(ValueError, match="not an evaluation"):
        stamp_real_media(path, {**report, "detector": {"sha256": "0" * 64}})
    recorded = stamp_real_media(path, report)
    after = FusionDetector.load(path)
    assert recorded["audio"]["auc"] == 0.712 and after.provenance["real_media"]["audio"]["ci95"] == [0.61, 0.8]
    assert after.sha256 != before.sha256 and after.provenance["real_media_measured_on_sha256"] == before.sha256
    assert np.array_equal(after.kinds["audio"].coef, before.kinds["audio"].coef)  # the model itself is untouched
    assert "AUC on real media (../shared/realworld, never trained on): audio 0.712" in after.summary()


def test_page_weights_balance_classes_and_pages():
    from deepscan.training.fusion import page_weights

    labels = np.array([1] * 10 + [1] + [0] * 4)
    groups = np.array(["big"] * 10 + ["small"] + ["r1", "r1", "r2", "r3"])
    w = page_weights(labels, groups, power=1.0)
    assert w[labels == 1].sum() == pytest.approx(7.5) and w[labels == 0].sum() == pytest.approx(7.5)
    assert w[:10].sum() == pytest.approx(w[10])  # with power 1 a page of ten weighs what a page of one does
    w0 = page_weights(labels, groups, power=0.0)
    assert np.allclose(w0[labels == 1], w0[0])  # power 0: files weigh the same within a class


def test_fusion_picks_the_informative_cue_on_held_out_pages():
    rng = np.random.default_rng(1)
    rows = []
    for page in range(12):  # class-pure pages, as in the harvest
        label = page % 2
        for i in range(8):
            good = float(np.clip(0.5 + (0.25 if label else -0.25) + rng.normal(0, 0.15), 0.01, 0.99))
            bad = float(rng.uniform(0.05, 0.95))
            f = LabelledFile(None, "image", label, "m", f"s{page}", f"page{page}", f"pair{page}-{i}", f"{page:032x}{i:032x}")
            rows.append((f, {"generated_image": {"p_fake": good}, "meso4": {"p_fake": bad}}, "image"))
    models, oof = fit_fusion(rows, seed=0)
    model = models["image"]
    assert "generated_image" in model.cues and model.metrics["cue_set"] != "meso4"
    assert model.metrics["candidates"]["published cues"]["auc_within_page_folds"] < 0.75 < model.metrics["auc_within_page_folds"]
    weight = dict(zip(model.cues, model.coef[0::2]))
    assert weight["generated_image"] > 3 * abs(weight.get("meso4", 0.0))
    assert not model.coef[1::2].any()  # presence flags carry no weight


def test_html_provenance_names_each_kinds_cue_set_not_the_alternatives(tmp_path):
    from deepscan.results import ScanResult
    from deepscan.writers.html import render_html

    metrics = {"auc": 0.73, "ece": 0.06, "n_real": 120, "n_fake": 120, "cue_set": "all cues",
               "candidates": {"learned cues": {"cues": ["synthetic_speech"], "auc": 0.717}}}
    detector = FusionDetector({"audio": KindModel(["aasist", "synthetic_speech"], np.zeros(4), 0.0, 0.6, metrics)},
                              {"trained_on": "harvest"})
    result = ScanResult(path=str(tmp_path / "a.wav"), status="ok", verdict="real", p_fake=0.2, threshold=0.6,
                        detector=detector.describe())
    html = render_html([result])
    assert "audio (all cues)" in html and "0.730" in html
    assert "candidates" not in html and "learned cues" not in html


def test_a_modality_score_uses_only_the_cues_the_kinds_model_fuses(tmp_path):
    image = synth.write_image(tmp_path / "face.png", seed=4)
    path = FusionDetector({"image": KindModel(["generated_image"], np.array([1.0, 0.0]), 0.0)}, {}).save(
        tmp_path / "f.safetensors")
    with Scanner(detector=path, workers=0, cache=False, experts="generated_image,face_forgery") as scanner:
        result = scanner.scan_file(image)
    assert result.status == "ok" and result.cues["generated_image"]["p_fake"] is not None
    assert result.modalities["image"]["p_fake"] == pytest.approx(result.cues["generated_image"]["p_fake"])
    assert result.modalities["video"]["reason"] == "a still image"
