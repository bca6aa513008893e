"""``python -m bench.precision``: the encoders at fp32, bf16 and int8, side by side, and what int8 changes.

In one process, on this machine's CPU (its model and bf16/int8 flags are recorded), it measures

1. **speed**: full-size random-initialised CLIP ViT-B/32 (a batch of face crops) and wav2vec2-base
   (a batch of 4 s windows), built as ``bench/__main__.py``'s ``build_encoders`` does, at fp32,
   bf16 (autocast, fp32 weights), bf16 with the weights cast once, and int8 (dynamic quantization of
   the Linear layers, :func:`deepscan.precision.quantize_linear_int8`); each variant runs
   ``--rounds`` times in turn, so that load from other jobs falls on all of them alike, and the
   median is reported with its ratio to fp32;
2. **accuracy**: per-token cosine of each variant to fp32 on those outputs (minimum and mean), and
   on the debug encoders;
3. **verdicts**: a demo detector (random init, debug encoders, ``experts="none"``) scans
   ``../shared/samples`` and the test split of a synthetic corpus (``deepscan.training.corpus``,
   60 clips, seed 1) at fp32 and at int8; every verdict is compared and the largest ``p_fake``
   difference reported.

Results go to BENCHMARKS.md between ``<!-- bench:precision -->`` markers, with the command and the
load average before and after.
"""

from __future__ import annotations

import argparse
import sys
import copy
import csv
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.sections import markers, write_section

BEGIN, END = markers("precision")
SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
CORPUS = Path(tempfile.gettempdir()) / "deepscan-bench-precision" / "corpus-60-seed1"


def loadavg() -> list[float]:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def machine() -> dict:
    """CPU model, the bf16/int8 flags, cores, torch threads and version."""
    from bench.experts import cpu_model
    from deepscan.precision import BF16_CPU_FLAGS, VNNI_CPU_FLAGS, cpu_flags

    return {"cpu_model": cpu_model(), "cpu_flags": sorted(cpu_flags() & {*BF16_CPU_FLAGS, *VNNI_CPU_FLAGS, "amx_tile"}),
            "cpu_cores": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__}


def _variants(model, run, keep_fp32=()):
    """fp32, autocast bf16, weights cast to bf16, int8: name -> callable(input) -> float32 output."""
    from deepscan.precision import quantize_linear_int8

    cast = copy.deepcopy(model).to(torch.bfloat16)
    quant = quantize_linear_int8(copy.deepcopy(model), keep_fp32)  # as the encoders quantize it

    def autocast(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return run(model, x).float()

    return {"fp32": lambda x: run(model, x), "bf16_autocast": autocast,
            "bf16_cast_weights": lambda x: run(cast, x.to(torch.bfloat16)).float(), "int8": lambda x: run(quant, x)}


def encoder_speed(rounds: int, crops: int, windows: int) -> dict:
    """Side-by-side timing and cosine to fp32 of the full-size encoders at each precision."""
    from transformers import CLIPVisionModelWithProjection, Wav2Vec2Model

    from bench.__main__ import build_encoders
    from deepscan.extractors.audio import INT8_KEEP_FP32

    folder, _ = build_encoders()
    out = {}
    rng = np.random.default_rng(0)
    t = np.arange(64_000) / 16_000
    waves = np.stack([(0.3 * np.sin(2 * np.pi * (150 + 30 * i) * t) * (1 + np.sin(2 * np.pi * 4 * t))
                       + 0.01 * rng.standard_normal(t.shape[0])).astype(np.float32) for i in range(windows)])
    waves = (waves - waves.mean(1, keepdims=True)) / waves.std(1, keepdims=True)
    cases = {
        "clip": (CLIPVisionModelWithProjection.from_pretrained(folder / "image").eval(),
                 lambda m, x: m(pixel_values=x).image_embeds, torch.randn(crops, 3, 224, 224), "per crop", ()),
        "wav2vec2": (Wav2Vec2Model.from_pretrained(folder / "audio").eval(),
                     lambda m, x: m(x).last_hidden_state, torch.from_numpy(waves), "per frame", INT8_KEEP_FP32),
    }
    with torch.inference_mode():
        for name, (model, run, x, unit, keep) in cases.items():
            variants = _variants(model, run, keep)
            outputs = {k: f(x).float() for k, f in variants.items()}  # also the warm-up call
            times = {k: [] for k in variants}
            for _ in range(rounds):
                for k, f in variants.items():
                    start = time.perf_counter()
                    f(x)
                    times[k].append(time.perf_counter() - start)
            ref = outputs["fp32"].flatten(0, -2)
            median = {k: statistics.median(v) for k, v in times.items()}
            out[name] = {
                "batch": list(x.shape), "seconds_median": {k: round(v, 3) for k, v in median.items()},
                "seconds_all": {k: [round(s, 3) for s in v] for k, v in times.items()},
                "speedup_vs_fp32": {k: round(median["fp32"] / v, 2) for k, v in median.items()},
                "cosine_to_fp32": {k: {"min": round(F.cosine_similarity(ref, o.flatten(0, -2), dim=-1).min().item(), 5),
                                       "mean": round(F.cosine_similarity(ref, o.flatten(0, -2), dim=-1).mean().item(), 5)}
                                   for k, o in outputs.items() if k != "fp32"},
                "cosine_unit": unit,
            }
            del variants, outputs
    return out


def debug_cosines() -> dict:
    """Per-token cosine of int8 to fp32 on the debug encoders (face-like crops, a speech-like waveform)."""
    from deepscan import synth
    from deepscan.extractors import load_extractors

    fp32, low = load_extractors("debug", precision="fp32"), load_extractors("debug", precision="int8")
    wave, envelope = synth.speech_like(4.0, seed=3)
    crops = synth.render_face_frames(np.linspace(0.0, 1.0, 8) * envelope.max(), size=(224, 224), seed=3)
    wave = np.asarray(wave, dtype=np.float32)
    a, b = fp32.image(crops), low.image(crops)
    (x, _), (y, _) = fp32.audio(wave), low.audio(wave)
    cos = lambda p, q: F.cosine_similarity(p, q, dim=-1)  # noqa: E731
    return {"image": {"min": round(cos(a, b).min().item(), 5), "tokens": a.shape[0]},
            "audio": {"min": round(cos(x, y).min().item(), 5), "tokens": x.shape[0]}}


def synthetic_test_split() -> list[Path]:
    """The test split of a 60-clip synthetic corpus (seed 1), written once under ``$TMPDIR``."""
    from deepscan.training.corpus import make_corpus

    manifest = CORPUS / "manifest.csv"
    if not manifest.exists():
        make_corpus(CORPUS, clips=60, seed=1)
    with manifest.open(newline="") as f:
        return [CORPUS / row["path"] for row in csv.DictReader(f) if row["split"] == "test"]


def verdicts(files: list[Path]) -> dict:
    """fp32 and int8 scans of ``files`` with a demo detector: changed verdicts and the largest p_fake gap."""
    from deepscan.scanner import Scanner
    from tests.helpers import make_detector

    detector = make_detector(Path(tempfile.mkdtemp(prefix="deepscan-bench-precision-")) / "demo.safetensors")
    results = {}
    for precision in ("fp32", "int8"):
        scanner = Scanner(detector=detector, encoders="debug", precision=precision, cache=False, experts="none")
        start = time.perf_counter()
        results[precision] = list(scanner.scan([str(f) for f in files]))
        results[precision + "_s"] = round(time.perf_counter() - start, 1)
        scanner.close()
    rows, changed, gap = [], 0, 0.0
    for a, b in zip(results["fp32"], results["int8"]):
        same = (a.status, a.verdict) == (b.status, b.verdict)
        changed += not same
        d = abs(a.p_fake - b.p_fake) if a.p_fake is not None and b.p_fake is not None else None
        gap = max(gap, d or 0.0)
        rows.append({"file": Path(a.path).name, "fp32": a.verdict, "int8": b.verdict,
                     "p_fake_fp32": None if a.p_fake is None else round(a.p_fake, 4),
                     "p_fake_int8": None if b.p_fake is None else round(b.p_fake, 4)})
    margin = min((abs(r["p_fake_fp32"] - 0.5) for r in rows if r["p_fake_fp32"] is not None), default=None)
    return {"files": len(files), "changed_verdicts": changed, "max_abs_p_fake_diff": round(gap, 5),
            "closest_fp32_p_fake_to_threshold": None if margin is None else round(margin, 4),
            "seconds": {"fp32": results["fp32_s"], "int8": results["int8_s"]}, "rows": rows}


def run(args) -> dict:
    report = {"command": " ".join(["python -m bench.precision", *args.argv]),
              "machine": machine(), "load_before": loadavg()}
    report["encoders"] = encoder_speed(args.rounds, args.crops, args.windows)
    report["load_after_speed"] = loadavg()
    report["debug_int8_cosine"] = debug_cosines()
    if not args.no_verdicts:
        samples = SHARED / "samples"
        if samples.is_dir():
            from deepscan.media import iter_media_files

            report["verdicts_samples"] = verdicts(sorted(Path(p) for p in iter_media_files(samples)))
        report["verdicts_synthetic_test"] = verdicts(synthetic_test_split())
    report["load_after"] = loadavg()
    return report


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [BEGIN, "## Encoder precision: fp32, bf16, int8 (`python -m bench.precision`)", "",
             f"Command: `{report['command']}` — CPU: {m['cpu_model']}, flags {', '.join(m['cpu_flags']) or 'none'}; "
             f"{m['cpu_cores']} cores, {m['torch_threads']} torch threads; torch {m['torch']}. Load average (1/5/15 min) "
             f"before {report['load_before']}, after the timings {report['load_after_speed']}. Full-size random-init "
             "encoders; each variant ran in turn, median of the rounds; cosine is per output token to fp32.", "",
             "| encoder | batch | variant | median s | vs fp32 | best s | vs fp32 (best) | min cosine | mean cosine |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, e in report["encoders"].items():
        for k, s in e["seconds_median"].items():
            c = e["cosine_to_fp32"].get(k, {"min": 1.0, "mean": 1.0})
            best, best_fp32 = min(e["seconds_all"][k]), min(e["seconds_all"]["fp32"])
            lines.append(f"| {name} | {'x'.join(map(str, e['batch']))} | {k} | {s} | {e['speedup_vs_fp32'][k]}x | "
                         f"{best} | {best_fp32 / best:.2f}x | {c['min']} | {c['mean']} |")
    d = report["debug_int8_cosine"]
    lines += ["", f"- debug encoders, int8 vs fp32: min token cosine image {d['image']['min']}, "
                  f"audio {d['audio']['min']} (gate >= 0.99)"]
    for key, label in (("verdicts_samples", "../shared/samples"), ("verdicts_synthetic_test", "synthetic test split")):
        if key in report:
            v = report[key]
            lines.append(f"- verdicts fp32 vs int8 on {label} ({v['files']} files, demo detector, debug encoders, "
                         f"experts none): **{v['changed_verdicts']} changed**, max |p_fake difference| "
                         f"{v['max_abs_p_fake_diff']} (closest fp32 p_fake to the 0.5 threshold: "
                         f"{v['closest_fp32_p_fake_to_threshold']} away)")
    lines += ["", "<details><summary>JSON (with every file's p_fake)</summary>", "", "```json", json.dumps(report),
              "```", "", "</details>", END]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.precision", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 crops, 2 windows, 2 rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--crops", type=int, default=32, help="CLIP batch (the scanner's default)")
    parser.add_argument("--windows", type=int, default=8, help="wav2vec2 batch of 4 s windows (the scanner's default)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-verdicts", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args(argv)
    args.argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--no-write"]
    if args.quick:
        args.crops, args.windows, args.rounds = 8, 2, 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    report = run(args)
    if not args.no_write:
        write_section("precision", markdown(report))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
