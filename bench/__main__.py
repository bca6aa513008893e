"""``python -m bench``: scan throughput of deepscan against a naive pipeline and the compute floor.

In one run, on the same corpus and the same full-size random-initialised encoders (CLIP ViT-B/32
and wav2vec2-base built from their default configs and saved with ``save_pretrained``: the same
compute as the real weights), it measures media-seconds per wall-clock second of

1. deepscan with its defaults, cold (empty feature cache);
2. the same scan again, warm (every file's features cached);
3. the naive reference pipeline of :mod:`bench.naive`;

and the compute floor: the encoders' FLOPs on deepscan's own workload (counted with
``torch.utils.flop_counter.FlopCounterMode`` on the fp32 models) divided by the fp32, bf16 and int8
matmul rates measured on this machine; the fraction of the floor is taken at the precision the scan
actually used (``--precision``, default ``auto``). It prints the ratios, ``--json`` prints them as
one JSON object, and the results are written to BENCHMARKS.md (section between
``<!-- bench:scan -->`` markers) with the command, the CPU model and its bf16/int8 flags.

The corpus (default: 20 clips of 10 s 720p H.264/AAC, 10 images, 5 audio files, all from
:mod:`deepscan.synth`) and the encoders are cached under ``$TMPDIR/deepscan-bench-scan``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.sections import markers, write_section

ROOT = Path(tempfile.gettempdir()) / "deepscan-bench-scan"
BEGIN, END = markers("scan")
FULL = {"clips": 20, "clip_s": 10.0, "images": 10, "audios": 5, "audio_s": 10.0}
QUICK = {"clips": 4, "clip_s": 5.0, "images": 2, "audios": 1, "audio_s": 5.0}
CLIP_SIZE = (1280, 720)
MATMUL_N = 1024  # side of the square matmuls timed for the machine's peak rate


def build_corpus(spec: dict) -> Path:
    """Write (once) the clips, images and audio files of ``spec``; returns their folder."""
    from deepscan import synth

    name = "corpus-{clips}x{clip_s:g}s-{images}i-{audios}x{audio_s:g}s".format(**spec)
    folder = ROOT / name
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(spec["clips"]):
        synth.write_clip(folder / f"clip{i:02d}.mp4", duration_s=spec["clip_s"], size=CLIP_SIZE, fps=30, seed=i)
    for i in range(spec["images"]):
        synth.write_image(folder / f"image{i:02d}.png", size=(640, 480), seed=100 + i)
    for i in range(spec["audios"]):
        synth.write_audio(folder / f"voice{i:02d}.wav", duration_s=spec["audio_s"], seed=200 + i)
    done.touch()
    return folder


def build_encoders() -> tuple[Path, Path]:
    """Random-initialised full-size CLIP ViT-B/32 and wav2vec2-base, plus a matching detector."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Wav2Vec2Config, Wav2Vec2Model

    from deepscan.hub import resolve_encoders
    from deepscan.media import VISUAL_FPS, WINDOW_SECONDS
    from deepscan.model import CrossModalDetector, DetectorConfig, save_detector

    encoders, detector = ROOT / "encoders", ROOT / "detector.safetensors"
    if not (encoders / "image" / "config.json").exists():
        torch.manual_seed(0)
        CLIPVisionModelWithProjection(CLIPVisionConfig(projection_dim=512)).save_pretrained(encoders / "image")
        Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(encoders / "audio")
    if not detector.exists():
        specs = resolve_encoders(str(encoders))
        dims = {"image": 512, "audio": 768, "video": 512}
        torch.manual_seed(0)
        save_detector(detector, CrossModalDetector(DetectorConfig()),
                      encoders={m: {"id": specs["audio" if m == "audio" else "image"].id, "revision": None,
                                    "dim": dims[m]} for m in dims},
                      sampling={"window_s": WINDOW_SECONDS, "visual_fps": VISUAL_FPS}, threshold=0.5,
                      provenance={"trained_on": "synthetic", "encoders": "random-init (benchmark)"})
    return encoders, detector


def media_seconds(files) -> float:
    from deepscan.media import probe

    return sum(probe(f).duration_s or 0.0 for f in files)


def matmul_rate(dtype: torch.dtype, seconds: float = 1.5) -> float:
    """Measured FLOP/s of square matmuls on this machine (best of a few runs).

    Parameters
    ----------
    dtype : torch.dtype
        ``torch.float32`` or ``torch.bfloat16`` (``a @ b``), or :data:`deepscan.precision.INT8`: an
        fp32 ``(N, N)`` input through an int8 dynamic quantized ``nn.Linear(N, N)``, the kernel the
        int8 encoders run (input quantized per call, int8 multiply, int32 accumulation, fp32 out).
    seconds : float
        How long to keep timing.

    Returns
    -------
    float
        FLOP/s, counting ``2 N^3`` per product.
    """
    from deepscan.precision import INT8, quantize_linear_int8

    a = torch.randn(MATMUL_N, MATMUL_N, dtype=torch.float32 if dtype == INT8 else dtype)
    if dtype == INT8:
        layer = quantize_linear_int8(torch.nn.Sequential(torch.nn.Linear(MATMUL_N, MATMUL_N, bias=False)))
        product = lambda: layer(a)  # noqa: E731
    else:
        b = torch.randn(MATMUL_N, MATMUL_N, dtype=dtype)
        product = lambda: a @ b  # noqa: E731
    with torch.inference_mode():
        product()
        best, end = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            start = time.perf_counter()
            for _ in range(4):
                product()
            best = max(best, 4 * 2 * MATMUL_N**3 / (time.perf_counter() - start))
    return best


def machine_info() -> dict:
    """CPU model and the flags that decide bf16/int8 speed (``amx_bf16``, ``avx512_bf16``, VNNI...)."""
    from bench.experts import cpu_model
    from deepscan.precision import BF16_CPU_FLAGS, VNNI_CPU_FLAGS, cpu_flags

    return {"cpu_model": cpu_model(),
            "cpu_flags": sorted(cpu_flags() & {*BF16_CPU_FLAGS, *VNNI_CPU_FLAGS, "amx_tile", "avx512f", "avx2"})}


def workload_flops(image_model, audio_model, results) -> float:
    """FLOPs of the encoders on what deepscan computed: every sampled frame, every audio window.

    Counted on fp32 models (``FlopCounterMode`` does not see int8 quantized Linear layers), so the
    same work is divided by each precision's matmul rate.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from deepscan.extractors import AudioEncoder, ImageEncoder

    frames = sum(w.frames for r in results if r.status == "ok" for w in r.windows)
    audio_s = sum(r.media.get("duration_s") or 0.0 for r in results
                  if r.status == "ok" and r.media.get("has_audio"))
    image, audio = ImageEncoder(image_model), AudioEncoder(audio_model)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            image(torch.zeros(1, 224, 224, 3, dtype=torch.uint8))
        per_frame = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            audio.encode_batch([torch.zeros(64_000).numpy()])
        per_4s = counter.get_total_flops()
    return frames * per_frame + audio_s / 4.0 * per_4s


def run(args) -> dict:
    from bench.naive import NaivePipeline
    from deepscan.media import iter_media_files
    from deepscan.scanner import Scanner

    spec = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    corpus = build_corpus(spec)
    encoders, detector = build_encoders()
    files = [str(p) for p in iter_media_files(corpus)]
    seconds = media_seconds(files)
    print(f"corpus {corpus} ({len(files)} files, {seconds:.0f} media-s) ready in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)

    cache_dir = Path(tempfile.mkdtemp(prefix="deepscan-bench-cache-"))
    scanner = Scanner(detector=detector, encoders=str(encoders), cache=cache_dir, precision=args.precision)
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    start = time.perf_counter()
    cold_results = list(scanner.scan(files))
    cold = time.perf_counter() - start
    if profile is not None:
        profile.disable()
    start = time.perf_counter()
    warm_results = list(scanner.scan(files))
    warm = time.perf_counter() - start
    workers = scanner.workers
    scanner.close()
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    errors = [r.path for r in cold_results + warm_results if r.status != "ok"]
    print(f"deepscan cold {cold:.1f} s, warm {warm:.2f} s", file=sys.stderr)

    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(cores)  # the scan set its own count; the naive pipeline and the floor get every core
    from transformers import CLIPVisionModelWithProjection, Wav2Vec2Model

    from deepscan.precision import INT8, precision_name

    precision = precision_name(scanner.extractors.dtype)
    # fresh fp32 models: the scanner's may have been converted (int8) for its precision
    image_model = CLIPVisionModelWithProjection.from_pretrained(encoders / "image")
    audio_model = Wav2Vec2Model.from_pretrained(encoders / "audio")
    naive = NaivePipeline(image_model, audio_model)
    start = time.perf_counter()
    for path in files:
        naive.embed_file(path)
    naive_s = time.perf_counter() - start
    print(f"naive {naive_s:.1f} s", file=sys.stderr)

    flops = workload_flops(image_model, audio_model, cold_results)
    rates = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16), "int8": matmul_rate(INT8)}
    floors = {k: flops / r for k, r in rates.items()}
    floor_fp32, floor_bf16 = floors["fp32"], floors["bf16"]
    report = {
        "command": "python -m bench" + (" --quick" if args.quick else "")
                   + (f" --precision {args.precision}" if args.precision != "auto" else ""),
        "corpus": {**spec, "files": len(files), "media_seconds": round(seconds, 1), "clip_size": list(CLIP_SIZE)},
        "machine": {**machine_info(), "cpu_cores": cores, "torch_threads": scanner.threads,
                    "naive_and_floor_threads": cores, "workers": workers, "precision": precision,
                    "platform": platform.platform(), "torch": torch.__version__,
                    "load_average_after": list(os.getloadavg())},
        "seconds": {"deepscan_cold": round(cold, 2), "deepscan_warm": round(warm, 3), "naive": round(naive_s, 2),
                    "floor_fp32": round(floor_fp32, 2), "floor_bf16": round(floor_bf16, 2),
                    "floor_int8": round(floors["int8"], 2)},
        "media_seconds_per_second": round(seconds / cold, 3),
        "naive_media_seconds_per_second": round(seconds / naive_s, 3),
        "warm_media_seconds_per_second": round(seconds / warm, 1),
        "speedup_vs_naive": round(naive_s / cold, 2),
        "warm_cache_speedup": round(cold / warm, 1),
        "fraction_of_floor": round(floors[precision] / cold, 3),  # at the precision the scan used
        "fraction_of_bf16_floor": round(floor_bf16 / cold, 3),
        "fraction_of_fp32_floor": round(floor_fp32 / cold, 3),
        "fraction_of_int8_floor": round(floors["int8"] / cold, 3),
        "encoder_gflops": round(flops / 1e9, 1),
        "matmul_gflops_per_s": {k: round(r / 1e9, 1) for k, r in rates.items()},
        "peak_rss_mb": round(peak_rss_mb, 1),
        "worker_peak_rss_mb": round(worker_rss_mb, 1),
        "errors": errors,
    }
    if profile is not None:
        import io
        import pstats

        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(15)
        report["profile_top"] = text.getvalue()
    return report


def markdown(report: dict) -> str:
    """The BENCHMARKS.md section of a report."""
    s, m = report["seconds"], report["machine"]
    c = report["corpus"]
    lines = [
        BEGIN,
        "## Scan throughput (`python -m bench`)",
        "",
        f"Command: `{report['command']}` — corpus: {c['clips']} clips of {c['clip_s']:g} s "
        f"{c['clip_size'][0]}x{c['clip_size'][1]} H.264/AAC, {c['images']} images, {c['audios']} audio files of "
        f"{c['audio_s']:g} s ({c['media_seconds']:g} media-s); random-init full-size CLIP ViT-B/32 + wav2vec2-base; "
        f"{m['cpu_cores']} cores, {m['workers']} decoding worker(s), {m['torch_threads']} torch threads, "
        f"encoders in {m['precision']}; torch {m['torch']}. CPU: {m.get('cpu_model', '?')}, flags "
        f"{', '.join(m.get('cpu_flags', [])) or 'none of amx/avx512_bf16/vnni'}; load average after the run "
        f"{m.get('load_average_after', '?')}.",
        "",
        "| pipeline | wall s | media-s per s |",
        "|---|---:|---:|",
        f"| deepscan defaults, cold cache | {s['deepscan_cold']} | {report['media_seconds_per_second']} |",
        f"| deepscan defaults, warm cache | {s['deepscan_warm']} | {report['warm_media_seconds_per_second']} |",
        f"| naive reference (`bench/naive.py`) | {s['naive']} | {report['naive_media_seconds_per_second']} |",
        f"| compute floor, fp32 matmul rate ({report['matmul_gflops_per_s']['fp32']} GFLOP/s) | {s['floor_fp32']} | |",
        f"| compute floor, bf16 matmul rate ({report['matmul_gflops_per_s']['bf16']} GFLOP/s) | {s['floor_bf16']} | |",
        f"| compute floor, int8 matmul rate ({report['matmul_gflops_per_s'].get('int8')} GFLOP/s) | "
        f"{s.get('floor_int8')} | |",
        "",
        f"- speedup_vs_naive: **{report['speedup_vs_naive']}x** (target >= 5x on a CPU with native bf16)",
        f"- fraction_of_floor at {m['precision']} (the precision used): **{report.get('fraction_of_floor')}** "
        f"(target >= 0.6); at fp32 {report['fraction_of_fp32_floor']}, bf16 {report['fraction_of_bf16_floor']}, "
        f"int8 {report.get('fraction_of_int8_floor')}",
        f"- warm_cache_speedup: **{report['warm_cache_speedup']}x** (target >= 50x)",
        f"- peak_rss_mb: {report['peak_rss_mb']} (main process), {report['worker_peak_rss_mb']} (largest worker)",
        f"- encoder work: {report['encoder_gflops']} GFLOP (FlopCounterMode)",
        "",
        "```json",
        json.dumps({k: v for k, v in report.items() if k != "profile_top"}, indent=1),
        "```",
        END,
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 clips of 5 s, 2 images, 1 audio file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", action="store_true", help="cProfile the cold deepscan scan (main process)")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                        help="deepscan's encoder precision (the naive pipeline stays fp32)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report = run(args)
    if not args.no_write:
        write_section("scan", markdown(report))
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "profile_top"}))
    else:
        for key in ("media_seconds_per_second", "speedup_vs_naive", "fraction_of_floor", "fraction_of_bf16_floor",
                    "fraction_of_fp32_floor", "fraction_of_int8_floor", "warm_cache_speedup", "peak_rss_mb"):
            print(f"{key}: {report[key]}")
        if "profile_top" in report:
            print(report["profile_top"])


if __name__ == "__main__":
    main()
