"""Manifests of labelled media and bootstrap intervals over pairs."""

from __future__ import annotations

import numpy as np
import pytest

from deepscan.labelled import read_manifest
from deepscan.metrics import auc, bootstrap_metric


def test_bootstrap_interval_contains_the_point_and_keeps_pairs_together():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 40)
    scores = labels * 1.0 + rng.normal(0, 0.8, labels.size)
    pairs = np.tile(np.arange(40), 2)
    point, lo, hi = bootstrap_metric(labels, scores, pairs, rounds=300)
    assert lo <= point <= hi and 0.5 < point < 1.0 and hi - lo < 0.4
    perfect = bootstrap_metric(labels, labels.astype(float), pairs, rounds=50)
    assert perfect == (1.0, 1.0, 1.0)
    assert np.isnan(auc([1, 1], [0.2, 0.3]))
    with pytest.raises(ValueError):
        bootstrap_metric([0, 1], [0.5])


def test_manifest_rows_have_paths_labels_and_pairs(tmp_path):
    (tmp_path / "audio" / "fake").mkdir(parents=True)
    (tmp_path / "audio" / "fake" / "a.wav").write_bytes(b"x")
    (tmp_path / "MANIFEST.tsv").write_text(
        "name\tkind\tlabel\tmethod\tnote\n"
        "a.wav\taudio\tfake\tVALL-E\tpair=p1; 24 kHz\n"
        "b.wav\taudio\treal\tLibriSpeech\tpair=p1\n")
    rows = read_manifest(tmp_path / "MANIFEST.tsv")
    assert [(r.label, r.pair, r.exists) for r in rows] == [(1, "p1", True), (0, "p1", False)]
    (tmp_path / "MANIFEST.tsv").write_text("name\tkind\tlabel\nc.wav\taudio\tmaybe\n")
    with pytest.raises(ValueError, match="neither real nor fake"):
        read_manifest(tmp_path / "MANIFEST.tsv")


def test_shared_manifests_read(realworld_dir):
    rows = read_manifest(realworld_dir / "MANIFEST.tsv")
    assert len(rows) == 94 and all(r.exists for r in rows)
    assert {r.kind for r in rows} == {"audio", "image", "video"}
