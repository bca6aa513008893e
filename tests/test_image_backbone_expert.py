"""The backbone image expert (issue 22): format chain, crops, head file, scoring, family hold-out.

Fast: synthetic images and features only, no harvest-wide training. Tests that run the backbone
skip when its pinned distribution is not installed.
"""

from __future__ import annotations

import io
import json
from importlib import metadata

import numpy as np
import pytest
import torch
from PIL import Image

from bench.format_probe import FEATURE_NAMES, format_features, probe_scores
from deepscan.experts.generated_image import (
    DEFAULT_WEIGHTS,
    FORMAT_BACKBONE,
    MAX_GRID,
    BackboneImageExpert,
    crop_boxes,
    frame_crops,
    load_image_expert,
    save_backbone_head,
)
from deepscan.extractors.efficientnet import DISTRIBUTION, FEATURE_DIM
from deepscan.metrics import auc
from deepscan.training.expert_image import (
    CHAIN_CANVAS,
    fit_head,
    format_chain,
    head_logits,
    leave_family_out,
    sample_weights,
)

try:
    metadata.distribution(DISTRIBUTION)
    INSTALLED = True
except metadata.PackageNotFoundError:
    INSTALLED = False
needs_backbone = pytest.mark.skipif(not INSTALLED, reason=f"{DISTRIBUTION} is not installed")


def _photo(rng, h, w):
    """A smooth random colour field with texture (a stand-in for a photo)."""
    small = rng.integers(0, 256, (h // 16 + 2, w // 16 + 2, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=np.float64)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def test_crop_boxes_cover_small_frames_and_sample_large_ones():
    assert crop_boxes(448, 448) == [(0, 0, 224, 224), (0, 224, 224, 448), (224, 0, 448, 224), (224, 224, 448, 448)]
    assert len(crop_boxes(4000, 3000)) == MAX_GRID * MAX_GRID
    assert crop_boxes(100, 50) == [(0, 0, 100, 50)]
    crops, boxes = frame_crops(np.zeros((100, 300, 3), np.uint8))
    assert crops.shape == (2, 224, 224, 3) and boxes == [(0, 0, 100, 224), (0, 76, 100, 300)]


def test_format_chain_equalises_formats(tmp_path):
    """Reals saved as camera-like JPEGs with EXIF, fakes as PNGs of another size: the files' format
    features separate them perfectly, the chain's views (size, codec, quality) do not."""
    rng = np.random.default_rng(0)
    raw, views, labels = [], [], []
    for i in range(60):
        fake = i % 2
        h, w = (512, 512) if fake else (480, 640)
        image = _photo(rng, h, w)
        path = tmp_path / f"{i}.{'png' if fake else 'jpg'}"
        if fake:
            Image.fromarray(image).save(path)
        else:
            exif = Image.Exif()
            exif[0x010F] = "Camera maker"
            Image.fromarray(image).save(path, quality=92, exif=exif)
        raw.append(format_features(path))
        view, steps = format_chain(np.asarray(Image.open(path).convert("RGB")), np.random.default_rng([0, i]))
        assert view.dtype == np.uint8 and max(view.shape[:2]) <= CHAIN_CANVAS
        codec = steps["codec"]
        views.append([view.shape[0], view.shape[1], codec == "jpeg", codec == "webp", steps["quality"] or 0])
        labels.append(fake)
    raw, views, labels = np.array(raw), np.array(views, dtype=float), np.array(labels)
    assert raw.shape[1] == len(FEATURE_NAMES)
    half = np.arange(60) % 4 < 2  # train on half, score the other half
    assert auc(labels[~half], probe_scores(raw[half], labels[half], raw[~half])) > 0.99
    assert abs(auc(labels[~half], probe_scores(views[half], labels[half], views[~half])) - 0.5) < 0.25


def test_format_chain_compresses_like_it_says():
    rng = np.random.default_rng(1)
    image = _photo(rng, 300, 300)
    seen = set()
    for seed in range(30):
        view, steps = format_chain(image, np.random.default_rng(seed))
        seen.add(steps["codec"])
        if steps["codec"] == "none" and steps["scale"] == 1.0:
            assert np.array_equal(view, image[:view.shape[0], :view.shape[1]]) or view.shape != image.shape
        assert 0.5 <= steps["scale"] <= 1.5
        assert steps["quality"] is None or 60 <= steps["quality"] <= 100
    assert seen == {"jpeg", "webp", "none"}


def test_head_fits_and_scores_consistently():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, FEATURE_DIM)).astype(np.float32)
    y = (np.arange(200) % 2).astype(int)
    x[y == 1, :40] += 2.0
    groups = np.where(y == 1, "fakes", np.where(np.arange(200) < 100, "a", "b"))
    w = sample_weights(y, groups)
    assert np.isclose(w[y == 1].sum(), 1) and np.isclose(w[y == 0].sum(), 1)
    head = fit_head(x, y, w, c=0.1)
    assert auc(y, head_logits(head, x)) > 0.95
    families = np.where(y == 1, np.where(np.arange(200) % 4 == 1, "famA", "famB"), "real")
    table = leave_family_out(x, y, families, groups, c=0.1, k=2, rounds=20,
                             controls={"format_probe": rng.normal(size=(200, 3)), "old": rng.random(200)})
    assert set(table["families"]) == {"famA", "famB"}
    assert table["median"]["detector"] > 0.9 and abs(table["median"]["format_probe"] - 0.5) < 0.25


def _random_head(rng):
    return {"feature_mean": rng.normal(size=FEATURE_DIM), "feature_scale": np.abs(rng.normal(size=FEATURE_DIM)) + 1,
            "weight": rng.normal(size=FEATURE_DIM) * 0.01, "bias": np.array([0.1])}


@needs_backbone
def test_expert_scores_a_synthetic_image_with_patches(tmp_path):
    torch.set_num_threads(1)
    path = tmp_path / "head.safetensors"
    save_backbone_head(_random_head(np.random.default_rng(0)), path, {"grid": 3}, {"seed": 0})
    expert = load_image_expert(path)
    assert isinstance(expert, BackboneImageExpert) and expert.metadata["format"] == FORMAT_BACKBONE
    frame = _photo(np.random.default_rng(2), 500, 700)
    out = expert.score_frame(frame)
    assert 0 <= out["p_fake"] <= 1 and out["token"].shape == (expert.token_dim,) == (8,)
    assert len(out["patches"]) == 9 and all(len(p) == 5 for p in out["patches"])
    assert np.isclose(out["token"][-1], out["logit"]) and np.isclose(out["token"][:-1].sum() + 0.1, out["logit"],
                                                                     atol=1e-3)
    p, token = expert.score(frame)
    assert p == pytest.approx(out["p_fake"], abs=1e-6)  # deterministic
    tiny = expert.score_frame(_photo(np.random.default_rng(3), 40, 60))
    assert len(tiny["patches"]) == 1 and tiny["patches"][0][:4] == [0, 0, 40, 60]
    assert expert.unreadable(np.zeros((20, 20, 3), np.uint8)) is not None
    assert expert.unreadable(np.full((300, 300, 3), 7, np.uint8)) == "flat image"


def test_head_file_is_fp16_safetensors_and_small(tmp_path):
    from safetensors import safe_open

    path = tmp_path / "head.safetensors"
    save_backbone_head(_random_head(np.random.default_rng(0)), path, {"grid": 3}, {"seed": 0})
    for file in [path] + ([DEFAULT_WEIGHTS] if DEFAULT_WEIGHTS.is_file() else []):
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata()
            if meta.get("format") != FORMAT_BACKBONE:
                continue  # the spectrum network (before the backbone expert shipped)
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
            assert f.get_tensor("weight").shape == (FEATURE_DIM,)
            json.loads(meta["config"]), json.loads(meta["provenance"])
        assert file.stat().st_size < 600_000


def test_jpeg_bytes_roundtrip_in_chain_drops_exif():
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    buffer = io.BytesIO()
    Image.fromarray(_photo(np.random.default_rng(4), 300, 300)).save(buffer, format="JPEG", exif=exif)
    view, _ = format_chain(np.asarray(Image.open(buffer).convert("RGB")), np.random.default_rng(0))
    assert isinstance(view, np.ndarray)  # pixels only: nothing of the container survives
