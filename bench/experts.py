"""``python -m bench.experts``: what each expert costs per media-second, beside decoding and the encoders.

Every file of the corpus (``../shared/samples`` when present, else synthetic clips) is decoded once
into memory; then each stage runs over the same windows, one after the other, in this one process:

- decoding (``deepscan.media.iter_windows``) alone;
- face detection and cropping with Haar and with YuNet (crops for CLIP, Meso-4 and the mouth);
- the experts: AASIST, AASIST-L, Meso-4, speech presence (silero-vad) and the lip-sync cue;
- the encoders the experts sit beside: full-size random-initialised CLIP ViT-B/32 and
  wav2vec2-base (the compute of the real weights; see ``bench/__main__.py``), fp32.

Each stage is reported as media-seconds per second (higher is faster) and as its time relative to
the encoders', all measured side by side in this run. Torch uses 1 thread here, as in a decoding
worker, where the experts run. Results go to BENCHMARKS.md between ``<!-- bench:experts -->``
markers with the command and the CPU flags.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from bench.sections import write_section

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


def cpu_flags() -> list[str]:
    """The bf16/int8 matmul flags this CPU has (``amx_bf16``, ``avx512_bf16``, ``avx512_vnni``, ``avx_vnni``)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return sorted({f for f in ("amx_bf16", "avx512_bf16", "avx512_vnni", "avx_vnni") if f" {f}" in text})


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def corpus(quick: bool) -> tuple[list[Path], str]:
    samples = SHARED / "samples"
    if samples.is_dir():
        files = sorted(p for p in samples.iterdir() if p.suffix in {".mp4", ".wav", ".mp3", ".png", ".webp"})
        return (files[:6] if quick else files), "../shared/samples"
    import tempfile

    from deepscan import synth

    root = Path(tempfile.gettempdir()) / "deepscan-bench-experts"
    root.mkdir(exist_ok=True)
    files = [synth.write_clip(root / f"clip{i}.mp4", duration_s=8.0, seed=i) for i in range(2 if quick else 6)]
    return files, "synthetic talking-face clips (deepscan.synth)"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(args) -> dict:
    from deepscan import weights
    from deepscan.faces import FaceCropper, FaceDetectorConfig
    from deepscan.media import iter_windows, probe

    torch.set_num_threads(1)
    files, source = corpus(args.quick)
    models = Path(args.models_dir) if args.models_dir else (SHARED / "models" if (SHARED / "models").is_dir() else None)
    windows, media_s = [], 0.0

    def decode():
        nonlocal media_s
        for path in files:
            info = probe(path)
            media_s += info.duration_s or 0.0
            windows.extend(iter_windows(path, info=info))

    stages = {"decode": timed(decode)}
    visual = [w for w in windows if w.has_frames]
    audio = [w for w in windows if w.waveform.shape[0] >= 400]
    croppers = {"haar": FaceCropper(FaceDetectorConfig(), detect_every=2)}
    if models is not None:
        croppers["yunet"] = FaceCropper(FaceDetectorConfig("yunet", str(weights.model_path("yunet", models))),
                                        detect_every=2)
    faces = {}
    for name, cropper in croppers.items():
        out = []
        stages[f"faces ({name})"] = timed(lambda: out.extend(cropper.new_tracker().crop(w.frames) for w in visual))
        faces[name] = out
    crops = faces.get("yunet", faces["haar"])

    with torch.inference_mode():
        if models is not None:
            from deepscan.experts.aasist import load_aasist, window_input
            from deepscan.experts.meso import load_meso4, preprocess

            for name, variant in (("aasist", "AASIST"), ("aasist-l", "AASIST-L")):
                model = load_aasist(weights.model_path(name, models), variant)
                stages[f"expert {name}"] = timed(
                    lambda: [model(torch.from_numpy(window_input(w.waveform))[None]) for w in audio])
            meso = load_meso4(weights.model_path("meso4-df", models))
            stages["expert meso4"] = timed(
                lambda: [meso(preprocess(f.meso_crops[f.found])) for f in crops if f.found.any()])
        try:
            from deepscan.experts.speech import SpeechDetector

            vad = SpeechDetector()
            stages["speech (silero-vad)"] = timed(lambda: [vad.speech_fraction(w.waveform) for w in audio])
        except ImportError:
            pass
        try:
            from deepscan.experts import sync

            pairs = [(w, f) for w, f in zip(visual, crops) if w.waveform.shape[0] >= 400]
            stages["expert av_sync"] = timed(lambda: [
                (sync.audio_envelope(w.waveform, w.frame_times_s - w.start_s), sync.mouth_motion(f.mouth_crops, f.found))
                for w, f in pairs])
        except ImportError:
            pass
        if not args.skip_encoders:
            from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Wav2Vec2Config, Wav2Vec2Model

            torch.manual_seed(0)
            clip = CLIPVisionModelWithProjection(CLIPVisionConfig(projection_dim=512)).eval()
            wav2vec2 = Wav2Vec2Model(Wav2Vec2Config()).eval()
            pixels = [torch.from_numpy(f.crops).permute(0, 3, 1, 2).float().div(255) for f in crops]
            stages["encoder CLIP ViT-B/32 (fp32)"] = timed(lambda: [clip(pixel_values=p) for p in pixels if len(p)])
            stages["encoder wav2vec2-base (fp32)"] = timed(
                lambda: [wav2vec2(torch.from_numpy(w.waveform)[None]) for w in audio])
    visual_s = sum(w.end_s - w.start_s for w in visual if w.end_s > w.start_s)
    audio_s = sum(w.waveform.shape[0] / 16_000 for w in audio)
    covered = {k: (audio_s if ("aasist" in k or "speech" in k or "wav2vec2" in k) else
                   visual_s if ("faces" in k or "meso" in k or "CLIP" in k or "sync" in k) else media_s)
               for k in stages}
    return {"source": source, "files": len(files), "media_s": round(media_s, 1), "visual_s": round(visual_s, 1),
            "audio_s": round(audio_s, 1), "torch_threads": 1, "cpu": cpu_model(), "cpu_flags": cpu_flags(),
            "stages": {k: {"seconds": round(v, 3), "media_s": round(covered[k], 1),
                           "media_s_per_s": round(covered[k] / v, 2) if v > 0 else None}
                       for k, v in stages.items()}}


def markdown(report: dict) -> str:
    enc = {k: v for k, v in report["stages"].items() if k.startswith("encoder")}
    base = sum(v["seconds"] / max(v["media_s"], 1e-9) for v in enc.values()) or None
    lines = [
        f"Command: `python -m bench.experts{' --quick' if report.get('quick') else ''}`; corpus: {report['source']} "
        f"({report['files']} files, {report['media_s']} media-s: {report['visual_s']} s with frames, "
        f"{report['audio_s']} s with audio); CPU: {report['cpu']}, flags: {', '.join(report['cpu_flags']) or 'none'}; "
        f"torch threads: {report['torch_threads']} (as in a decoding worker).",
        "",
        "| stage | media-s covered | seconds | media-s per s | s per media-s, relative to the two encoders |",
        "|---|---|---|---|---|",
    ]
    for name, v in report["stages"].items():
        per = v["seconds"] / max(v["media_s"], 1e-9)
        rel = f"{per / base:.2f}" if base else ""
        lines.append(f"| {name} | {v['media_s']} | {v['seconds']:.2f} | {v['media_s_per_s']} | {rel} |")
    ratio = experts_path_ratio(report)
    if ratio is not None:
        lines += ["", f"Experts' path against decoding alone (issue 16, target >= 0.7): decoding + "
                      f"{' + '.join(ratio['stages'][1:])} take {ratio['path_s']} s where decoding alone takes "
                      f"{ratio['decode_s']} s: the path runs at **{ratio['ratio']}** of decode-only throughput "
                      "(stages summed as one worker runs them, one after the other, 1 torch thread)."]
    return "\n".join(lines)


def experts_path_ratio(report: dict) -> dict | None:
    """Decode-only seconds over the seconds of the experts' path (decode, faces, AASIST, Meso-4, speech, sync).

    Returns
    -------
    dict or None
        ``{"stages", "decode_s", "path_s", "ratio"}``; None when decoding or no expert was timed.
    """
    stages = report["stages"]
    faces = "faces (yunet)" if "faces (yunet)" in stages else "faces (haar)"
    names = ["decode", faces, "expert aasist", "expert meso4", "speech (silero-vad)", "expert av_sync"]
    names = [n for n in names if n in stages]
    if "decode" not in names or len(names) < 3:
        return None
    path = sum(stages[n]["seconds"] for n in names)
    return {"stages": names, "decode_s": stages["decode"]["seconds"], "path_s": round(path, 2),
            "ratio": round(stages["decode"]["seconds"] / path, 3)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few files only")
    parser.add_argument("--models-dir", help="folder of the expert weights (default ../shared/models)")
    parser.add_argument("--skip-encoders", action="store_true", help="do not time the full-size encoders")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args(argv)
    report = run(args)
    report["quick"] = args.quick
    print(json.dumps(report, indent=1) if args.json else markdown(report))
    if not args.no_write:
        write_section("experts", markdown(report),
                      heading="## Experts: cost per media-second (`python -m bench.experts`)")


if __name__ == "__main__":
    main()
