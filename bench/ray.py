"""``python -m bench.ray``: scan throughput locally and on a local Ray cluster with 1 and 2 actors.

The same corpus (default: 8 clips of 5 s 720p H.264/AAC, 4 images, 2 audio files of 5 s, from
:mod:`deepscan.synth`, cached under ``$TMPDIR/deepscan-bench-scan`` as ``python -m bench`` does)
and the same full-size random-initialised encoders (CLIP ViT-B/32, wav2vec2-base) are scanned, cold
(feature cache off), by

1. the local :class:`deepscan.scanner.Scanner` with 1 torch thread beside its decoding worker (the
   like-for-like reference of 1-CPU actors), first and again after the Ray runs, to show how much
   other jobs on the machine moved the numbers meanwhile; and with its defaults (2 threads), last;
2. :class:`deepscan.distributed.ray.RayScanner` on a local cluster of this machine's cores,
   decoding in the actors (the default): 1 actor of 1 CPU, then 2 actors of 1 CPU;
3. the same with ``decode="tasks"``: 1 scoring actor, decoding in Ray tasks on the other cores.

With ``--shipped`` the same runs use the detector that ships (the cue fusion: the experts on
``$DEEPSCAN_MODELS_DIR`` or ``../shared/models``, no encoders), the path ``deepscan check`` takes with
no flags; its report goes to its own section (``<!-- bench:ray-shipped -->``).

Each Ray run reports the cluster's start, the actors' start (models loaded) and the scan itself;
the per-call overhead of Ray is measured apart (a round trip to an idle actor). Results of every
run are checked against the local scan (same verdicts). The report goes to BENCHMARKS.md between
``<!-- bench:ray -->`` markers, with the CPU flags and load average that bear on the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench.sections import markers, write_section

BEGIN, END = markers("ray")
CORPUS = {"clips": 8, "clip_s": 5.0, "images": 4, "audios": 2, "audio_s": 5.0}
QUICK = {"clips": 2, "clip_s": 5.0, "images": 1, "audios": 1, "audio_s": 5.0}
CPU_FLAGS = ("amx_bf16", "avx512_bf16", "avx512_vnni", "avx_vnni")
ROUND_TRIPS = 50  # calls timed to an idle actor


def cpu_flags() -> list[str]:
    """Which of :data:`CPU_FLAGS` ``/proc/cpuinfo`` lists (bf16 / int8 matmul units)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return [flag for flag in CPU_FLAGS if f" {flag}" in text]


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (other jobs on the machine show here)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _text(encoders) -> str | None:
    return None if encoders is None else str(encoders)


def shipped_models_dir() -> Path:
    """The experts' weights for ``--shipped``: ``$DEEPSCAN_MODELS_DIR``, else ``../shared/models``.

    Raises
    ------
    SystemExit
        When neither holds the weights.
    """
    folder = Path(os.environ.get("DEEPSCAN_MODELS_DIR") or Path(__file__).resolve().parents[2] / "shared" / "models")
    if not (folder / "AASIST.pth").is_file():
        raise SystemExit(f"--shipped needs the experts' weights: set DEEPSCAN_MODELS_DIR (tried {folder})")
    return folder


def run_local(files, encoders, detector, threads: int | None = None) -> tuple[float, list]:
    """Cold scan with the local scanner (its defaults, or ``threads`` torch threads): (seconds, results)."""
    from deepscan.scanner import Scanner

    scanner = Scanner(detector=detector, encoders=_text(encoders), cache=False, threads=threads)
    start = time.perf_counter()
    results = list(scanner.scan(files))
    seconds = time.perf_counter() - start
    scanner.close()
    return seconds, results


def run_ray(files, encoders, detector, actors: int, actor_cpus: float, decode: str, cores: int) -> dict:
    """One local cluster, one :class:`RayScanner`: start, actor, scan and round-trip times."""
    import ray

    from deepscan.distributed.ray import RayScanner

    start = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, logging_level="warning", _node_ip_address="127.0.0.1")
    cluster_s = time.perf_counter() - start
    try:
        start = time.perf_counter()
        scanner = RayScanner(detector=detector, encoders=_text(encoders), cache=False, actors=actors,
                             actor_cpus=actor_cpus, decode=decode)
        actors_s = time.perf_counter() - start
        start = time.perf_counter()
        results = list(scanner.scan(files))
        scan_s = time.perf_counter() - start
        actor = scanner.actors[0]
        ray.get(actor.ready.remote(scanner._blob))
        start = time.perf_counter()
        for _ in range(ROUND_TRIPS):
            ray.get(actor.ready.remote(scanner._blob))
        round_trip_ms = (time.perf_counter() - start) / ROUND_TRIPS * 1000
        scanner.close()
    finally:
        ray.shutdown()
    return {"actors": actors, "actor_cpus": actor_cpus, "decode": decode, "cluster_start_s": round(cluster_s, 2),
            "actors_ready_s": round(actors_s, 2), "scan_s": round(scan_s, 2),
            "round_trip_ms": round(round_trip_ms, 2), "results": results}


def same_verdicts(local: list, other: list) -> bool:
    """True when both runs judged every file alike (verdict, status) with ``p_fake`` within 1e-4."""
    by_path = {r.path: r for r in other}
    for r in local:
        o = by_path.get(r.path)
        if o is None or (o.status, o.verdict) != (r.status, r.verdict):
            return False
        if r.p_fake is not None and abs(o.p_fake - r.p_fake) > 1e-4:
            return False
    return len(by_path) == len(local)


def run(args) -> dict:
    from bench.__main__ import build_corpus, build_encoders, media_seconds
    from deepscan.media import iter_media_files

    spec = QUICK if args.quick else CORPUS
    corpus = build_corpus(spec)
    if args.shipped:
        os.environ["DEEPSCAN_MODELS_DIR"] = str(shipped_models_dir())  # the actors inherit it
        encoders = detector = None  # the detector that ships: cue fusion, no encoders
    else:
        encoders, detector = build_encoders()
    files = [str(p) for p in iter_media_files(corpus)]
    seconds = media_seconds(files)
    cores = len(os.sched_getaffinity(0))
    load_before = load_average()
    print(f"corpus {corpus}: {len(files)} files, {seconds:.0f} media-s; {cores} cores", file=sys.stderr)
    # 1 torch thread per process first: the like-for-like reference of Ray's 1-CPU actors (under outside
    # load 2 threads lose to 1 by far more than Ray costs: see BENCHMARKS.md)
    local_1t_s, local_results = run_local(files, encoders, detector, threads=1)
    print(f"local, 1 thread {local_1t_s:.1f} s", file=sys.stderr)
    runs = []
    for actors, actor_cpus, decode in ((1, 1.0, "actor"), (2, cores / 2, "actor"), (1, 1.0, "tasks")):
        if actors * actor_cpus > cores or (decode == "tasks" and cores < 2):
            continue
        result = run_ray(files, encoders, detector, actors, actor_cpus, decode, cores)
        result["same_verdicts_as_local"] = same_verdicts(local_results, result.pop("results"))
        result["media_seconds_per_second"] = round(seconds / result["scan_s"], 3)
        result["vs_local_1_thread_per_file_s"] = round((result["scan_s"] - local_1t_s) / len(files), 3)
        print(json.dumps(result), file=sys.stderr)
        runs.append(result)
    local_after_s, _ = run_local(files, encoders, detector, threads=1)  # again: how much the load moved meanwhile
    print(f"local, 1 thread, again {local_after_s:.1f} s", file=sys.stderr)
    local_s, _ = run_local(files, encoders, detector)
    print(f"local defaults {local_s:.1f} s", file=sys.stderr)
    import ray
    import torch

    return {
        "command": "python -m bench.ray" + (" --quick" if args.quick else "") + (" --shipped" if args.shipped else ""),
        "detector": "shipped" if args.shipped else "random-init encoders",
        "corpus": {**spec, "files": len(files), "media_seconds": round(seconds, 1)},
        "machine": {"cpu_cores": cores, "cpu_flags": cpu_flags(), "load_average_before": load_before,
                    "load_average_after": load_average(), "platform": platform.platform(),
                    "torch": torch.__version__, "ray": ray.__version__,
                    # more runnable tasks than cores; an idle VM here reads ~1.3 with its CPUs 100% idle
                    "shared_with_other_jobs": bool(load_before and load_before[0] > cores)},
        "local": {"one_thread_s": round(local_1t_s, 2), "one_thread_again_s": round(local_after_s, 2),
                  "defaults_s": round(local_s, 2), "per_file_s": round(local_1t_s / len(files), 3),
                  "media_seconds_per_second": round(seconds / local_1t_s, 3)},
        "ray": runs,
    }


def markdown(report: dict) -> str:
    """The BENCHMARKS.md section of a report."""
    c, m, local = report["corpus"], report["machine"], report["local"]
    flags = ", ".join(m["cpu_flags"]) or "none of " + ", ".join(CPU_FLAGS)
    shipped = report.get("detector") == "shipped"
    begin, end = markers("ray-shipped") if shipped else (BEGIN, END)
    models = ("the detector that ships (cue fusion of the experts' scores: AASIST, Meso-4, lip-sync, the "
              "learned experts; no encoders)" if shipped else
              "random-init full-size CLIP ViT-B/32 + wav2vec2-base, fp32/auto as the scanner picks")
    lines = [
        begin,
        "## Ray, the detector that ships (`python -m bench.ray --shipped`)" if shipped else
        "## Ray (`python -m bench.ray`)",
        "",
        f"Command: `{report['command']}` — corpus: {c['clips']} clips of {c['clip_s']:g} s 1280x720 H.264/AAC, "
        f"{c['images']} images, {c['audios']} audio files of {c['audio_s']:g} s ({c['files']} files, "
        f"{c['media_seconds']:g} media-s); {models}, "
        f"feature cache off; {m['cpu_cores']} cores, CPU flags: {flags}; torch {m['torch']}, "
        f"Ray {m['ray']}; load average {m['load_average_before']} before, {m['load_average_after']} after"
        + (" (the machine was shared with other jobs: read the numbers as rough)." if m["shared_with_other_jobs"]
           else "."),
        "",
        "| run | cluster start s | actors ready s | scan s | media-s per s | vs local 1 thread, s per file "
        "| same verdicts |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| local `Scanner`, 1 decoding worker, 1 torch thread | | | {local['one_thread_s']} | "
        f"{local['media_seconds_per_second']} | | |",
    ]
    for r in report["ray"]:
        name = (f"Ray, {r['actors']} actor(s) x {r['actor_cpus']:g} CPU, decoding in "
                + ("the actors" if r["decode"] == "actor" else "tasks"))
        lines.append(f"| {name} | {r['cluster_start_s']} | {r['actors_ready_s']} | {r['scan_s']} | "
                     f"{r['media_seconds_per_second']} | {r['vs_local_1_thread_per_file_s']:+} | "
                     f"{r['same_verdicts_as_local']} |")
    for label, key in (("1 torch thread, again after the Ray runs", "one_thread_again_s"),
                       ("defaults (1 decoding worker, 2 torch threads), last", "defaults_s")):
        rate = round(c["media_seconds"] / local[key], 3)
        lines.append(f"| local `Scanner`, {label} | | | {local[key]} | {rate} | | |")
    trips = ", ".join(f"{r['round_trip_ms']} ms" for r in report["ray"])
    lines += ["", f"Round trip of one call to an idle actor (driver -> actor -> driver): {trips}.", "",
              "```json", json.dumps(report, indent=1), "```", end]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ray", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 clips, 1 image, 1 audio file")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--shipped", action="store_true",
                        help="the detector that ships (experts from $DEEPSCAN_MODELS_DIR or ../shared/models)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DEEPSCAN_OFFLINE", "1")
    os.environ.setdefault("TMPDIR", tempfile.gettempdir())
    # Ray starts workers at nice 15; the local scanner's run at 0. Same priority for a fair comparison.
    os.environ.setdefault("RAY_worker_niceness", "0")
    report = run(args)
    if not args.no_write:
        write_section("ray-shipped" if args.shipped else "ray", markdown(report))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
