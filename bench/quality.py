"""``python -m bench.quality``: detection on real media (../shared/realworld), per kind, method and cue.

Runs what ``deepscan evaluate ../shared/realworld`` runs (:func:`deepscan.evaluation.evaluate_media`):
every file of ``../shared/realworld/MANIFEST.tsv`` scanned as ``deepscan check`` scans it (experts on,
weights from ``../shared/models``), then per media kind (audio, image, video), per fake method and on
the clean subsets the realworld README names (:data:`deepscan.evaluation.REALWORLD`), for the fused
verdict (when the detector is a trained one) and for each cue alone: AUC, EER, AP, accuracy at the
threshold and ECE, each with a 95% bootstrap interval over pairs, rendered by
:func:`deepscan.writers.evaluation.render_markdown` (the same tables as ``deepscan evaluate --format
markdown``). Nothing here trains, tunes or calibrates on these files. The learned experts'
leave-generator-out tables on the harvest (``bench/results/<expert>.json``, written by their
training) are added beside them.

The report goes to BENCHMARKS.md between ``<!-- bench:quality -->`` markers, with the command.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench.sections import write_section

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SHARED = HERE.parent.parent / "shared"


def _placeholder_detector(folder: Path) -> Path:
    """An untrained detector for debug encoders: the scan then reports the cues only (verdicts withheld)."""
    import torch

    from deepscan.media import VISUAL_FPS, WINDOW_SECONDS
    from deepscan.model import CrossModalDetector, DetectorConfig, save_detector

    path = folder / "untrained.safetensors"
    torch.manual_seed(0)
    dims = {"image": 512, "audio": 768, "video": 512}
    save_detector(path, CrossModalDetector(DetectorConfig()),
                  encoders={m: {"id": "debug", "revision": None, "dim": d} for m, d in dims.items()},
                  sampling={"window_s": WINDOW_SECONDS, "visual_fps": VISUAL_FPS}, threshold=0.5,
                  provenance={"trained_on": "untrained"})
    return path


def run(args) -> dict:
    from deepscan.evaluation import read_labelled, evaluate_media
    from deepscan.model.fusion import DEFAULT_PATH
    from deepscan.scanner import Scanner

    labelled = read_labelled(args.realworld)
    detector, encoders = args.detector, args.encoders
    if detector is None and not DEFAULT_PATH.is_file():  # nothing ships yet: report the cues alone
        detector = _placeholder_detector(Path(tempfile.mkdtemp(prefix="deepscan-quality-")))
        encoders = encoders or "debug"
    scanner = Scanner(detector=detector, encoders=encoders, experts=args.experts, models_dir=args.models_dir,
                      cache=True if args.cache else False)
    try:
        report = evaluate_media(labelled, scanner, rounds=args.rounds)
    finally:
        scanner.close()
    report["command"] = ("python -m bench.quality " + " ".join(sys.argv[1:])).strip()
    report["learned"] = {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))
                         if not p.stem.endswith("_oof")}
    return report


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ci(entry: dict) -> str:
    ci = entry.get("ci95") or entry.get("auc_ci95")
    return f"{_fmt(entry.get('auc'))} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else _fmt(entry.get("auc"))


def learned_tables(learned: dict) -> list:
    """Markdown lines: each learned expert's held-out AUC on the harvest, overall and per held-out system.

    Parameters
    ----------
    learned : dict
        ``bench/results/<cue>.json`` by cue, as their training benches wrote them (``*_oof.json``
        per-file scores are skipped).

    Returns
    -------
    list of str
    """
    lines = []
    speech = learned.get("synthetic_speech", {}).get("leave_generator_out")
    if speech:
        lines += ["", "**synthetic_speech on the harvest, held out** (`bench/results/synthetic_speech.json`): every "
                  f"source page held out in turn, AUC {_ci(speech['overall'])} ({speech['overall']['n_real']} real, "
                  f"{speech['overall']['n_fake']} fake); after a random codec/rate/gain round trip of the held-out "
                  f"files {_ci(speech['overall_format_scrambled'])}. Leave-generator-out: each system's pages held "
                  "out together, its fakes against all out-of-fold reals:", "",
                  "| held-out system | fakes | AUC |", "|---|---:|---:|"]
        for system, m in sorted(speech.get("per_system", {}).items(), key=lambda kv: kv[1].get("auc_vs_all_reals", 0)):
            lines.append(f"| {system} | {m.get('n_fake', '')} | {_fmt(m.get('auc_vs_all_reals'))} |")
        summary = speech.get("per_system_summary") or {}
        if summary:
            lines += ["", f"{summary.get('systems_below_0.85')} of {summary.get('systems')} systems below 0.85; "
                      f"median {_fmt(summary.get('median_auc'))}."]
    image = learned.get("generated_image", {})
    if image.get("leave_generator_out"):
        oof = image.get("out_of_fold", {})
        lines += ["", "**generated_image on the harvest, held out** (`bench/results/generated_image.json`): out of "
                  f"fold {_ci(oof.get('clean', {}))}, every file re-encoded as JPEG {_ci(oof.get('jpeg', {}))}. "
                  "Leave-generator-out (each system's pages held out; its fakes against the held-out reals):", "",
                  "| held-out system | fakes | AUC | AUC, JPEG |", "|---|---:|---:|---:|"]
        for system, m in sorted(image["leave_generator_out"].items(), key=lambda kv: kv[1]["clean"].get("auc") or 0):
            lines.append(f"| {system} | {m['clean'].get('n_fake', '')} | {_ci(m['clean'])} | {_fmt(m['jpeg'].get('auc'))} |")
    face = (learned.get("face_forgery", {}).get("harvest") or {})
    if face.get("face_forgery"):
        ff = face["face_forgery"]
        oof = ff.get("out_of_fold", {})
        kinds = ", ".join(f"{k} {_fmt(v.get('auc'))}" for k, v in sorted((oof.get("per_kind") or {}).items()))
        lines += ["", "**face_forgery on the harvest, held out** (`bench/results/face_forgery.json`): page folds, "
                  f"AUC {_ci(oof)} ({kinds}). Per held-out system, beside the published Meso-4 weights (never "
                  "trained on the harvest):", "", "| system | fakes | face_forgery | Meso4_DF | Meso4_F2F |",
                  "|---|---:|---:|---:|---:|"]
        df = (face.get("meso4_df") or {}).get("per_system", {})
        f2f = (face.get("meso4_f2f") or {}).get("per_system", {})
        for system, m in sorted(ff.get("leave_generator_out", {}).items(), key=lambda kv: kv[1].get("auc") or 0):
            lines.append(f"| {system} | {m.get('n_fake', '')} | {_fmt(m.get('auc'))} | "
                         f"{_fmt((df.get(system) or {}).get('auc'))} | {_fmt((f2f.get(system) or {}).get('auc'))} |")
    return lines


def markdown(report: dict) -> str:
    from deepscan.writers.evaluation import render_markdown

    detector = report["detector"]
    lines = [f"Command: `{report['command']}` ({report['files']} files of ../shared/realworld, never trained, tuned or "
             f"calibrated on; scan {report['elapsed_s']} s; detector: {detector.get('name')}"
             f"{'' if report['fused'] else ', untrained: cues only'}).", "", render_markdown(report)]
    if report["errors"]:
        lines += ["", "Files that could not be scanned: " + ", ".join(f"{Path(p).name} ({r})"
                                                                  for p, r in report["errors"].items())]
    if report["unknown"]:
        lines += ["", f"Verdict withheld (`unknown`, no cue applies) on {len(report['unknown'])} files: "
                  + ", ".join(f"{Path(p).name} ({r})" for p, r in report["unknown"].items())]
    lines += learned_tables(report.get("learned", {}))
    return "\n".join(lines)


def main(argv=None) -> None:
    from deepscan.writers.safe import json_dumps

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", help="detector checkpoint (default: the one deepscan ships; while none "
                        "ships, an untrained one: cues only)")
    parser.add_argument("--encoders", help="encoders, when the detector needs them (default: the checkpoint's)")
    parser.add_argument("--experts", default="auto")
    parser.add_argument("--models-dir", default=str(SHARED / "models"))
    parser.add_argument("--realworld", default=str(SHARED / "realworld"))
    parser.add_argument("--rounds", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--no-cache", dest="cache", action="store_false")
    parser.add_argument("--json", help="also write the report as JSON to this file")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--stamp", action="store_true",
                        help="record the fused per-kind AUCs in the cue-fusion checkpoint's provenance (what "
                        "`deepscan check` prints on its detector line); coefficients and thresholds untouched")
    args = parser.parse_args(argv)
    report = run(args)
    if args.stamp:
        from deepscan.model.fusion import DEFAULT_PATH
        from deepscan.training.fusion import stamp_real_media

        recorded = stamp_real_media(args.detector or DEFAULT_PATH, report)
        print(f"recorded in {args.detector or DEFAULT_PATH}: {recorded}", file=sys.stderr)
    text = markdown(report)
    print(text)
    if args.json:
        Path(args.json).write_text(json_dumps(report, indent=1, default=str))
    if not args.no_write:
        write_section("quality", text, heading="## Detection on real media (`python -m bench.quality`)")


if __name__ == "__main__":
    main()
