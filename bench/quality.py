"""``python -m bench.quality``: detection on real media (../shared/realworld), per kind, method and cue.

Scans every file of ``../shared/realworld/MANIFEST.tsv`` with the scanner as ``deepscan check`` does
(experts on, weights from ``../shared/models``), then reports, per media kind (audio, image, video),
per fake method and on the clean subsets the realworld README names, for the fused verdict (when
the detector is a trained one) and for each cue alone: AUC with a 95% bootstrap interval over pairs,
EER, AP, and for the fused ``p_fake`` accuracy at the threshold and ECE. Nothing here trains, tunes or
calibrates on these files. The learned experts' leave-generator-out tables on the harvest
(``bench/results/<expert>.json``, written by their training) are added beside them.

The report goes to BENCHMARKS.md between ``<!-- bench:quality -->`` markers, with the command.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = HERE.parent / "BENCHMARKS.md"
RESULTS = HERE / "results"
SHARED = HERE.parent.parent / "shared"
BEGIN, END = "<!-- bench:quality -->", "<!-- /bench:quality -->"
# Clean comparisons of ../shared/realworld (its README): same container, codec and rate on both sides.
CLEAN_SUBSETS = {"WaveFake (clean)": "wf", "NaturalSpeech 1 (clean)": "ns1_", "FastSpeech 2 page (clean)": "fs2_"}


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
    from deepscan.evaluation import read_manifest, score_table
    from deepscan.scanner import Scanner

    realworld = Path(args.realworld)
    files = [f for f in read_manifest(realworld / "MANIFEST.tsv") if f.exists]
    tmp = Path(tempfile.mkdtemp(prefix="deepscan-quality-"))
    detector = args.detector or _placeholder_detector(tmp)
    scanner = Scanner(detector=detector, encoders=args.encoders, experts=args.experts, models_dir=args.models_dir,
                      cache=True if args.cache else False)
    start = time.perf_counter()
    results = {r.path: r for r in scanner.scan([str(f.path) for f in files], recursive=False)}
    elapsed = time.perf_counter() - start
    trained = scanner.checkpoint.trained_on != "untrained"
    scores: dict[str, dict] = {}
    if trained:
        scores["p_fake"] = {p: r.p_fake for p, r in results.items() if r.status == "ok"}
    for name in sorted({n for r in results.values() for n in (r.cues or {})}):
        values = {p: (r.cues.get(name) or {}).get("p_fake") for p, r in results.items() if r.status == "ok"}
        if any(v is not None for v in values.values()):  # a cue that never ran (weights absent) has no column
            scores[name] = values
    subsets = {name: (lambda f, prefix=prefix: f.pair.startswith(prefix)) for name, prefix in CLEAN_SUBSETS.items()}
    table = score_table(files, scores, subsets, scanner.checkpoint.threshold if trained else None,
                        rounds=args.rounds)
    errors = {p: r.reason for p, r in results.items() if r.status != "ok"}
    command = "python -m bench.quality " + " ".join(sys.argv[1:])
    return {"command": command.strip(), "files": len(files), "errors": errors, "elapsed_s": round(elapsed, 1),
            "detector": scanner.detector_info.get("name"), "trained": trained, "table": table,
            "learned": {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}}


def _cell(m: dict) -> str:
    if m.get("auc") is None:
        return f"n/a ({m['coverage']})"
    return f"{m['auc']:.3f} [{m['auc_lo']:.2f}, {m['auc_hi']:.2f}] ({m['coverage']})"


def markdown(report: dict) -> str:
    table = report["table"]
    scorers = list(next(iter(table["kinds"].values())).keys()) if table["kinds"] else []
    lines = [f"Command: `{report['command']}` ({report['files']} files of ../shared/realworld, never trained or "
             f"calibrated on; scan {report['elapsed_s']} s; detector: {report['detector']}"
             f"{'' if report['trained'] else ', untrained: cues only'}). Cell: AUC [95% bootstrap interval over "
             "pairs] (files scored / files): a cue that does not apply to a file (no face, no speech, no audio) "
             "leaves it out.", ""]
    head = "| | " + " | ".join(scorers) + " |"
    rule = "|---|" + "---|" * len(scorers)
    lines += ["**Per media kind**", "", head, rule]
    for kind, row in table["kinds"].items():
        lines.append(f"| {kind} | " + " | ".join(_cell(row[s]) for s in scorers) + " |")
        if "p_fake" in row and row["p_fake"].get("ece") is not None:
            m = row["p_fake"]
            lines.append(f"| {kind}: fused EER / AP / accuracy / ECE | {m['eer']:.3f} / {m['ap']:.3f} / "
                         f"{m['accuracy']:.3f} / {m['ece']:.3f} |" + " |" * (len(scorers) - 1))
    lines += ["", "**Per fake method** (its fakes against all reals of the kind)", "", "| kind: method | "
              + " | ".join(scorers) + " |", rule]
    for kind, methods in table["methods"].items():
        for method, row in methods.items():
            lines.append(f"| {kind}: {method} | " + " | ".join(_cell(row[s]) for s in scorers) + " |")
    if table["subsets"]:
        lines += ["", "**Clean subsets** (same container, codec and rate on both sides)", "", head, rule]
        for name, row in table["subsets"].items():
            lines.append(f"| {name} | " + " | ".join(_cell(row[s]) for s in scorers) + " |")
    if report["errors"]:
        lines += ["", "Files that could not be scanned: " + ", ".join(f"{Path(p).name} ({r})"
                                                                  for p, r in report["errors"].items())]
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", help="detector checkpoint (default: an untrained one: cues only)")
    parser.add_argument("--encoders", default="debug", help="encoders the detector was trained on (default: debug)")
    parser.add_argument("--experts", default="auto")
    parser.add_argument("--models-dir", default=str(SHARED / "models"))
    parser.add_argument("--realworld", default=str(SHARED / "realworld"))
    parser.add_argument("--rounds", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--no-cache", dest="cache", action="store_false")
    parser.add_argument("--json", help="also write the report as JSON to this file")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args(argv)
    report = run(args)
    text = markdown(report)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    if not args.no_write:
        write_benchmarks(text)


if __name__ == "__main__":
    main()
