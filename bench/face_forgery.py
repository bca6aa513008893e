"""``python -m bench.face_forgery``: the ``face_forgery`` expert judged on real-world media, beside Meso-4.

Judged on ``../shared/realworld`` (videos and face images; nothing there was trained, tuned or
calibrated on) and, for reference, on the harvest the expert learned from (its leave-generator-out
and out-of-fold numbers come from the weights' own provenance; the published Meso-4 weights never
saw the harvest, so their harvest AUCs are held-out numbers too).

Every file goes through the same path: decoded once (:func:`deepscan.media.iter_windows`, stills
through :func:`deepscan.media.load_image`), the main face tracked by YuNet and cut as the aligned
256x256 Meso-4 crop and the 224x224 CLIP crop, up to 16 frames over the first 16 s (:mod:`deepscan.training.expert_face`,
cached); each scorer gives P(fake) per crop, and a file's score is the mean over its crops.
Scorers: ``face_forgery`` (the shipped weights, or ``--weights``, on the crop its metadata names),
``meso4_df`` and ``meso4_f2f`` (1 - P(real) of the published Meso-4 weights on the aligned crops).

Reported per kind (video, image): per-file AUC with a 95 % percentile-bootstrap interval that
resamples whole pairs (the note's ``pair=``), per fake method (its fakes against all reals of the
kind), and each fake's score with the share of reals it outscores, so that what stays uncaught
is plain. Written to ``bench/results/face_forgery.json``; a Markdown summary goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "bench" / "results" / "face_forgery.json"


def _meso_scorer(path: Path):
    from deepscan.experts.meso import load_meso4, preprocess

    model = load_meso4(path)

    @torch.inference_mode()
    def score(crops: np.ndarray) -> np.ndarray:
        out = [1.0 - torch.sigmoid(model(preprocess(crops[i:i + 64]))[0]).numpy() for i in range(0, len(crops), 64)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    return score


def scorers(weights: Path | None, models: Path) -> dict:
    """name -> ``(crop kind, crops uint8 (N, S, S, 3) -> p_fake (N,))``; Meso-4 takes its aligned 256 px crops."""
    from deepscan.experts.face_forgery import load_face_expert

    expert = load_face_expert(weights)
    return {
        "face_forgery": (expert.crop, lambda crops: expert.score(crops)[0]),
        "meso4_df": ("meso", _meso_scorer(models / "Meso4_DF.h5")),
        "meso4_f2f": ("meso", _meso_scorer(models / "Meso4_F2F.h5")),
    }, expert


def file_scores(samples, scorer) -> np.ndarray:
    """Mean P(fake) over each file's crops (of the scorer's kind); NaN without a face."""
    crop, score = scorer
    return np.array([float(np.mean(score(s.crops if crop == "meso" else s.clip))) if s.n else np.nan
                     for s in samples])


def judge(samples, scores: dict, rounds: int = 2000) -> dict:
    """AUC tables of one kind: overall with pair-bootstrap CI, per fake method, per fake file."""
    from deepscan.metrics import auc, bootstrap_metric
    from deepscan.training.expert_face import rank_auc

    labels = np.array([s.file.label for s in samples])
    pairs = np.array([s.file.pair for s in samples])
    methods = np.array([s.file.method for s in samples])
    out = {"n_real": int((labels == 0).sum()), "n_fake": int(labels.sum()), "scorers": {}}
    for name, sc in scores.items():
        ok = ~np.isnan(sc)
        _, lo, hi = bootstrap_metric(labels[ok], sc[ok], pairs[ok], metric=rank_auc, rounds=rounds)
        point = auc(labels[ok], sc[ok])  # scikit-learn; rank_auc equals it and is fast enough to resample
        real = ok & (labels == 0)
        per_method = {}
        for method in sorted(set(methods[labels == 1])):
            m = ok & (methods == method)
            both = real | m
            per_method[method] = {"auc": round(auc(labels[both], sc[both]), 4), "n_fake": int(m.sum()),
                                  "mean_p_fake": round(float(sc[m].mean()), 4)}
        per_file = []
        for i in np.flatnonzero(labels == 1):
            beaten = float((sc[real] < sc[i]).mean() + 0.5 * (sc[real] == sc[i]).mean()) if ok[i] else None
            per_file.append({"name": samples[i].file.path.name, "method": methods[i],
                             "p_fake": None if not ok[i] else round(float(sc[i]), 4),
                             "share_of_reals_below": None if beaten is None else round(beaten, 3)})
        out["scorers"][name] = {
            "auc": round(point, 4), "auc_ci95": [round(lo, 4), round(hi, 4)],
            "mean_p_fake_real": round(float(sc[real].mean()), 4),
            "mean_p_fake_fake": round(float(sc[ok & (labels == 1)].mean()), 4),
            "n_without_face": int((~ok).sum()),
            "per_method": per_method, "fakes": per_file,
            "reals": [{"name": samples[i].file.path.name, "p_fake": round(float(sc[i]), 4)}
                      for i in np.flatnonzero(real)],
        }
    return out


def harvest_baselines(harvest: Path, score_fns: dict) -> dict:
    """Per-system AUC of the published Meso-4 weights on the harvest's face files (never seen by them)."""
    from deepscan.training.expert_face import _auc_table, face_files, load_samples

    samples = [s for s in load_samples(face_files(harvest)) if s.n]
    out = {}
    for name in ("meso4_df", "meso4_f2f"):
        table = _auc_table(samples, file_scores(samples, score_fns[name]))
        out[name] = {k: table[k] for k in ("auc", "auc_ci95", "per_kind", "per_system") if k in table}
    return out


def markdown(result: dict) -> str:
    lines = []
    for kind, table in result["realworld"].items():
        lines.append(f"\n### realworld {kind}: {table['n_real']} real, {table['n_fake']} fake\n")
        names = list(table["scorers"])
        lines.append("| | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        lines.append("| AUC [95 % CI, pairs] | " + " | ".join(
            f"{table['scorers'][n]['auc']:.2f} [{table['scorers'][n]['auc_ci95'][0]:.2f}, {table['scorers'][n]['auc_ci95'][1]:.2f}]"
            for n in names) + " |")
        methods = table["scorers"][names[0]]["per_method"]
        for method in methods:
            lines.append(f"| {method} (n={methods[method]['n_fake']}) | " + " | ".join(
                f"{table['scorers'][n]['per_method'][method]['auc']:.2f}" for n in names) + " |")
        lines.append("| mean P(fake) real / fake | " + " | ".join(
            f"{table['scorers'][n]['mean_p_fake_real']:.2f} / {table['scorers'][n]['mean_p_fake_fake']:.2f}"
            for n in names) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=None, help="face_forgery safetensors (default: shipped)")
    parser.add_argument("--realworld", type=Path, default=SHARED / "realworld")
    parser.add_argument("--harvest", type=Path, default=SHARED / "harvest",
                        help="harvest root for the Meso-4 baselines' harvest AUCs (files absent are skipped)")
    parser.add_argument("--models", type=Path, default=SHARED / "models")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--rounds", type=int, default=2000, help="bootstrap resamples")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from deepscan.labelled import read_manifest
    from deepscan.training.expert_face import load_samples

    t0 = time.time()
    score_fns, expert = scorers(args.weights, args.models)
    rows = [(f, "") for f in read_manifest(args.realworld / "MANIFEST.tsv") if f.kind in ("video", "image")]
    samples = load_samples(rows, quiet=False, models_dir=args.models)
    result = {"command": "python -m bench.face_forgery" + (f" --weights {args.weights}" if args.weights else ""),
              "weights": {"path": str(expert.path.relative_to(ROOT) if expert.path.is_relative_to(ROOT) else expert.path),
                          "sha256": expert.sha256, "config": expert.config},
              "protocol": "file score = mean P(fake) over up to 16 YuNet face crops (first 16 s at 8 fps; "
                          "face_forgery on the crop its config names, Meso-4 on the aligned 256 px crop); "
                          "AUC per kind with a 95 % percentile bootstrap over pairs (2000 rounds)",
              "realworld": {}}
    for kind in ("video", "image"):
        subset = [s for s in samples if s.file.kind == kind]
        result["realworld"][kind] = judge(subset, {n: file_scores(subset, f) for n, f in score_fns.items()}, args.rounds)
    prov = expert.provenance.get("metrics", {})
    result["harvest"] = {"face_forgery": {k: prov[k] for k in ("leave_generator_out", "out_of_fold", "sbi_only", "files")
                                          if k in prov}}
    if (args.harvest / "video" / "MANIFEST.tsv").is_file():
        result["harvest"].update(harvest_baselines(args.harvest, score_fns))
    result["seconds"] = round(time.time() - t0, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
