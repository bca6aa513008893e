"""Feature cache: keys, hits that skip decoding and encoding, crash safety, concurrent readers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from deepscan import scanner as scanner_module
from deepscan import synth
from deepscan import workers as workers_module
from deepscan.cache import FeatureCache, cache_key, file_sha256, pack, unpack
from deepscan.scanner import Scanner, pack_features, unpack_features
from tests.conftest import REPO_ROOT
from tests.helpers import make_detector


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    synth.write_clip(root / "a.mp4", duration_s=4.5, seed=1)  # two windows
    synth.write_audio(root / "b.wav", duration_s=2.0, seed=2)
    synth.write_image(root / "c.png", seed=3)
    return root


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return make_detector(tmp_path_factory.mktemp("det") / "demo.safetensors")


def _scan(scanner, media, **kw):
    return list(scanner.scan(sorted(media.iterdir()), **kw))


def test_pack_unpack_round_trip_and_corrupt_blob():
    tensors = {"x": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    back, meta = unpack(pack(tensors, {"k": [1, "a"]}))
    assert torch.equal(back["x"], tensors["x"]) and meta == {"k": [1, "a"]}
    with pytest.raises(ValueError, match="corrupt"):
        unpack(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad")


def test_cache_key_changes_with_content_and_every_setting(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"one"), b.write_bytes(b"two")
    base = cache_key(file_sha256(a), extractors="h1", window_s=4.0)
    assert base == cache_key(file_sha256(a), window_s=4.0, extractors="h1")  # order-free
    assert base != cache_key(file_sha256(b), extractors="h1", window_s=4.0)
    assert base != cache_key(file_sha256(a), extractors="h2", window_s=4.0)
    assert base != cache_key(file_sha256(a), extractors="h1", window_s=2.0)


def test_features_pack_round_trip_with_empty_modalities():
    from deepscan.extractors import Features

    full = Features(torch.randn(3, 512), torch.arange(3.0), torch.randn(5, 768), torch.arange(5.0),
                    torch.randn(1, 512), torch.zeros(1))
    empty_audio = Features(torch.randn(1, 512), torch.zeros(1))
    back = unpack_features(pack_features([full, empty_audio]), 2)
    for before, after in zip([full, empty_audio], back):
        for name in scanner_module.FEATURE_FIELDS:
            assert torch.equal(getattr(before, name), getattr(after, name))
    with pytest.raises(ValueError):
        unpack_features(pack_features([full]), 2)


def test_rescan_skips_decoding_and_encoding_and_gives_the_same_result(tmp_path, media, detector, monkeypatch):
    cache = FeatureCache(tmp_path / "cache")
    scanner = Scanner(detector=detector, encoders="debug", precision="fp32", workers=0, cache=cache)
    cold = _scan(scanner, media)
    assert all(r.status == "ok" for r in cold) and len(cache) == 3

    def forbidden(*args, **kwargs):
        raise AssertionError("a cached file was decoded or encoded again")

    monkeypatch.setattr(workers_module, "probe", forbidden)
    monkeypatch.setattr(workers_module, "prepare_windows", forbidden)
    monkeypatch.setattr(scanner.extractors, "encode_many", forbidden)
    warm = _scan(scanner, media, workers=2)
    assert scanner._pool is None  # every file was a hit: no decoding process was started
    assert cache.hits == 3
    assert [r.path for r in warm] == [r.path for r in cold]
    for c, w in zip(cold, warm):
        assert w.status == "ok"
        assert w.p_fake == pytest.approx(c.p_fake, abs=1e-5)
        assert [(x.start_s, x.end_s) for x in w.windows] == [(x.start_s, x.end_s) for x in c.windows]
        assert w.media == c.media and w.faces == c.faces
        for m, v in c.modalities.items():  # detector batches differ: float rounding only
            assert w.modalities[m]["present"] == v["present"] and w.modalities[m]["reason"] == v["reason"]
            assert w.modalities[m]["p_fake"] == pytest.approx(v["p_fake"], abs=1e-5)
        assert [t["jpeg_base64"] for t in w.thumbnails] == [t["jpeg_base64"] for t in c.thumbnails]


def test_changed_file_or_sampling_misses(tmp_path, media, detector):
    cache = FeatureCache(tmp_path / "cache")
    scanner = Scanner(detector=detector, encoders="debug", precision="fp32", workers=0, cache=cache)
    clip = tmp_path / "clip.wav"
    synth.write_audio(clip, duration_s=1.5, seed=7)
    scanner.scan_file(clip)
    assert (cache.hits, cache.misses) == (0, 1)  # looked up in the main process
    key_before = cache_key(file_sha256(clip), **scanner.cache_config())
    assert key_before in cache
    synth.write_audio(clip, duration_s=1.5, seed=8)
    assert cache_key(file_sha256(clip), **scanner.cache_config()) not in cache
    scanner.visual_fps = 4.0
    assert cache_key(file_sha256(clip), **scanner.cache_config()) != key_before


def test_no_cache_stores_nothing(tmp_path, media, detector):
    scanner = Scanner(detector=detector, encoders="debug", precision="fp32", workers=0, cache=False)
    assert scanner.cache is None
    assert all(r.status == "ok" for r in _scan(scanner, media))


def test_files_longer_than_the_cap_are_scored_but_not_cached(tmp_path, media, detector, monkeypatch):
    monkeypatch.setattr(scanner_module, "MAX_CACHED_WINDOWS", 1)  # a.mp4 has two windows, b.wav one
    cache = FeatureCache(tmp_path / "cache")
    scanner = Scanner(detector=detector, encoders="debug", precision="fp32", workers=0, cache=cache)
    long_clip, short_clip = media / "a.mp4", media / "b.wav"
    results = {r.path: r for r in (scanner.scan_file(long_clip), scanner.scan_file(short_clip))}
    assert results[str(long_clip)].status == "ok" and len(results[str(long_clip)].windows) == 2
    assert cache_key(file_sha256(long_clip), **scanner.cache_config()) not in cache
    assert cache_key(file_sha256(short_clip), **scanner.cache_config()) in cache


def test_corrupt_entry_is_a_miss(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put("k", {"x": torch.ones(2)}, {"a": 1})
    cache._connect().execute("UPDATE features SET value = ? WHERE key = 'k'", (b"garbage",))
    assert cache.get("k") is None and cache.misses == 1


WRITER = """
import sys, torch
from deepscan.cache import FeatureCache
cache = FeatureCache(sys.argv[1])
i = 0
while True:
    cache.put(f"k{i}", {"x": torch.full((64, 512), float(i))}, {"i": i})
    print(i, flush=True)
    i += 1
"""

READER = """
import sys, torch
from deepscan.cache import FeatureCache
cache = FeatureCache(sys.argv[1])
seen = bad = 0
for _ in range(10):
    for i in range(0, 30):
        entry = cache.get(f"k{i}")
        if entry is None:
            continue
        tensors, meta = entry
        seen += 1
        if meta["i"] != i or not bool((tensors["x"] == i).all()):
            bad += 1
print(seen, bad)
"""


def test_concurrent_readers_and_a_killed_writer_leave_a_usable_cache(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    path = str(tmp_path / "cache")
    FeatureCache(path)  # create the schema before the race
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE, text=True, env=env)
    readers = [subprocess.Popen([sys.executable, "-c", READER, path], stdout=subprocess.PIPE, text=True, env=env)
               for _ in range(2)]
    written = -1
    deadline = time.monotonic() + 120
    while written < 20 and time.monotonic() < deadline:
        written = int(writer.stdout.readline())
    writer.send_signal(signal.SIGKILL)  # mid-write, possibly inside a transaction
    writer.wait()
    for reader in readers:
        out, _ = reader.communicate(timeout=300)
        seen, bad = map(int, out.split())
        assert bad == 0 and reader.returncode == 0
    cache = FeatureCache(path)
    assert len(cache) >= written + 1
    for i in range(written + 1):  # every committed entry survived the kill intact
        tensors, meta = cache.get(f"k{i}")
        assert meta["i"] == i and bool((tensors["x"] == i).all())
    cache.put("after", {"x": torch.zeros(1)}, {})  # and it is still writable
    assert "after" in cache
