"""``python -m bench.synthetic_speech``: the learned speech expert judged on ../shared/realworld audio.

Nothing here trains, tunes or calibrates on ../shared/realworld: the shipped weights are only
scored there. Every audio file of its manifest is decoded with :func:`deepscan.media.load_waveform`
(16 kHz mono float32), cut into the scanner's 4 s windows
(:func:`deepscan.experts.speech_learned.windows_of`: consecutive 64,000-sample windows, a last
partial window kept from 2 s or when it is the only one) and scored by

- ``synthetic_speech``: the shipped expert, mean P(fake) over the windows;
- ``AASIST`` and ``AASIST-L``: the released weights (``../shared/models``), mean P(spoof) over the
  same windows, each tiled to 64,600 samples (:func:`deepscan.experts.aasist.window_input`).

Reported per model: per-file ROC AUC over all audio with a 95 % percentile bootstrap interval that
resamples whole pairs (:func:`deepscan.evaluation.bootstrap_metric`, 2,000 rounds); per fake method
(its fakes against every real file); and per source subset, separating the clean comparisons that
../shared/realworld/README.md names (WaveFake, NaturalSpeech 1, the FastSpeech 2 page: same
container, codec and rate on both sides) from the confounded ones (NaturalSpeech 2 LibriSpeech:
FLAC reals; VCTK: 48 kHz reals; VALL-E: 24 kHz fakes). The leave-generator-out metrics recorded in
the weights' metadata at training time are copied beside them. Results go to
``bench/results/synthetic_speech.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "bench" / "results" / "synthetic_speech.json"

# pair-id prefixes of ../shared/realworld audio -> (subset name, clean comparison?)
SUBSETS = {
    "wf": ("WaveFake (LJSpeech vs vocoder copies)", True),
    "ns1_": ("NaturalSpeech 1 page (LJSpeech)", True),
    "fs2_": ("FastSpeech 2 page (MP3, 44.1 kHz)", True),
    "ns2l": ("NaturalSpeech 2 LibriSpeech (FLAC reals)", False),
    "ns2v": ("NaturalSpeech 2 VCTK (48 kHz reals)", False),
    "ns2c": ("NaturalSpeech 2 vs VALL-E (24 kHz fakes)", False),
}


def subset_of(pair: str) -> str:
    """The :data:`SUBSETS` key of a pair id (longest matching prefix), or ``"other"``."""
    for prefix in sorted(SUBSETS, key=len, reverse=True):
        if pair.startswith(prefix):
            return prefix
    return "other"


def _interval(labels, scores, groups) -> dict:
    from deepscan.metrics import bootstrap_metric

    labels = np.asarray(labels)
    value, lo, hi = bootstrap_metric(labels, scores, groups)
    return {"auc": round(value, 4), "ci95": [round(lo, 4), round(hi, 4)],
            "n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum())}


def score_realworld(weights=None, models_dir=None, realworld=None) -> dict:
    """Score every realworld audio file with the three models.

    Parameters
    ----------
    weights : path, optional
        The speech expert's safetensors (default: the packaged file).
    models_dir : path, optional
        Folder with ``AASIST.pth`` and ``AASIST-L.pth`` (default ``../shared/models``).
    realworld : path, optional
        The realworld folder (default ``../shared/realworld``).

    Returns
    -------
    dict
        ``files``: list of per-file records (name, label, method, pair, subset, scores per model).

    Raises
    ------
    FileNotFoundError
        The realworld manifest or the AASIST weights are missing.
    """
    from deepscan.labelled import read_manifest
    from deepscan.experts.aasist import load_aasist, p_spoof, window_input
    from deepscan.experts.speech_learned import load_speech_expert, windows_of
    from deepscan.media import load_waveform

    models_dir = Path(models_dir or SHARED / "models")
    realworld = Path(realworld or SHARED / "realworld")
    rows = [r for r in read_manifest(realworld / "MANIFEST.tsv") if r.kind == "audio"]
    expert = load_speech_expert(weights, aasist_path=models_dir / "AASIST.pth")
    aasist = {v: load_aasist(models_dir / f"{v}.pth", v) for v in ("AASIST", "AASIST-L")}
    files = []
    for r in rows:
        wave = load_waveform(r.path)
        windows = windows_of(wave)
        scores = {"synthetic_speech": expert.score_file(wave)}
        batch = torch.from_numpy(np.stack([window_input(w) for w in windows]))
        with torch.inference_mode():
            for name, model in aasist.items():
                logits, _ = model(batch)
                scores[name] = float(np.mean(p_spoof(logits)))
        files.append({"name": r.path.name, "label": "fake" if r.label else "real", "method": r.method,
                      "pair": r.pair, "subset": subset_of(r.pair), "windows": len(windows),
                      "scores": {k: round(v, 5) for k, v in scores.items()}})
    return {"files": files, "metadata": expert.metadata}


def tables(files: list[dict]) -> dict:
    """AUC tables per model: overall, per fake method, per subset (clean and confounded).

    Parameters
    ----------
    files : list of dict
        Records from :func:`score_realworld`.

    Returns
    -------
    dict
        model -> {"all", "clean_subsets", "per_method", "per_subset"}, each an AUC with its
        pair-grouped 95 % interval and counts; per method also the mean score of its fakes.
    """
    labels = np.array([f["label"] == "fake" for f in files], int)
    pairs = np.array([f["pair"] for f in files])
    subsets = np.array([f["subset"] for f in files])
    methods = np.array([f["method"] for f in files])
    out = {}
    for model in files[0]["scores"]:
        s = np.array([f["scores"][model] for f in files])
        clean = np.isin(subsets, [k for k, (_, c) in SUBSETS.items() if c])
        entry = {"all": _interval(labels, s, pairs), "clean_subsets": _interval(labels[clean], s[clean], pairs[clean]),
                 "per_method": {}, "per_subset": {}}
        for m in sorted(set(methods[labels == 1])):
            sel = (labels == 0) | (methods == m)
            entry["per_method"][m] = {**_interval(labels[sel], s[sel], pairs[sel]),
                                      "mean_score_fakes": round(float(s[methods == m].mean()), 4)}
        for key, (title, is_clean) in SUBSETS.items():
            sel = subsets == key
            if sel.any() and len(set(labels[sel])) == 2:
                entry["per_subset"][title] = {**_interval(labels[sel], s[sel], pairs[sel]), "clean": is_clean,
                                              "mean_score_real": round(float(s[sel & (labels == 0)].mean()), 4),
                                              "mean_score_fake": round(float(s[sel & (labels == 1)].mean()), 4)}
        out[model] = entry
    return out


def main(argv=None) -> dict:
    """Command line: score, tabulate, write ``bench/results/synthetic_speech.json``, print a summary."""
    ap = argparse.ArgumentParser(prog="python -m bench.synthetic_speech", description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=None, help="speech expert safetensors (default: packaged)")
    ap.add_argument("--models-dir", type=Path, default=None, help="folder with AASIST.pth and AASIST-L.pth")
    ap.add_argument("--realworld", type=Path, default=None, help="../shared/realworld")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from deepscan.experts.speech_learned import DEFAULT_WEIGHTS

    t0 = time.monotonic()
    scored = score_realworld(args.weights, args.models_dir, args.realworld)
    meta = scored["metadata"]
    weights = Path(args.weights or DEFAULT_WEIGHTS)
    result = {
        "command": "python -m bench.synthetic_speech",
        "weights": weights.name,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "config": meta.get("config"),
        "training": {"files": len(meta.get("training_files", [])),
                     "fake": sum(f["label"] == "fake" for f in meta.get("training_files", [])),
                     "excluded": meta.get("excluded"), "seed": meta.get("seed"),
                     "seconds": meta.get("training_seconds"), "train_config": meta.get("train_config")},
        "leave_generator_out": meta.get("leave_generator_out"),
        "realworld": {"protocol": "per-file AUC, file score = mean over the scanner's 4 s windows; 95 % percentile "
                                  "bootstrap interval resampling pairs (2,000 rounds); never trained, tuned or "
                                  "calibrated on", "tables": tables(scored["files"]), "files": scored["files"]},
        "seconds": round(time.monotonic() - t0, 1),
    }
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n")
    for model, t in result["realworld"]["tables"].items():
        a, c = t["all"], t["clean_subsets"]
        print(f"{model:17s} all {a['auc']:.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}]   "
              f"clean {c['auc']:.3f} [{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}]")
    return result


if __name__ == "__main__":
    main()
