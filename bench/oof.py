"""``python -m bench.oof CUE [CUE...] --harvest DIR``: out-of-fold scores of the learned experts on the harvest.

The shipped fusion (:mod:`deepscan.training.fusion`) learns how far to trust each cue from the
harvest, the very files the learned experts were trained on; their shipped weights' scores on those
files are in-sample and would be over-trusted. This writes, per learned expert, every harvest file's
score from a model that did not see the file's source page, with the protocol each expert's own
training already uses for its out-of-fold metrics:

- ``synthetic_speech``: leave-one-page-out (:func:`deepscan.training.expert_speech.train`);
- ``generated_image``: folds over connected page/pair components
  (:func:`deepscan.training.expert_image.train`, ``evaluate="oof"``);
- ``face_forgery``: page folds (:func:`deepscan.training.expert_face.cross_validate`).

Output: ``bench/results/<cue>_oof.json`` with ``command``, ``protocol``, ``weights_sha256`` (of the
shipped weights the folds stand in for) and ``scores`` (file SHA-256 -> out-of-fold P(fake), or
``null`` where the file gave no score, e.g. no face). Nothing here reads ../shared/realworld.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WEIGHTS = ROOT / "deepscan" / "experts" / "weights"
CUES = ("synthetic_speech", "generated_image", "face_forgery")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def speech_scores(harvest: Path, quiet: bool) -> tuple[dict, str]:
    """File SHA-256 -> leave-one-page-out P(fake) of the speech expert, and the protocol."""
    from deepscan.training.expert_speech import train

    with tempfile.TemporaryDirectory() as tmp:
        result = train(harvest, Path(tmp) / "speech.safetensors", quiet=quiet)
    lgo = result["leave_generator_out"]
    return {sha: p for sha, (p, _scrambled) in lgo["oof_scores"].items()}, lgo["protocol"]


def image_scores(harvest: Path, quiet: bool) -> tuple[dict, str]:
    """File SHA-256 -> out-of-fold P(fake) of the generated-image expert (clean files), and the protocol."""
    from deepscan.training.expert_image import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        result = train(harvest, Path(tmp) / "image.safetensors", quiet=quiet, evaluate="oof")
    scores = {row["sha256"]: round(_sigmoid(row["logit"]), 5) for row in result["out_of_fold_scores"]}
    folds = TrainConfig().folds
    return scores, (f"{folds} folds over connected components of source page and pair, the shipped recipe "
                    "refitted per fold; file score from the files' clean (not re-encoded) patches")


def face_scores(harvest: Path, quiet: bool) -> tuple[dict, str]:
    """File SHA-256 -> out-of-fold P(fake) of the face-forgery expert (NaN without a face), and the protocol."""
    import torch

    from deepscan.training import expert_face as ef

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the shipped training: reproducible for a fixed thread count
    try:
        config = ef.TrainConfig()
        samples = [s for s in ef.load_samples(ef.face_files(harvest), quiet=quiet, data_root=harvest) if s.n]
        folds = ef.page_folds(samples)
        fresh = ef.model_factory(config, 0, None, harvest)
        scores, _ = ef.cross_validate(samples, config, 0, quiet, folds, "oof", fresh)
    finally:
        torch.set_num_threads(threads)
    out = {s.file.sha256: (None if math.isnan(p) else round(float(p), 5)) for s, p in zip(samples, scores)}
    return out, (f"{int(folds.max()) + 1} folds grouped by source page (expert_face.page_folds), the shipped "
                 "recipe (SBI + harvest fakes) refitted per fold; file score = mean P(fake) over its crops")


SCORERS = {"synthetic_speech": speech_scores, "generated_image": image_scores, "face_forgery": face_scores}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.oof", description=__doc__.split("\n\n")[0])
    parser.add_argument("cues", nargs="+", choices=CUES)
    parser.add_argument("--harvest", type=Path, required=True,
                        help="harvest root with <kind>/MANIFEST.tsv and <kind>/<label>/<name> files")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    for cue in args.cues:
        t0 = time.monotonic()
        scores, protocol = SCORERS[cue](args.harvest, args.quiet)
        shipped = WEIGHTS / f"{cue}.safetensors"
        record = {
            "command": "python -m bench.oof " + " ".join(sys.argv[1:] if argv is None else argv),
            "cue": cue,
            "protocol": protocol,
            "weights_sha256": hashlib.sha256(shipped.read_bytes()).hexdigest() if shipped.is_file() else None,
            "files": len(scores),
            "seconds": round(time.monotonic() - t0, 1),
            "scores": dict(sorted(scores.items())),
        }
        path = RESULTS / f"{cue}_oof.json"
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"{cue}: {len(scores)} files in {record['seconds']} s -> {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
