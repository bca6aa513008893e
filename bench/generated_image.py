"""``python -m bench.generated_image``: the generated-image expert judged on what it never saw.

Writes ``bench/results/generated_image.json`` with

- ``leave_family_out`` (the backbone expert; ``leave_generator_out`` and ``out_of_fold`` for the
  spectrum network): the harvest metrics recorded in the weights' provenance at training time
  (:func:`deepscan.training.expert_image.train`), the format probe beside each family;
- ``realworld``: AUC on ../shared/realworld images (never trained, tuned or calibrated on), with a
  pair-grouped bootstrap 95 % interval (:func:`deepscan.evaluation.bootstrap_metric`), overall, per
  method (that method's fakes against every real image) and for the two families apart: GAN images,
  which the expert is meant to catch, and face manipulations of real photos (classical
  landmark-warp swaps, deepfake face crops, a DFDC frame), which are not GAN or diffusion images;
  each also on copies re-encoded as JPEG quality 80 at 3/4 size (made in a temporary folder), with
  the mean absolute change of ``p_fake``, and the format probe's AUC (:mod:`bench.format_probe`,
  trained on the harvest's files) beside every figure;
- ``files``: every realworld image's score;
- ``cost``: milliseconds per :meth:`score` call on frames from 64 x 64 to 3840 x 2160 (``--threads``).

Nothing here fits anything: the weights are used as shipped (or as ``--weights`` names).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "bench" / "results" / "generated_image.json"
COPY_QUALITY, COPY_SCALE = 80, 0.75  # the robustness copies: JPEG quality 80 at 3/4 size (issue 22)
HARVEST_EXT = Path(os.environ.get("DEEPSCAN_HARVEST_EXT", "/work/harvest-ext/image"))  # extracted extension
GAN_METHOD_PREFIX = "GAN:"  # realworld methods of GAN images (the rest are face manipulations)
COST_SIZES = [(64, 64), (256, 256), (1080, 1920), (2160, 3840)]


def _auc(labels, scores, groups) -> dict:
    from deepscan.metrics import bootstrap_metric

    labels, scores = np.asarray(labels), np.asarray(scores)
    n_real, n_fake = int((labels == 0).sum()), int(labels.sum())
    if not n_real or not n_fake:
        return {"auc": None, "ci95": None, "n_real": n_real, "n_fake": n_fake}
    value, lo, hi = bootstrap_metric(labels, scores, groups)
    return {"auc": round(value, 4), "ci95": [round(lo, 4), round(hi, 4)], "n_real": n_real, "n_fake": n_fake}


def harvest_format_set() -> tuple[np.ndarray, np.ndarray] | None:
    """Format features and labels of the harvest files on disk (the format probe's training set)."""
    from bench.format_probe import format_features
    from deepscan.labelled import read_manifest

    specs = [(SHARED / "harvest" / "image" / "MANIFEST.tsv", None),
             (ROOT / "data" / "harvest" / "image" / "MANIFEST.tsv", HARVEST_EXT)]
    files = []
    for manifest, root in specs:
        if manifest.is_file():
            files += [f for f in read_manifest(manifest, root) if f.kind == "image" and f.exists]
    labels = np.array([f.label for f in files])
    if not len(files) or labels.min() == labels.max():
        return None
    return np.stack([format_features(f.path) for f in files]), labels


def realworld(expert, manifest: Path, probe_set=None) -> dict:
    """Score every realworld image as it is and as a JPEG-q80 copy at 3/4 size; AUC tables.

    Parameters
    ----------
    expert : deepscan.experts.generated_image.BackboneImageExpert or GeneratedImageExpert
    manifest : Path
        ``../shared/realworld/MANIFEST.tsv``.
    probe_set : (np.ndarray, np.ndarray), optional
        The format probe's training set (:func:`harvest_format_set`); its AUC on the same files is
        reported beside the detector's (``format_probe``).

    Returns
    -------
    dict
        ``overall``, ``gan_images``, ``face_manipulations``, ``per_method`` (each ``{"clean",
        "jpeg80_3q"}`` AUC entries, with ``format_probe`` beside), ``mean_abs_change_p_fake``
        (clean against the copies) and ``files``.
    """
    import tempfile

    from PIL import Image

    from bench.format_probe import format_features, probe_scores
    from deepscan.labelled import read_manifest
    from deepscan.media import load_image

    rows = [r for r in read_manifest(manifest) if r.kind == "image" and r.exists]
    files, fmt_clean, fmt_copy = [], [], []
    with tempfile.TemporaryDirectory(prefix="deepscan-rw-") as tmp:
        for i, r in enumerate(rows):
            image = load_image(r.path)
            p, _ = expert.score(image)
            h, w = image.shape[:2]
            copy = Path(tmp) / f"{i}.jpg"
            Image.fromarray(image).resize((max(1, round(w * COPY_SCALE)), max(1, round(h * COPY_SCALE))),
                                          Image.BICUBIC).save(copy, quality=COPY_QUALITY)
            p_copy, _ = expert.score(load_image(copy))
            fmt_clean.append(format_features(r.path))
            fmt_copy.append(format_features(copy))
            files.append({"name": r.path.name, "label": "fake" if r.label else "real", "method": r.method,
                          "pair": r.pair, "size": [int(w), int(h)],
                          "p_fake": round(p, 4), "p_fake_jpeg80_3q": round(p_copy, 4)})
    labels = np.array([r.label for r in rows])
    pairs = np.array([r.pair for r in rows])
    clean = np.array([f["p_fake"] for f in files])
    copies = np.array([f["p_fake_jpeg80_3q"] for f in files])
    probe = {}
    if probe_set is not None:
        probe = {"clean": probe_scores(*probe_set, np.stack(fmt_clean)),
                 "jpeg80_3q": probe_scores(*probe_set, np.stack(fmt_copy))}
    gan = np.array([r.label == 1 and r.method.startswith(GAN_METHOD_PREFIX) for r in rows])

    def table(mask):
        out = {"clean": _auc(labels[mask], clean[mask], pairs[mask]),
               "jpeg80_3q": _auc(labels[mask], copies[mask], pairs[mask])}
        if probe:
            out["format_probe"] = {k: _auc(labels[mask], v[mask], pairs[mask])["auc"] for k, v in probe.items()}
        return out

    real = labels == 0
    out = {"overall": table(np.ones(len(rows), bool)), "gan_images": table(real | gan),
           "face_manipulations": table(real | (labels == 1) & ~gan), "per_method": {},
           "mean_abs_change_p_fake": round(float(np.mean(np.abs(clean - copies))), 4),
           "copies": f"JPEG quality {COPY_QUALITY} at {COPY_SCALE:g} size (Pillow bicubic), in a temporary folder"}
    for method in sorted({r.method for r in rows if r.label == 1}):
        out["per_method"][method] = table(real | np.array([r.method == method for r in rows]))
        scores = clean[np.array([r.method == method for r in rows])]
        out["per_method"][method]["caught_at_0.5"] = f"{int((scores >= 0.5).sum())}/{scores.size}"
        out["per_method"][method]["median_p_fake"] = round(float(np.median(scores)), 4)
    out["real_median_p_fake"] = round(float(np.median(clean[real])), 4)
    out["real_flagged_at_0.5"] = f"{int((clean[real] >= 0.5).sum())}/{int(real.sum())}"
    out["files"] = files
    return out


def cost(expert, repeats: int = 5) -> dict:
    """Median milliseconds of one :meth:`score` call per frame size (the current torch threads)."""
    rng = np.random.default_rng(0)
    out = {"threads": torch.get_num_threads()}
    for h, w in COST_SIZES:
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        expert.score(frame)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            expert.score(frame)
            times.append((time.perf_counter() - t) * 1000)
        out[f"{w}x{h}"] = round(statistics.median(times), 2)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.generated_image", description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=None, help="safetensors (default: the packaged weights)")
    parser.add_argument("--realworld", default=str(SHARED / "realworld" / "MANIFEST.tsv"))
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2: the 2-core target)")
    parser.add_argument("--no-probe", action="store_true", help="skip the format probe (needs the harvest)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from deepscan.experts.generated_image import load_image_expert

    expert = load_image_expert(args.weights)
    provenance = expert.metadata["provenance"]
    metrics = provenance.get("metrics", {})
    out = {
        "command": "python -m bench.generated_image",
        "weights_sha256": expert.sha256,
        "config": expert.metadata["config"],
        "training": {"files": provenance.get("files"), "seed": provenance.get("seed"),
                     "seconds": provenance.get("seconds"), "train_config": provenance.get("train_config")},
        **({"leave_family_out": metrics["leave_family_out"]} if "leave_family_out" in metrics else
           {"out_of_fold": dict(metrics.get("out_of_fold", {})),
            "leave_generator_out": metrics.get("leave_generator_out")}),
        "cpu": platform.processor() or platform.machine(),
        "cost_ms_per_frame": cost(expert),
    }
    manifest = Path(args.realworld)
    probe_set = None if args.no_probe else harvest_format_set()
    out["realworld"] = realworld(expert, manifest, probe_set) if manifest.is_file() else \
        {"skipped": f"{manifest} not found"}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    rw = out["realworld"]
    if "overall" in rw:
        for name in ("overall", "gan_images", "face_manipulations"):
            print(f"{name:20s} AUC {rw[name]['clean']['auc']} {rw[name]['clean']['ci95']}  "
                  f"(JPEG q{COPY_QUALITY} at {COPY_SCALE:g} size: {rw[name]['jpeg80_3q']['auc']} "
                  f"{rw[name]['jpeg80_3q']['ci95']}); format probe {rw[name].get('format_probe')}")
        print(f"mean |change in p_fake| on the copies: {rw['mean_abs_change_p_fake']}")
        for method, entry in rw["per_method"].items():
            print(f"  {method[:60]:60s} AUC {entry['clean']['auc']} caught {entry['caught_at_0.5']}")
    print("cost ms/frame:", out["cost_ms_per_frame"])
    return out


if __name__ == "__main__":
    main()
