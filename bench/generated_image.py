"""``python -m bench.generated_image``: the generated-image expert judged on what it never saw.

Writes ``bench/results/generated_image.json`` with

- ``leave_generator_out`` and ``out_of_fold``: the harvest metrics recorded in the weights'
  provenance at training time (:func:`deepscan.training.expert_image.train`);
- ``realworld``: AUC on ../shared/realworld images (never trained, tuned or calibrated on), with a
  pair-grouped bootstrap 95 % interval (:func:`deepscan.evaluation.bootstrap_metric`), overall, per
  method (that method's fakes against every real image) and for the two families apart: GAN images,
  which the expert is meant to catch, and face manipulations of real photos (classical
  landmark-warp swaps, deepfake face crops, a DFDC frame), which are not GAN or diffusion images;
  each also with every file re-encoded as JPEG (quality 90), so that PNG against JPEG says nothing;
- ``files``: every realworld image's score;
- ``cost``: milliseconds per :meth:`score` call on frames from 64 x 64 to 3840 x 2160, one thread.

Nothing here fits anything: the weights are used as shipped (or as ``--weights`` names).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "bench" / "results" / "generated_image.json"
CONTROL_QUALITY = 90  # JPEG quality of the format-equalised control
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


def realworld(expert, manifest: Path) -> dict:
    """Score every realworld image, clean and re-encoded as JPEG; AUC tables.

    Parameters
    ----------
    expert : deepscan.experts.generated_image.GeneratedImageExpert
    manifest : Path
        ``../shared/realworld/MANIFEST.tsv``.

    Returns
    -------
    dict
        ``overall``, ``gan_images``, ``face_manipulations``, ``per_method`` (each ``{"clean",
        "jpeg90"}`` AUC entries) and ``files``.
    """
    from deepscan.labelled import read_manifest
    from deepscan.media import load_image
    from deepscan.training.expert_image import jpeg_roundtrip

    rows = [r for r in read_manifest(manifest) if r.kind == "image" and r.exists]
    files = []
    for r in rows:
        image = load_image(r.path)
        p, _ = expert.score(image)
        p_jpeg, _ = expert.score(jpeg_roundtrip(image, CONTROL_QUALITY))
        files.append({"name": r.path.name, "label": "fake" if r.label else "real", "method": r.method,
                      "pair": r.pair, "size": [int(image.shape[1]), int(image.shape[0])],
                      "p_fake": round(p, 4), "p_fake_jpeg90": round(p_jpeg, 4)})
    labels = np.array([r.label for r in rows])
    pairs = np.array([r.pair for r in rows])
    clean = np.array([f["p_fake"] for f in files])
    jpeg = np.array([f["p_fake_jpeg90"] for f in files])
    gan = np.array([r.label == 1 and r.method.startswith(GAN_METHOD_PREFIX) for r in rows])

    def table(mask):
        return {"clean": _auc(labels[mask], clean[mask], pairs[mask]),
                "jpeg90": _auc(labels[mask], jpeg[mask], pairs[mask])}

    real = labels == 0
    out = {"overall": table(np.ones(len(rows), bool)), "gan_images": table(real | gan),
           "face_manipulations": table(real | (labels == 1) & ~gan), "per_method": {}}
    for method in sorted({r.method for r in rows if r.label == 1}):
        out["per_method"][method] = table(real | np.array([r.method == method for r in rows]))
        scores = clean[np.array([r.method == method for r in rows])]
        out["per_method"][method]["caught_at_0.5"] = f"{int((scores >= 0.5).sum())}/{scores.size}"
        out["per_method"][method]["median_p_fake"] = round(float(np.median(scores)), 4)
    out["real_median_p_fake"] = round(float(np.median(clean[real])), 4)
    out["real_flagged_at_0.5"] = f"{int((clean[real] >= 0.5).sum())}/{int(real.sum())}"
    out["files"] = files
    return out


def cost(expert, repeats: int = 20) -> dict:
    """Median milliseconds of one :meth:`score` call per frame size (one torch thread)."""
    rng = np.random.default_rng(0)
    out = {}
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
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
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
        "out_of_fold": {k: v for k, v in metrics.get("out_of_fold", {}).items()},
        "leave_generator_out": metrics.get("leave_generator_out"),
        "cpu": platform.processor() or platform.machine(),
        "cost_ms_per_frame_1_thread": cost(expert),
    }
    manifest = Path(args.realworld)
    out["realworld"] = realworld(expert, manifest) if manifest.is_file() else {"skipped": f"{manifest} not found"}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    rw = out["realworld"]
    if "overall" in rw:
        for name in ("overall", "gan_images", "face_manipulations"):
            print(f"{name:20s} AUC {rw[name]['clean']['auc']} {rw[name]['clean']['ci95']}  "
                  f"(all JPEG {CONTROL_QUALITY}: {rw[name]['jpeg90']['auc']})")
        for method, entry in rw["per_method"].items():
            print(f"  {method[:60]:60s} AUC {entry['clean']['auc']} caught {entry['caught_at_0.5']}")
    print("cost ms/frame:", out["cost_ms_per_frame_1_thread"])
    return out


if __name__ == "__main__":
    main()
