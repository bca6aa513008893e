"""Training data: folder / manifest layouts, split by source, feature cache, pseudo-fakes from reals."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from deepscan import synth
from deepscan.media import SAMPLE_RATE
from deepscan.training.data import (
    CORPUS_MARKER, DataSetError, FeatureStore, build_samples, load_dataset, make_synthetic_corpus, split_of,
)
from deepscan.training.pseudofakes import PSEUDO_FAKE_KINDS

CLIP_S = 2.0
SIZE = (128, 128)
FPS = 10


def _clip(path, seed):
    clip = synth.make_clip(CLIP_S, SIZE, FPS, SAMPLE_RATE, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    synth.encode_clip(path, clip.frames, FPS, clip.waveform, SAMPLE_RATE)
    return path


@pytest.fixture(scope="module")
def extractors():
    from deepscan.extractors import load_extractors

    return load_extractors("debug")


@pytest.fixture(scope="module")
def three_reals(tmp_path_factory):
    root = tmp_path_factory.mktemp("reals")
    rows = []
    for i in range(3):
        _clip(root / "real" / f"r{i}.mp4", 100 + i)
        rows.append({"path": f"real/r{i}.mp4", "label": "real", "split": "train", "source": f"s{i}"})
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split", "source"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_folder_kinds_and_split_by_source(tmp_path):
    for name in ("real/real_0001.mp4", "real/sub/real_0002.mp4", "fake/blended_face/blended_face_0001.mp4",
                 "fake/av_offset/av_offset_0002.mp4", "fake/other.mp4"):
        _clip(tmp_path / name, 7)
    ds = load_dataset(tmp_path)
    kinds = {item.path.name: item.kind for item in ds.items}
    assert kinds == {"real_0001.mp4": "real", "real_0002.mp4": "real", "blended_face_0001.mp4": "blended_face",
                     "av_offset_0002.mp4": "av_offset", "other.mp4": "fake"}
    sources = {item.path.name: item.source for item in ds.items}
    assert sources["real_0001.mp4"] == sources["blended_face_0001.mp4"] == "0001"
    splits: dict = {}
    for item in ds.items:
        splits.setdefault(item.source, set()).add(item.split)
        assert item.split == split_of(item.source)
    assert all(len(s) == 1 for s in splits.values())
    assert not ds.synthetic


def test_split_of_is_stable_and_spread():
    names = [f"clip{i}" for i in range(2000)]
    got = [split_of(n) for n in names]
    assert got == [split_of(n) for n in names]
    share = {s: got.count(s) / len(got) for s in ("train", "val", "test")}
    assert 0.65 < share["train"] < 0.75 and 0.11 < share["val"] < 0.19 and 0.11 < share["test"] < 0.19


def test_manifest_errors(tmp_path):
    _clip(tmp_path / "a.mp4", 1)
    bad = tmp_path / "m.csv"
    bad.write_text("path,label\na.mp4,maybe\n")
    with pytest.raises(DataSetError, match="label must be"):
        load_dataset(bad)
    bad.write_text("path,label,split,source\na.mp4,real,train,x\na.mp4,fake,test,x\n")
    with pytest.raises(DataSetError, match="more than one split"):
        load_dataset(bad)
    bad.write_text("path,label\nmissing.mp4,real\n")
    with pytest.raises(DataSetError, match="no such file"):
        load_dataset(bad)
    bad.write_text("path,label\na.mp4,real\n")
    with pytest.raises(DataSetError, match="no fake"):
        load_dataset(bad)
    assert len(load_dataset(bad, real_only=True).items) == 1
    with pytest.raises(DataSetError):
        load_dataset(tmp_path / "nowhere")


def test_synthetic_corpus_is_marked_and_split_by_source(tmp_path):
    manifest = make_synthetic_corpus(tmp_path, clips=8, seed=3)
    assert (tmp_path / CORPUS_MARKER).is_file()
    ds = load_dataset(manifest)
    assert ds.synthetic and ds.layout == "manifest" and len(ds.items) == 8
    sides: dict = {}
    for item in ds.items:
        sides.setdefault(item.source, set()).add(item.split)
    assert all(len(s) == 1 for s in sides.values())
    assert ds.describe()["files"] == 8


def test_feature_cache_hit_on_second_run(three_reals, extractors, tmp_path):
    path = three_reals / "real" / "r0.mp4"
    store = FeatureStore(extractors, cache=tmp_path / "cache")
    first = store.features(path)
    assert store.encoded == len(first) >= 1 and store.cache.hits == 0
    again = FeatureStore(extractors, cache=tmp_path / "cache")  # a rerun: new process, same cache
    second = again.features(path)
    assert again.encoded == 0 and again.cache.hits == 1
    for a, b in zip(first, second):
        assert np.allclose(a.image.numpy(), b.image.numpy()) and np.allclose(a.audio.numpy(), b.audio.numpy())
    other = FeatureStore(extractors, cache=tmp_path / "cache", window_s=1.0)  # other sampling: a miss
    assert len(other.features(path)) == 2 and other.encoded == 2


def test_real_only_makes_every_kind_and_caches_them(three_reals, extractors, tmp_path):
    ds = load_dataset(three_reals, real_only=True)
    store = FeatureStore(extractors, cache=tmp_path / "cache")
    samples = build_samples(ds, store, real_only=True, variants=1, seed=5)
    fakes = [s for s in samples if s.y == 1]
    assert {s.kind for s in fakes} == set(PSEUDO_FAKE_KINDS)
    assert len(fakes) == 3 * len(PSEUDO_FAKE_KINDS)
    real = {s.path: s for s in samples if s.y == 0}
    for s in fakes:  # audio kinds change the audio only, the blend changes the image only
        base = real[s.path].windows[0]
        changed_audio = not np.allclose(s.windows[0].audio.numpy(), base.audio.numpy())
        changed_image = not np.allclose(s.windows[0].image.numpy(), base.image.numpy())
        assert (changed_image, changed_audio) == ((True, False) if s.kind == "blended_face" else (False, True))
    encoded = store.encoded
    again = build_samples(ds, store, real_only=True, variants=1, seed=5)
    assert store.encoded == encoded  # all from the cache
    assert [s.kind for s in again] == [s.kind for s in samples]


def test_pseudo_fakes_augment_only_the_chosen_splits(tmp_path, extractors):
    manifest = make_synthetic_corpus(tmp_path / "data", clips=12, seed=4)
    ds = load_dataset(manifest)
    store = FeatureStore(extractors, cache=tmp_path / "cache")
    plain = build_samples(ds, store)
    augmented = build_samples(ds, store, augment_splits=("train",), kinds=("blended_face", "vocoded_audio"), seed=2)
    added = [s for s in augmented if s.y == 1 and "/real/" in s.path.replace("\\", "/")]
    train_reals = [i for i in ds.items if i.label == "real" and i.split == "train"]
    assert train_reals and len(added) == 2 * len(train_reals)
    assert {s.split for s in added} == {"train"} and {s.kind for s in added} == {"blended_face", "vocoded_audio"}
    assert len(augmented) - len(added) == len(plain)  # the labelled files are all still there
    assert sum(1 for s in augmented if s.split != "train" and s.y == 1) == sum(1 for s in plain if s.split != "train" and s.y == 1)
