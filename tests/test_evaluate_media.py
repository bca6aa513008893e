"""``deepscan evaluate`` on labelled media: a manifest or real/ and fake/ folders, scanned, scored per kind, method, cue.

The numbers are checked against scikit-learn called directly on the scanner's own scores, and the
intervals against :func:`deepscan.evaluation.bootstrap_metric` with those metrics (same resamples).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve
from typer.testing import CliRunner

from deepscan import synth
from deepscan.cli import app
from deepscan.evaluation import (
    KNOWN_DATA_SETS, REALWORLD, bootstrap_metric, parse_subsets, read_labelled, score_table,
)
from deepscan.scanner import Scanner
from deepscan.writers.evaluation import render_markdown, sections
from tests.conftest import MODELS
from tests.helpers import make_detector

runner = CliRunner()
ROUNDS = 100

# name, kind, label, method, pair
ROWS = [(f"real_{i}.wav", "audio", "real", "LJSpeech recording", f"lj{i}") for i in range(4)] + \
       [(f"voc_{i}.wav", "audio", "fake", "vocoder A" if i < 2 else "vocoder B", f"lj{i}") for i in range(4)] + \
       [(f"cam_{i}.png", "image", "real", "photo", f"ph{i}") for i in range(3)] + \
       [(f"gan_{i}.png", "image", "fake", "GAN", f"ph{i}") for i in range(3)]


def _write_manifest(root: Path, rows) -> Path:
    lines = ["name\tkind\tlabel\tmethod\tnote"] + [f"{n}\t{k}\t{lab}\t{m}\tpair={p}; generated" for n, k, lab, m, p in rows]
    (root / "MANIFEST.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "MANIFEST.tsv"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A tiny realworld-style set (files at <kind>/<label>/<name>), its manifest and a demo detector."""
    root = tmp_path_factory.mktemp("labelled")
    for i, (name, kind, label, _, _) in enumerate(ROWS):
        folder = root / kind / label
        folder.mkdir(parents=True, exist_ok=True)
        if kind == "audio":
            synth.write_audio(folder / name, duration_s=1.5, seed=i)
        else:
            synth.write_image(folder / name, size=(160, 160), seed=i, face=i % 2 == 0)
    manifest = _write_manifest(root, ROWS)
    detector = make_detector(root / "demo.safetensors", seed=3)
    models = MODELS if MODELS is not None else tmp_path_factory.mktemp("no-models")
    return root, manifest, detector, models


def _cli(*args):
    return runner.invoke(app, ["evaluate", *map(str, args)])


def _ece(labels, p, bins=15):
    """Expected calibration error written out here (Guo et al. 2017, eq. 3), not taken from deepscan."""
    pred = (p >= 0.5).astype(int)
    conf = np.where(pred == 1, p, 1 - p)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return sum((which == b).mean() * abs((pred == labels)[which == b].mean() - conf[which == b].mean())
               for b in range(bins) if (which == b).any())


def _eer(labels, scores):
    """Where FNR crosses FPR on scikit-learn's ROC curve, linearly interpolated between its points."""
    fpr, tpr, _ = roc_curve(labels, scores)
    diff = (1 - tpr) - fpr  # decreasing from 1 to -1
    k = int(np.flatnonzero(diff <= 0)[0])
    if diff[k] == 0 or k == 0:
        return float(fpr[k])
    w = diff[k - 1] / (diff[k - 1] - diff[k])
    return float(fpr[k - 1] + w * (fpr[k] - fpr[k - 1]))


def test_manifest_evaluation_matches_sklearn(media):
    root, manifest, detector, models = media
    run = _cli(manifest, "--detector", detector, "--encoders", "debug", "--models-dir", models, "--workers", 0,
               "--rounds", ROUNDS, "--subset", "first two pairs=lj0,lj1", "--format", "json")
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout)
    assert report["files"] == len(ROWS) and report["errors"] == {} and report["fused"]
    assert report["subsets"] == {"first two pairs": ["lj0", "lj1"]}

    # the scanner's own scores, straight from a scan of the same files
    with Scanner(detector=detector, encoders="debug", models_dir=models, workers=0) as scanner:
        results = {Path(r.path).name: r for r in scanner.scan([str(manifest.parent / k / lab / n)
                                                               for n, k, lab, _, _ in ROWS], recursive=False)}
    table = report["table"]
    scorers = ["p_fake"] + sorted({c for r in results.values() for c, v in r.cues.items() if v.get("p_fake") is not None})
    assert set(table["kinds"]["audio"]) == set(scorers)
    if MODELS is not None:  # the published experts ran: their cues are scored alone
        assert {"aasist", "meso4"} <= set(scorers)

    def check(rows, got, scorer):
        kept = [(r, results[r[0]]) for r in rows]
        value = [(r, res.p_fake if scorer == "p_fake" else res.cues[scorer]["p_fake"]) for r, res in kept]
        value = [(r, v) for r, v in value if v is not None]
        labels = np.array([r[2] == "fake" for r, _ in value], dtype=int)
        scores = np.array([v for _, v in value])
        assert got["coverage"] == f"{len(value)}/{len(rows)}"
        assert (got["n_real"], got["n_fake"]) == ((labels == 0).sum(), (labels == 1).sum())
        if len(set(labels)) < 2:
            assert got["auc"] is None
            return
        threshold = results[rows[0][0]].threshold if scorer == "p_fake" else 0.5
        assert got["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        assert got["ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
        assert got["eer"] == pytest.approx(_eer(labels, scores), abs=1e-12)
        assert got["accuracy"] == pytest.approx(accuracy_score(labels, scores >= threshold), abs=1e-12)
        assert got["ece"] == pytest.approx(_ece(labels, scores), abs=1e-12)
        pairs = [r[4] for r, _ in value]
        for name, metric in (("auc", roc_auc_score), ("ap", average_precision_score),
                             ("accuracy", lambda y, s: accuracy_score(y, s >= threshold))):
            # a resample holding one class is left out of every interval
            _, lo, hi = bootstrap_metric(labels, scores, pairs, rounds=ROUNDS,
                                         metric=lambda y, s, m=metric: m(y, s) if 0 < y.sum() < y.size else np.nan)
            assert (got[f"{name}_lo"], got[f"{name}_hi"]) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9))
            assert got[f"{name}_lo"] <= got[name] + 1e-9 and got[name] <= got[f"{name}_hi"] + 1e-9

    for kind in ("audio", "image"):
        rows = [r for r in ROWS if r[1] == kind]
        for scorer, got in table["kinds"][kind].items():
            check(rows, got, scorer)
    vocoder_b = [r for r in ROWS if r[1] == "audio" and (r[2] == "real" or r[3] == "vocoder B")]
    for scorer, got in table["methods"]["audio"]["vocoder B"].items():  # its fakes against all reals
        check(vocoder_b, got, scorer)
    assert set(table["methods"]["audio"]) == {"vocoder A", "vocoder B"}
    first_two = [r for r in ROWS if r[4] in ("lj0", "lj1")]
    for scorer, got in table["subsets"]["first two pairs"].items():
        check(first_two, got, scorer)
    by_name = {Path(f["path"]).name: f for f in report["per_file"]}
    assert by_name["voc_3.wav"]["scores"]["p_fake"] == pytest.approx(results["voc_3.wav"].p_fake)
    assert by_name["voc_3.wav"]["method"] == "vocoder B" and by_name["voc_3.wav"]["label"] == "fake"

    # per kind and label, how many files got each verdict, those in the uncertain band among them
    for kind in ("audio", "image"):
        for label in ("real", "fake"):
            mine = [results[n] for n, k, lab, _, _ in ROWS if k == kind and lab == label]
            counts = report["verdicts"][kind][label]
            assert counts["files"] == len(mine)
            for verdict in ("fake", "uncertain", "real", "unknown"):
                assert counts[verdict] == sum(r.verdict == verdict for r in mine), (kind, label, verdict)
        threshold = results[next(n for n, k, *_ in ROWS if k == kind)].threshold
        assert report["verdicts"][kind]["band"] == pytest.approx([threshold - 0.05, threshold + 0.05])

    # the same report for people: every scorer row that scored a file is there, with its numbers
    text = render_markdown(report)
    assert "**Verdicts per media kind (uncertain: p_fake within the band around the threshold)**" in text
    audio_real = report["verdicts"]["audio"]["real"]
    assert (f"| audio | real | 4 | {audio_real['fake']} | {audio_real['uncertain']} | {audio_real['real']} | "
            f"{audio_real['unknown']} | 0 |") in text
    assert f"| audio | p_fake | 8/8 (4 r, 4 f) | {table['kinds']['audio']['p_fake']['auc']:.3f} [" in text
    assert "**Subsets**" in text and "first two pairs (pairs lj0*, lj1*)" in text


def test_folder_of_real_and_fake_and_the_table(media, tmp_path):
    root, manifest, detector, models = media
    folder = tmp_path / "set"
    for name, kind, label, method, _ in ROWS:
        target = folder / label / (method.replace(" ", "_") if label == "fake" else "") / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / kind / label / name, target)
    labelled = read_labelled(folder)
    assert labelled.manifest is None and len(labelled.files) == len(ROWS) and labelled.subsets == {}
    assert {f.method for f in labelled.files if f.label} == {"vocoder_A", "vocoder_B", "GAN"}
    run = _cli(folder, "--detector", detector, "--encoders", "debug", "--models-dir", models, "--workers", 0,
               "--rounds", 20)
    assert run.exit_code == 0, run.output
    assert "Per media kind" in run.stdout and "Per fake method" in run.stdout
    assert "audio: vocoder_A" in run.stdout and "image: GAN" in run.stdout
    assert "p_fake" in run.stdout and "Subsets" not in run.stdout
    assert "Verdicts per media kind" in run.stdout and "uncertain" in run.stdout


def test_verdict_counts_say_how_many_files_fall_in_the_band_per_kind_and_label(tmp_path):
    from deepscan.evaluation import verdict_counts
    from deepscan.labelled import LabelledFile
    from deepscan.results import ScanResult, decide
    from deepscan.writers.evaluation import render_tables, verdict_rows

    band = [0.55, 0.75]
    files, results = [], {}
    for i, (label, p) in enumerate([(0, 0.1), (0, 0.6), (0, 0.7), (1, 0.65), (1, 0.95), (1, None)]):
        f = LabelledFile(tmp_path / f"{i}.wav", "audio", label, "m", "s", "g", f"p{i}", f"{i:064x}")
        files.append(f)
        results[str(f.path)] = ScanResult(path=str(f.path), status="ok", p_fake=p, threshold=0.65, uncertain_band=band,
                                          verdict="unknown" if p is None else decide(p, 0.65, band))
    broken = LabelledFile(tmp_path / "x.wav", "audio", 1, "m", "s", "g", "px", "f" * 64)
    files.append(broken)
    results[str(broken.path)] = ScanResult.error(str(broken.path), "empty file")
    counts = verdict_counts(files, results)
    assert counts["audio"]["real"] == {"files": 3, "fake": 0, "uncertain": 2, "real": 1, "unknown": 0, "error": 0}
    assert counts["audio"]["fake"] == {"files": 4, "fake": 1, "uncertain": 1, "real": 0, "unknown": 1, "error": 1}
    assert counts["audio"]["band"] == band and counts["audio"]["threshold"] == 0.65
    rows = verdict_rows({"verdicts": counts})
    assert [(kind, label, band_text) for kind, label, _, band_text in rows] == [
        ("audio", "real", "0.550–0.750"), ("audio", "fake", "0.550–0.750")]
    from rich.console import Console

    console = Console(width=80, record=True, color_system=None, file=__import__("io").StringIO())
    for part in render_tables({"table": {"kinds": {}, "methods": {}, "subsets": {}}, "verdicts": counts}):
        console.print(part)
    text = console.export_text()
    assert "uncertain" in text and max(len(line) for line in text.splitlines()) <= 80


@pytest.mark.parametrize("case, message", [
    ("label", "neither real nor fake"),
    ("missing", "listed files are missing"),
    ("columns", "missing columns"),
    ("one class", "no fake file"),
    ("short row", "fewer fields than the header"),
    ("not a set", "not labelled media"),
    ("subset", "NAME=PREFIX"),
])
def test_bad_manifest_is_refused_before_scanning(media, tmp_path, case, message):
    root, _, detector, _ = media
    data = tmp_path / "set"
    for kind in ("audio", "image"):
        shutil.copytree(root / kind, data / kind)
    rows = list(ROWS)
    extra = []
    if case == "label":
        rows[0] = (*rows[0][:2], "maybe", *rows[0][3:])
    elif case == "missing":
        rows.append(("gone.wav", "audio", "fake", "vocoder A", "lj9"))
    elif case == "one class":
        rows = [r for r in rows if r[2] == "real"]
    manifest = _write_manifest(data, rows)
    if case == "columns":
        manifest.write_text("name\tlabel\nreal_0.wav\treal\n")
    elif case == "short row":
        manifest.write_text(manifest.read_text() + "real_1.wav\taudio\n")
    elif case == "subset":
        extra = ["--subset", "no equals sign"]
    target = tmp_path if case == "not a set" else manifest
    run = _cli(target, "--detector", detector, "--encoders", "debug", *extra)
    assert run.exit_code == 2, run.output
    assert message in " ".join(run.output.split()), run.output


def test_known_data_set_brings_its_clean_subsets(realworld_dir):
    labelled = read_labelled(realworld_dir)
    assert labelled.known is REALWORLD and REALWORLD in KNOWN_DATA_SETS
    assert set(labelled.subsets) == {"WaveFake (clean)", "NaturalSpeech 1 (clean)", "FastSpeech 2 page (clean)"}
    for name, prefixes in labelled.subsets.items():  # each names real and fake files of one codec and rate
        files = [f for f in labelled.files if f.pair.startswith(prefixes)]
        assert {f.label for f in files} == {0, 1} and {f.kind for f in files} == {"audio"}, name


def test_subsets_and_table_without_a_scan(tmp_path):
    """A layout-only lookalike of realworld gets no subsets; score_table rows follow the predicates."""
    assert parse_subsets(["a=x,y", "b = z"]) == {"a": ("x", "y"), "b": ("z",)}
    with pytest.raises(ValueError, match="twice"):
        parse_subsets(["a=x", "a=y"])
    columns = ["name", "kind", "label", "method", "repo", "commit", "path_in_repo", "sha256", "license", "note"]
    assert REALWORLD.matches(columns, ["wf1", "ns1_0", "fs2_3"])
    assert not REALWORLD.matches(columns, ["wf1", "other"])
    assert not REALWORLD.matches(columns[:4], ["wf1", "ns1_0", "fs2_3"])

    from deepscan.evaluation import LabelledFile, pair_subsets

    files = [LabelledFile(Path(f"{i}.wav"), "audio", i % 2, "m", "m", f"p{i // 2}", f"p{i // 2}", "") for i in range(8)]
    scores = {"cue": {str(f.path): (0.2 + 0.6 * f.label if i != 7 else None) for i, f in enumerate(files)}}
    table = score_table(files, scores, pair_subsets({"first": ("p0", "p1")}), rounds=50)
    whole, first = table["kinds"]["audio"]["cue"], table["subsets"]["first"]["cue"]
    assert whole["coverage"] == "7/8" and whole["auc"] == 1.0 and whole["eer"] == 0.0 and whole["accuracy"] == 1.0
    assert first["coverage"] == "4/4" and first["auc_lo"] == 1.0
    assert [title["title"] for title in sections({"table": table, "subsets": {"first": ["p0", "p1"]}})] == [
        "Per media kind", "Per fake method (its fakes against all reals of the kind)", "Subsets"]
