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

HERE = Path(__file__).resolve().parent
BENCHMARKS = HERE.parent / "BENCHMARKS.md"
RESULTS = HERE / "results"
SHARED = HERE.parent.parent / "shared"
BEGIN, END = "<!-- bench:quality -->", "<!-- /bench:quality -->"


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
    report["learned"] = {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}
    return report


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
    for name, data in report.get("learned", {}).items():
        logo = data.get("leave_generator_out") or data.get("logo") or {}
        if logo:
            lines += ["", f"**{name}: leave-generator-out AUC on the harvest** (each system held out in turn)", "",
                      "| held-out system | AUC | files |", "|---|---|---|"]
            for system, m in sorted(logo.items()):
                if isinstance(m, dict):
                    auc_value = m.get("auc")
                    lines.append(f"| {system} | {'n/a' if auc_value is None else f'{auc_value:.3f}'} | "
                                 f"{m.get('n', m.get('files', ''))} |")
    return "\n".join(lines)


def write_benchmarks(text: str, path: Path = BENCHMARKS) -> None:
    content = path.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in content:
        content = content[:content.index(BEGIN)] + block + content[content.index(END) + len(END):]
    else:
        content = content.rstrip() + "\n\n## Detection on real media (`python -m bench.quality`)\n\n" + block + "\n"
    path.write_text(content)


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
        write_benchmarks(text)


if __name__ == "__main__":
    main()
