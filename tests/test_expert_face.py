"""The face_forgery expert: shipped weights, scoring contract, loading errors, deterministic training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepscan.errors import ModelLoadingError
from deepscan.labelled import LabelledFile
from deepscan.experts.face_forgery import (
    DEFAULT_WEIGHTS,
    TOKEN_DIM,
    FaceForgeryNet,
    load_face_expert,
    save_face_expert,
)
from deepscan.training import expert_face as ef

from conftest import SAMPLES


@pytest.fixture(scope="module")
def expert():
    return load_face_expert()


def test_shipped_weights_load_with_provenance(expert):
    assert DEFAULT_WEIGHTS.is_file() and DEFAULT_WEIGHTS.stat().st_size < 300_000
    assert expert.path == DEFAULT_WEIGHTS and len(expert.sha256) == 64
    assert expert.crop == expert.config["crop"] == "clip" and expert.model.size == 128
    prov = expert.provenance
    files = prov["training_files"]
    assert len(files) > 100 and all(len(f["sha256"]) == 64 and f["licence"] for f in files)
    assert {f["label"] for f in files} == {"real", "fake"}
    assert prov["initialised_from"]["file"] == "Meso4_DF.h5"
    logo = prov["metrics"]["leave_generator_out"]
    assert "Wav2Lip" in logo and all(0.0 <= v["auc"] <= 1.0 for v in logo.values() if v["auc"] is not None)
    assert "sbi_only" in prov["metrics"] and "out_of_fold" in prov["metrics"]
    assert prov["augmentations"]["both classes"] and prov["seed"] == 0


def test_score_shapes_and_range(expert):
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
    p, tokens = expert.score(crops)
    assert p.shape == (3,) and p.dtype == np.float32 and ((p >= 0) & (p <= 1)).all()
    assert tokens.shape == (3, TOKEN_DIM) and tokens.dtype == np.float32
    # the last token is the logit of fake: sigmoid(logit) is p_fake
    np.testing.assert_allclose(1 / (1 + np.exp(-tokens[:, -1])), p, rtol=1e-5, atol=1e-6)
    # other crop sides are resized: a 224 crop scores like its 256 resize would, in shape at least
    p224, t224 = expert.score(crops[:2, :224, :224])
    assert p224.shape == (2,) and t224.shape == (2, TOKEN_DIM)
    p0, t0 = expert.score(np.zeros((0, 256, 256, 3), np.uint8))
    assert p0.shape == (0,) and t0.shape == (0, TOKEN_DIM)
    # batch-independent: scoring one crop alone gives its score within a batch
    np.testing.assert_allclose(expert.score(crops[1:2])[0], p[1:2], rtol=1e-5, atol=1e-6)


def test_score_refuses_bad_input(expert):
    with pytest.raises(TypeError):
        expert.score(np.zeros((1, 256, 256, 3), np.float32))
    with pytest.raises(ValueError):
        expert.score(np.zeros((1, 256, 200, 3), np.uint8))
    with pytest.raises(ValueError):
        expert.score(np.zeros((256, 256, 3), np.uint8))


def test_loader_refuses_wrong_files(tmp_path):
    with pytest.raises(ModelLoadingError, match="not found"):
        load_face_expert(tmp_path / "absent.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ModelLoadingError):
        load_face_expert(junk)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "something-else"})
    with pytest.raises(ModelLoadingError, match="format"):
        load_face_expert(other)
    state = FaceForgeryNet(128).state_dict()
    state.pop("body.fc2.bias")
    partial = tmp_path / "partial.safetensors"
    save_file(state, str(partial), metadata={"format": "deepscan-face-forgery-1", "config": '{"size": 128}'})
    with pytest.raises(ModelLoadingError, match="missing"):
        load_face_expert(partial)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    net = FaceForgeryNet(128).eval()
    path = save_face_expert(net, tmp_path / "w.safetensors", {"crop": "meso"}, {"seed": 3})
    loaded = load_face_expert(path)
    assert loaded.config == {"crop": "meso", "size": 128} and loaded.provenance == {"seed": 3}
    x = torch.rand(2, 3, 128, 128)
    torch.testing.assert_close(loaded.model(x)[0], net(x)[0])


def _tiny_samples(n_real=4, n_fake=2, seed=0):
    """Generated crops: smooth 'faces' (real) and the same with a pasted, sharper patch (fake)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:256, 0:256]
    samples = []
    for k in range(n_real + n_fake):
        label = int(k >= n_real)
        base = np.exp(-(((xx - 128) / 70.0) ** 2 + ((yy - 128) / 90.0) ** 2))
        crops = np.stack([np.clip(base[..., None] * rng.uniform(120, 230, 3) + rng.normal(0, 4, (256, 256, 3)), 0, 255)
                          for _ in range(2)]).astype(np.uint8)
        if label:
            crops[:, 150:200, 90:170] = rng.integers(0, 256, (2, 50, 80, 3))
        lms = np.tile(np.array([[90, 95], [166, 95], [128, 128], [98, 170], [158, 170]], np.float32), (2, 1, 1))
        lf = LabelledFile(ef.Path(f"f{k}.png"), "image", label, "face-swap" if label else "real",
                          f"sys{k % 2}" if label else "real", f"page{k}", f"pair{k}", f"{k:064x}")
        samples.append(ef.FaceSample(lf, "MIT", crops, crops[:, 16:240, 16:240].copy(), lms))
    return samples


def test_fit_is_deterministic_for_a_seed():
    samples = _tiny_samples()
    cfg = ef.TrainConfig(steps=3, batch=4, init="scratch", size=128)
    torch.set_num_threads(1)
    a = ef.fit(samples, cfg, seed=0).state_dict()
    b = ef.fit(samples, cfg, seed=0).state_dict()
    c = ef.fit(samples, cfg, seed=1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_fit_needs_reals():
    fakes = [s for s in _tiny_samples() if s.file.label == 1]
    with pytest.raises(ValueError, match="real"):
        ef.fit(fakes, ef.TrainConfig(steps=1, batch=2, init="scratch"))


def test_sbi_and_augment_are_seeded_and_local():
    crop = _tiny_samples()[0].crops[0]
    lms = _tiny_samples()[0].landmarks[0]
    a = ef.sbi_fake(crop, lms, np.random.default_rng(5))
    b = ef.sbi_fake(crop, lms, np.random.default_rng(5))
    assert a.shape == crop.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    changed = np.abs(a.astype(int) - crop.astype(int)).max(axis=2) > 0
    corners = changed[:20, :20], changed[:20, -20:], changed[-20:, :20], changed[-20:, -20:]
    assert changed.any() and not any(c.any() for c in corners)  # the blend stays on the face
    lower = ef.sbi_fake(crop, lms, np.random.default_rng(6), lower=True)
    rows = np.flatnonzero((np.abs(lower.astype(int) - crop.astype(int)).max(axis=(1, 2)) > 0))
    assert rows.min() > 80  # lower-face blends stay below the eyes (at y = 95)
    x = ef.augment(crop, np.random.default_rng(1))
    assert x.shape == crop.shape and x.dtype == np.uint8
    assert np.array_equal(x, ef.augment(crop, np.random.default_rng(1)))


def test_page_folds_keep_a_system_and_its_pages_together():
    samples = _tiny_samples(n_real=6, n_fake=4)
    # sys0 appears on two pages: both must land in one fold
    folds = ef.page_folds(samples)
    by_system = {}
    for s, f in zip(samples, folds):
        if s.file.label:
            by_system.setdefault(s.file.system, set()).add(int(f))
    assert all(len(v) == 1 for v in by_system.values())
    assert len(set(folds)) == 2 and set(by_system["sys0"]) != set(by_system["sys1"])
    assert np.array_equal(folds, ef.page_folds(samples))


def _tiny_harvest(root):
    """A two-page harvest of generated cartoon faces (found by the Haar cascade)."""
    import cv2

    from deepscan.synth import render_face_frames

    rows = ["name\tkind\tlabel\tsystem\tmethod\tface\tsha256\tlicense\tgroup\tpair"]
    for k in range(6):
        label = "fake" if k >= 4 else "real"
        frame = render_face_frames(np.full(1, 0.5), size=(256, 256), seed=k)[0]
        if label == "fake":
            rng = np.random.default_rng(k)
            frame = ef.sbi_fake(frame, None, rng)
        (root / "image" / label).mkdir(parents=True, exist_ok=True)
        name = f"face{k}.png"
        cv2.imwrite(str(root / "image" / label / name), frame[..., ::-1])
        rows.append(f"{name}\timage\t{label}\t{'swapper' if label == 'fake' else 'camera'}\t"
                    f"{'face-swap' if label == 'fake' else 'real'}\tyes\t\tMIT\tpage{k % 3}\tp{k}")
    (root / "image" / "MANIFEST.tsv").write_text("\n".join(rows) + "\n")


def test_train_end_to_end_is_reproducible(tmp_path):
    from deepscan.faces import FaceCropper

    _tiny_harvest(tmp_path / "harvest")
    cfg = ef.TrainConfig(steps=2, batch=4, init="scratch")
    cropper = FaceCropper()  # Haar: no model file needed
    runs = []
    for name in ("a", "b"):
        metrics = ef.train(tmp_path / "harvest", tmp_path / f"{name}.safetensors", seed=0, quiet=True, config=cfg,
                           cache_dir=tmp_path / "cache", cropper=cropper)
        runs.append(load_face_expert(tmp_path / f"{name}.safetensors"))
    assert metrics["files"]["with_face"] >= 4
    assert "leave_generator_out" in metrics and "sbi_only" in metrics
    a, b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    prov = runs[0].provenance
    assert json.dumps(prov) and prov["seed"] == 0 and prov["training_files"][0]["licence"] == "MIT"


def _sample_crops(name, expert, models_dir, max_frames=16):
    meso, clip, lms = ef.extract_face_crops(SAMPLES / name, "video", ef._cropper(models_dir), max_frames=max_frames)
    if not len(meso):
        pytest.skip(f"no face found in {name}")
    return (clip, [None] * len(clip)) if expert.crop == "clip" else (meso, list(lms))


@pytest.mark.skipif(SAMPLES is None, reason="../shared/samples is not present")
def test_shipped_expert_separates_blends_from_real_faces(expert, models_dir):
    """Real face crops from a shared sample mostly score below self-blended versions of themselves."""
    crops, lms = _sample_crops("real_talking_face_mp4v_aac16k_stereo.mp4", expert, models_dir, max_frames=6)
    rng = np.random.default_rng(0)
    blended = np.stack([ef.sbi_fake(c, lm, rng) for c, lm in zip(crops, lms)])
    p_real, p_blend = expert.score(crops)[0], expert.score(blended)[0]
    # measured: 0.27 vs 0.34 on average, 5 of 6 pairs ordered
    assert p_blend.mean() > p_real.mean() + 0.03
    assert (p_blend > p_real).sum() >= 4


@pytest.mark.skipif(SAMPLES is None, reason="../shared/samples is not present")
def test_shipped_expert_ranks_the_sample_face_swap_above_the_real_film(expert, models_dir):
    fake = expert.score(_sample_crops("fake_faceswap_film_noaudio.mp4", expert, models_dir)[0])[0].mean()
    real = expert.score(_sample_crops("real_film_face_noaudio.mp4", expert, models_dir)[0])[0].mean()
    assert fake > real + 0.05  # measured 0.34 vs 0.24 (file score = mean over 16 crops)
