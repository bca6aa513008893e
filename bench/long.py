"""Memory over one long video: ``python -m bench.long [--minutes 60] [--height 720]``.

Builds one long H.264/AAC clip by remuxing a 10 s ``deepscan.synth`` clip end to end with PyAV (no
re-encoding, so building an hour takes seconds), scans it with deepscan's defaults and the
full-size random-initialised encoders of ``python -m bench`` (CLIP ViT-B/32, wav2vec2-base), and
samples the resident set size (RSS) of the scanning process every few seconds; the feature cache is
on, as by default, in a fresh folder. A single file is decoded in the main process, so that process
holds everything: decoder, windows, crops, encoders, features and results. Prints one JSON object:
peak and percentile RSS, windows scanned, wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.__main__ import ROOT, build_encoders

SEGMENT_S = 10.0  # length of the synthetic clip repeated
SAMPLE_EVERY_S = 5.0  # RSS sampling period


def rss_mb() -> float:
    """Current resident set size of this process in MB (from ``/proc/self/status``), or NaN off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def build_long_clip(minutes: float, height: int) -> Path:
    """Write (once) a ``minutes``-long clip of ``height`` lines (16:9) by remuxing a 10 s synthetic clip.

    Parameters
    ----------
    minutes : float
        Length of the clip to build, in minutes.
    height : int
        Frame height in pixels; the width is ``16/9`` of it, rounded to an even number.

    Returns
    -------
    pathlib.Path
        The mp4 file.
    """
    import av

    from deepscan import synth

    width = int(round(height * 16 / 9 / 2)) * 2
    out_path = ROOT / f"long_{minutes:g}min_{height}p.mp4"
    if out_path.exists():
        return out_path
    ROOT.mkdir(parents=True, exist_ok=True)
    segment = synth.write_clip(ROOT / f"segment_{height}p.mp4", duration_s=SEGMENT_S, size=(width, height), fps=25, seed=3)
    repeats = max(1, int(round(minutes * 60 / SEGMENT_S)))
    partial = out_path.with_suffix(".partial.mp4")
    with av.open(str(segment)) as source, av.open(str(partial), "w") as target:
        streams = [source.streams.video[0], source.streams.audio[0]]
        outputs = {s.index: target.add_stream_from_template(s) for s in streams}
        packets = [p for p in source.demux(streams) if p.dts is not None]
        span = {s.index: max(p.pts + (p.duration or 0) for p in packets if p.stream.index == s.index) for s in streams}
        for k in range(repeats):
            for p in packets:
                if k and p.pts < 0:  # the AAC priming packet belongs to the first segment only
                    continue
                copy = av.Packet(bytes(p))
                copy.pts, copy.dts = p.pts + k * span[p.stream.index], p.dts + k * span[p.stream.index]
                copy.duration, copy.time_base, copy.is_keyframe = p.duration, p.time_base, p.is_keyframe
                copy.stream = outputs[p.stream.index]
                target.mux(copy)
    partial.rename(out_path)
    return out_path


def run(minutes: float, height: int) -> dict:
    """Scan the long clip with full-size encoders, sampling RSS; return the report."""
    from deepscan.scanner import Scanner

    clip = build_long_clip(minutes, height)
    encoders, detector = build_encoders()
    rss: list[float] = []  # one sample every SAMPLE_EVERY_S seconds
    stop = threading.Event()
    start = time.perf_counter()

    def sample() -> None:
        while not stop.is_set():
            rss.append(rss_mb())
            stop.wait(SAMPLE_EVERY_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # deepscan's defaults, the feature cache included (in a fresh folder, so the scan is cold); a file
    # over scanner.MAX_CACHED_WINDOWS windows is scored but not cached, so its features are not held
    scanner = Scanner(detector=detector, encoders=str(encoders), cache=tempfile.mkdtemp(prefix="deepscan-long-cache-"))
    results = list(scanner.scan([str(clip)]))
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    scanner.close()
    result = results[0]
    at = {f"{q}%": round(rss[int(q / 100 * (len(rss) - 1))], 1) for q in (10, 25, 50, 75, 100)}
    return {
        "command": f"python -m bench.long --minutes {minutes:g} --height {height}",
        "clip": {"path": str(clip), "minutes": minutes, "height": height},
        "encoders": "random-init full-size CLIP ViT-B/32 + wav2vec2-base, float32",
        "cache": "on (fresh folder)",
        "status": result.status,
        "windows": len(result.windows),
        "wall_s": round(wall, 1),
        "media_seconds_per_second": round(minutes * 60 / wall, 3),
        "rss_samples": len(rss),
        "peak_rss_mb": round(max(rss), 1),
        "min_rss_mb": round(min(rss), 1),
        "rss_mb_at_wall_fraction": at,
    }


def main(argv=None) -> None:
    """Command line: build the clip, scan it, print the JSON report."""
    parser = argparse.ArgumentParser(prog="python -m bench.long", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the clip (default 60)")
    parser.add_argument("--height", type=int, default=720, help="frame height in pixels (default 720)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.minutes, args.height), indent=1))


if __name__ == "__main__":
    sys.exit(main())
