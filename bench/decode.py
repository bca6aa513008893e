"""Decode benchmark for :mod:`deepscan.media`: throughput and peak memory of ``iter_windows``.

Run ``python -m bench.decode`` from the repository root. It generates (once, cached in the temp
directory) a 60 s 720p H.264/AAC clip and a 10-minute 1080p H.264/AAC clip with PyAV, then

- decodes the 60 s clip window by window at the default visual rate and reports media-seconds
  decoded per wall-clock second;
- decodes the 10-minute clip in a fresh subprocess and reports its peak RSS
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), which must stay under 1 GB because windows
  are streamed.

It prints a markdown snippet for BENCHMARKS.md and writes nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CACHE = Path(tempfile.gettempdir()) / "deepscan-bench"
FPS = 30
AUDIO_RATE = 44_100
RSS_LIMIT_MB = 1024
CLIPS = {  # name: (width, height, seconds)
    "clip_60s_720p.mp4": (1280, 720, 60),
    "clip_10min_1080p.mp4": (1920, 1080, 600),
}


def make_clip(path: Path, width: int, height: int, seconds: int) -> Path:
    """Encode a moving test pattern with a tone: H.264 (ultrafast, CRF 32) + AAC, 30 fps."""
    if path.exists():
        return path
    tmp = path.with_suffix(".part.mp4")
    out = av.open(str(tmp), "w")
    video = out.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.options = {"preset": "ultrafast", "crf": "32"}
    audio = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
    yy, xx = np.mgrid[0:height, 0:width]
    base = ((xx // 40 + yy // 40) % 2 * 120 + 60).astype(np.uint8)
    patterns = []
    for k in range(FPS):  # one second of distinct frames, cycled
        img = np.stack([np.roll(base, 8 * k, axis=1), np.roll(base, 4 * k, axis=0), base], axis=2)
        patterns.append(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p"))
    chunk = 1024
    t = np.arange(AUDIO_RATE * seconds) / AUDIO_RATE
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    a_pts = 0
    for i in range(FPS * seconds):
        frame = patterns[i % FPS]
        frame.pts = i
        frame.time_base = Fraction(1, FPS)
        for packet in video.encode(frame):
            out.mux(packet)
        while a_pts < (i + 1) * AUDIO_RATE / FPS and a_pts < wave.size:
            block = wave[a_pts:a_pts + chunk]
            aframe = av.AudioFrame.from_ndarray(np.stack([block, block]), format="fltp", layout="stereo")
            aframe.sample_rate, aframe.pts, aframe.time_base = AUDIO_RATE, a_pts, Fraction(1, AUDIO_RATE)
            for packet in audio.encode(aframe):
                out.mux(packet)
            a_pts += block.size
    for stream in (video, audio):
        for packet in stream.encode(None):
            out.mux(packet)
    out.close()
    tmp.rename(path)
    return path


def decode_all(path: Path) -> dict:
    """Decode a file window by window; return media seconds, wall seconds and peak RSS."""
    import resource

    from deepscan.media import iter_windows, probe

    start = time.perf_counter()
    info = probe(path)
    windows = frames = 0
    for window in iter_windows(path, info=info):
        windows += 1
        frames += window.frames.shape[0]
    wall = time.perf_counter() - start
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"media_s": info.duration_s, "wall_s": wall, "windows": windows, "frames": frames,
            "peak_rss_mb": rss_kb / 1024}


def in_subprocess(path: Path) -> dict:
    code = f"import json; from bench.decode import decode_all; print(json.dumps(decode_all({str(path)!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-long", action="store_true", help="skip the 10-minute 1080p clip")
    args = parser.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    short = make_clip(CACHE / "clip_60s_720p.mp4", *CLIPS["clip_60s_720p.mp4"])
    result = in_subprocess(short)
    rows = [("60 s 720p H.264/AAC", result)]
    if not args.skip_long:
        long = make_clip(CACHE / "clip_10min_1080p.mp4", *CLIPS["clip_10min_1080p.mp4"])
        rows.append(("10 min 1080p H.264/AAC", in_subprocess(long)))
    from deepscan.media import VISUAL_FPS, WINDOW_SECONDS

    print("## Decoding (`deepscan.media.iter_windows`)\n")
    print(f"Command: `python -m bench.decode` — {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
          f"PyAV {av.__version__}, window {WINDOW_SECONDS:g} s, visual rate {VISUAL_FPS:g} fps, 16 kHz mono audio.\n")
    print("| clip | windows | frames kept | wall (s) | media-s per s | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        speed = r["media_s"] / r["wall_s"] if r["wall_s"] else float("nan")
        print(f"| {name} | {r['windows']} | {r['frames']} | {r['wall_s']:.1f} | {speed:.1f} | {r['peak_rss_mb']:.0f} |")
    if len(rows) > 1:
        ok = rows[1][1]["peak_rss_mb"] < RSS_LIMIT_MB
        print(f"\nPeak RSS decoding 10 min of 1080p window by window: "
              f"{rows[1][1]['peak_rss_mb']:.0f} MB ({'under' if ok else 'OVER'} the {RSS_LIMIT_MB} MB bound).")


if __name__ == "__main__":
    main()
