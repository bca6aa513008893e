"""Seeded fuzzing campaign over every decoder, through the real scanner: ``python -m bench.fuzz``.

Run from the repository root::

    python -m bench.fuzz --cases 2000              # campaign 1, cases 0..1999, then the bombs
    python -m bench.fuzz --cases 200 --campaign 7  # another campaign
    python -m bench.fuzz --write-case 123 x.mp4    # the bytes of case 123 of campaign 1, to debug

Each case is a seed file of one format (see :mod:`bench.fuzz_cases`) mutated as
``numpy.random.default_rng([campaign, index])`` says. Cases are written to a temporary folder in
batches and scanned by ``deepscan check FILES --encoders debug --format jsonl --workers 1``, a
subprocess per batch, with a demo detector made on the spot: decoding runs in the scanner's
worker process as in any scan of several files. The harness reads the JSON Lines as they come,
and checks that

- every case ends in exactly one result: ``ok``, or ``error`` with a typed reason (an error of the
  scanner's catch-all, ``could not decode: SomeException``, counts as *unexpected*);
- the scanner prints no traceback and exits with 0 or 3 (a signal or any other code is a
  *main-process crash*);
- no result takes longer than ``--stall-s`` seconds after the one before (a *hang*: the scanner
  is killed, the case recorded, and the batch resumes after it);
- the decoding worker's peak RSS stays under ``--rss-mb`` (sampled from ``/proc``).

A worker that dies on a case (``decoder crashed``) is allowed, confined and counted. The bombs of
:func:`bench.fuzz_cases.bombs` are scanned last and must each end ``over limits``. The summary
(JSON, and Markdown for BENCHMARKS.md with ``--markdown``) gives the counts by reason, worker
crashes, the slowest cases and peak memory; failing cases are listed with their seeds, so that a
regression test can rebuild them (``tests/test_fuzz.py``). Exit status 1 when any case failed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.fuzz_cases import Case, bombs, make_case, seed_files, seeds_digest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CAMPAIGN = 1
DEFAULT_BATCH = 150  # cases per scanner process (its start-up, ~10 s, is paid once per batch)
STALL_S = 60.0  # s without a new result before the scan counts as hung on the next case
RSS_LIMIT_MB = 2048  # stated bound on the decoding worker's peak RSS during the campaign
BOMB_SECONDS = 10.0  # s a bomb may take to be refused
WAV_CLAIM = "wav_claims_4gb.wav"  # the bomb that is read, not refused: its header's size claim is ignored
EXPECTED_EXIT = (0, 3)  # deepscan check: all scanned / some files could not be scanned
WARMUP_NAME = "a-warmup.png"  # scanned first in every batch: start-up time is not charged to a case
UNEXPECTED_PREFIX = "could not decode: "  # the scanner's catch-all for exceptions media.py did not type


def shared_cases_dir() -> Path | None:
    """``../shared/cases`` next to the repository (or ``$DEEPSCAN_SHARED/cases``), when present."""
    env = os.environ.get("DEEPSCAN_SHARED")
    for base in ([Path(env)] if env else []) + [REPO_ROOT.parent / "shared", REPO_ROOT / "shared"]:
        if (base / "cases").is_dir():
            return base / "cases"
    return None


def make_demo_detector(path: Path) -> Path:
    """Write a randomly initialised detector checkpoint for the debug encoders (seed 0).

    Its verdicts mean nothing; the campaign only needs the scanner to run end to end.
    """
    import torch

    from deepscan.media import VISUAL_FPS, WINDOW_SECONDS
    from deepscan.model import CrossModalDetector, DetectorConfig, save_detector

    torch.manual_seed(0)
    dims = {"image": 512, "audio": 768, "video": 512}
    encoders = {m: {"id": "debug", "revision": None, "dim": d} for m, d in dims.items()}
    save_detector(path, CrossModalDetector(DetectorConfig()), encoders=encoders,
                  sampling={"window_s": WINDOW_SECONDS, "visual_fps": VISUAL_FPS}, threshold=0.5,
                  provenance={"trained_on": "synthetic", "encoders": "debug"})
    return path


@dataclass
class Outcome:
    """What happened to one case."""

    name: str
    case: Case | None  # None for a bomb
    status: str = "missing"  # ok, error, hang (no result for stall_s), crash (the scanner died on it), missing
    reason: str | None = None
    message: str | None = None
    seconds: float | None = None  # time since the result before it (pipelined: an upper bound on its own)

    @property
    def problem(self) -> str | None:
        """Why this case fails the campaign, or None."""
        if self.status == "hang":
            return "hang"
        if self.status == "crash":
            return "main-process crash"
        if self.status == "missing":
            return "no result"
        if self.status == "error" and (self.message or "").startswith(UNEXPECTED_PREFIX):
            return "unexpected exception"
        if self.status == "error" and not self.reason:
            return "error without a reason"
        return None


@dataclass
class BatchRun:
    """One scanner process over a batch."""

    returncode: int | None = None
    traceback: str | None = None
    worker_peak_mb: float = 0.0
    main_peak_mb: float = 0.0
    wall_s: float = 0.0
    killed_for_hang: bool = False


@dataclass
class Campaign:
    """The tally of a campaign."""

    outcomes: list = field(default_factory=list)
    runs: list = field(default_factory=list)
    bomb_outcomes: list = field(default_factory=list)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/task/{current}/children") as handle:
                children = [int(x) for x in handle.read().split()]
        except OSError:
            continue
        found += children
        todo += children
    return found


def _peak_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a live process in MB, 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _scanner_command(files: list[Path], detector: Path) -> list[str]:
    return [sys.executable, "-m", "deepscan", "check", *map(str, files), "--detector", str(detector),
            "--encoders", "debug", "--precision", "fp32", "--format", "jsonl", "--quiet", "--no-cache",
            "--workers", "1", "--no-recursive"]


def scan_files(files: list[Path], detector: Path, stall_s: float = STALL_S,
               on_result=None) -> tuple[BatchRun, dict[str, tuple[dict, float]], str | None]:
    """Scan ``files`` with ``deepscan check`` in a subprocess, watching for stalls.

    Parameters
    ----------
    files : list of Path
        Scanned in this order (results come back in it).
    detector : Path
        Detector checkpoint for the debug encoders.
    stall_s : float
        Seconds without a new result after which the scan is killed as hung.
    on_result : callable(dict), optional
        Called with each result as it arrives.

    Returns
    -------
    (BatchRun, results, hung)
        ``results`` maps a path to ``(result dict, seconds since the previous result)``; ``hung``
        is the path the scan was stuck on when killed, else None.
    """
    run = BatchRun()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    stderr_file = tempfile.TemporaryFile(mode="w+b")
    started = time.monotonic()
    process = subprocess.Popen(_scanner_command(files, detector), stdout=subprocess.PIPE, stderr=stderr_file,
                               env=env, cwd=REPO_ROOT, start_new_session=True)
    lines: queue.Queue = queue.Queue()

    def pump():
        for raw in process.stdout:
            lines.put((time.monotonic(), raw))
        lines.put((time.monotonic(), None))

    threading.Thread(target=pump, daemon=True).start()
    results: dict[str, tuple[dict, float]] = {}
    last = time.monotonic()
    hung = None
    expected = [str(f) for f in files]
    peaks: dict[int, float] = {}
    while True:
        try:
            at, raw = lines.get(timeout=0.25)
        except queue.Empty:
            for pid in _descendants(process.pid):
                peaks[pid] = max(peaks.get(pid, 0.0), _peak_mb(pid))
            peaks[process.pid] = max(peaks.get(process.pid, 0.0), _peak_mb(process.pid))
            if time.monotonic() - last > stall_s and process.poll() is None:
                hung = next((p for p in expected if p not in results), None)
                run.killed_for_hang = True
                os.killpg(process.pid, signal.SIGKILL)
            continue
        if raw is None:
            break
        try:
            result = json.loads(raw)
            path = result["path"]
        except (ValueError, KeyError, TypeError):
            continue  # not a result line: the checks below find what is missing
        results[path] = (result, at - last)
        last = at
        if on_result is not None:
            on_result(result)
    process.wait()
    run.returncode = process.returncode
    run.wall_s = time.monotonic() - started
    stderr_file.seek(0)
    err = stderr_file.read().decode("utf-8", "replace")
    stderr_file.close()
    if "Traceback (most recent call last)" in err:
        run.traceback = err[err.index("Traceback (most recent call last)"):][:4000]
    run.main_peak_mb = peaks.pop(process.pid, 0.0)
    run.worker_peak_mb = max(peaks.values(), default=0.0)
    return run, results, hung


def _outcome(name: str, case: Case | None, found: tuple[dict, float] | None) -> Outcome:
    out = Outcome(name, case)
    if found is None:
        return out
    result, seconds = found
    out.status, out.reason, out.seconds = result.get("status"), result.get("reason"), seconds
    out.message = (result.get("media") or {}).get("error")
    return out


def run_batch(named: list[tuple[str, Case | None, bytes]], detector: Path, folder: Path, stall_s: float,
              warmup: bytes) -> tuple[list[Outcome], list[BatchRun]]:
    """Write a batch of cases to ``folder`` and scan them, resuming after a hang until all are done.

    Parameters
    ----------
    named : list of (file name, Case or None, bytes)
    detector : Path
    folder : Path
        Emptied and filled with the batch's files.
    stall_s : float
        Hang threshold in seconds.
    warmup : bytes
        A valid small image scanned first, so that the scanner's start-up is nobody's time.

    Returns
    -------
    (outcomes, runs)
        One outcome per case in order, and the scanner runs it took (more than one after a hang).
    """
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / WARMUP_NAME).write_bytes(warmup)
    paths = []
    for name, _, data in named:
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    outcomes: dict[str, Outcome] = {}
    runs = []
    todo = list(paths)
    while todo:
        run, results, hung = scan_files([folder / WARMUP_NAME, *todo], detector, stall_s)
        runs.append(run)
        for path in todo:
            if str(path) in results:
                outcomes[str(path)] = _outcome(path.name, None, results[str(path)])
        stuck, status = hung, "hang"
        if stuck is None and run.returncode not in EXPECTED_EXIT:  # the scanner died: on the first file left
            stuck, status = next((str(p) for p in todo if str(p) not in results), None), "crash"
        if stuck is None or stuck == str(folder / WARMUP_NAME):
            break
        outcomes[stuck] = Outcome(Path(stuck).name, None, status=status, seconds=stall_s if status == "hang" else None)
        todo = todo[todo.index(Path(stuck)) + 1:]
    ordered = []
    for (name, case, _), path in zip(named, paths):
        out = outcomes.get(str(path)) or Outcome(name, None)
        out.case = case
        ordered.append(out)
    return ordered, runs


def run_campaign(indices: list[int], campaign: int = DEFAULT_CAMPAIGN, batch: int = DEFAULT_BATCH,
                 stall_s: float = STALL_S, with_bombs: bool = True, keep: Path | None = None,
                 progress=None) -> Campaign:
    """Build and scan the cases ``indices`` of ``campaign`` (and the bombs).

    Parameters
    ----------
    indices : list of int
        Case numbers.
    campaign : int
        Campaign seed.
    batch : int
        Cases per scanner process.
    stall_s : float
        Hang threshold in seconds.
    with_bombs : bool
        Scan :func:`bench.fuzz_cases.bombs` after the cases.
    keep : Path, optional
        Copy the files of failing cases here.
    progress : callable(str), optional
        Told about each batch.

    Returns
    -------
    Campaign
    """
    seeds = seed_files(shared_cases_dir())
    tally = Campaign()
    work = Path(tempfile.mkdtemp(prefix="deepscan-fuzz-"))
    try:
        detector = make_demo_detector(work / "detector.safetensors")
        warmup = seeds["rgb.png"]
        for start in range(0, len(indices), batch):
            chunk = indices[start:start + batch]
            named = []
            for index in chunk:
                case, data = make_case(campaign, index, seeds)
                named.append((case.name, case, data))
            began = time.monotonic()
            outcomes, runs = run_batch(named, detector, work / "batch", stall_s, warmup)
            tally.outcomes += outcomes
            tally.runs += runs
            if keep is not None:
                _keep_failures(outcomes, runs, dict((n, d) for n, _, d in named), keep)
            if progress:
                done = start + len(chunk)
                bad = sum(o.problem is not None for o in tally.outcomes)
                progress(f"{done}/{len(indices)} cases, {bad} failing, batch {time.monotonic() - began:.0f} s")
        if with_bombs:
            named = [(f"bomb-{name}", None, data) for name, data in bombs(seeds).items()]
            outcomes, runs = run_batch(named, detector, work / "bombs", stall_s, warmup)
            tally.bomb_outcomes = outcomes
            tally.runs += runs
            if progress:
                ended = sum(bomb_ended_as_it_should(o) for o in outcomes)
                progress(f"bombs: {ended}/{len(outcomes)} as they should end "
                         f"({sum(o.reason == 'over limits' for o in outcomes)} refused over limits, "
                         f"{WAV_CLAIM} read as the one second it holds)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tally


def _keep_failures(outcomes, runs, data_by_name, keep: Path) -> None:
    crashed = any(r.returncode not in EXPECTED_EXIT or r.traceback for r in runs)
    for out in outcomes:
        if out.problem or crashed or out.reason == "decoder crashed":
            keep.mkdir(parents=True, exist_ok=True)
            (keep / out.name).write_bytes(data_by_name[out.name])


def summarize(tally: Campaign, rss_limit_mb: float = RSS_LIMIT_MB, bomb_seconds: float = BOMB_SECONDS) -> dict:
    """Counts and failures of a campaign, JSON-ready.

    Returns
    -------
    dict
        ``cases``, ``by_status``, ``by_reason``, ``worker_crashes``, ``hangs``, ``tracebacks``,
        ``main_process_crashes``, ``unexpected``, ``slowest`` (top 5), ``worker_peak_rss_mb``,
        ``main_peak_rss_mb``, ``bombs`` and ``failures`` (each with campaign, index, seed,
        mutator, detail and problem), and ``passed``.
    """
    outcomes = tally.outcomes
    failures = []
    for out in outcomes:
        if out.problem:
            c = out.case
            failures.append({"case": out.name, "problem": out.problem, "reason": out.reason,
                             "message": (out.message or "")[:300], "campaign": c.campaign if c else None,
                             "index": c.index if c else None, "seed": c.seed_name if c else None,
                             "mutator": c.mutator if c else None, "detail": c.detail if c else None})
    tracebacks = [r.traceback for r in tally.runs if r.traceback]
    crashes = [r.returncode for r in tally.runs if r.returncode not in EXPECTED_EXIT and not r.killed_for_hang]
    worker_peak = max((r.worker_peak_mb for r in tally.runs), default=0.0)
    timed = sorted((o for o in outcomes if o.seconds is not None), key=lambda o: -o.seconds)
    bombs_out = []
    for out in tally.bomb_outcomes:
        refused = bomb_ended_as_it_should(out)
        bombs_out.append({"bomb": out.name.removeprefix("bomb-"), "status": out.status, "reason": out.reason,
                          "seconds": None if out.seconds is None else round(out.seconds, 2),
                          "message": (out.message or "")[:200],
                          "passed": bool(refused and out.seconds is not None and out.seconds <= bomb_seconds)})
    summary = {
        "cases": len(outcomes),
        "by_status": dict(collections.Counter(o.status for o in outcomes)),
        "by_reason": dict(sorted(collections.Counter(o.reason or "ok" for o in outcomes if o.status in ("ok", "error")).items(),
                                 key=lambda kv: -kv[1])),
        "errors_by_reason": dict(collections.Counter(o.reason for o in outcomes if o.status == "error").most_common()),
        "ok_by_reason": dict(collections.Counter(o.reason or "none" for o in outcomes if o.status == "ok").most_common()),
        "by_mutator": dict(sorted(collections.Counter(o.case.mutator for o in outcomes if o.case).items())),
        "worker_crashes": sum(o.reason == "decoder crashed" for o in outcomes),
        "hangs": sum(o.status == "hang" for o in outcomes),
        "tracebacks": len(tracebacks),
        "traceback_samples": tracebacks[:3],
        "main_process_crashes": len(crashes),
        "main_process_exit_codes": crashes,
        "unexpected": sum(o.problem == "unexpected exception" for o in outcomes),
        "examples": _examples(outcomes),
        "slowest": [{"case": o.name, "seconds": round(o.seconds, 2), "reason": o.reason or o.status,
                     "detail": o.case.detail if o.case else None} for o in timed[:5]],
        "worker_peak_rss_mb": round(worker_peak, 1),
        "main_peak_rss_mb": round(max((r.main_peak_mb for r in tally.runs), default=0.0), 1),
        "rss_limit_mb": rss_limit_mb,
        "scanner_runs": len(tally.runs),
        "scan_wall_s": round(sum(r.wall_s for r in tally.runs), 1),
        "bombs": bombs_out,
        "failures": failures,
    }
    summary["passed"] = (not failures and not tracebacks and not crashes and worker_peak <= rss_limit_mb
                         and all(b["passed"] for b in bombs_out))
    return summary


def _examples(outcomes: list[Outcome], per_reason: int = 2) -> dict[str, list[str]]:
    """A few cases of each error reason, with their messages: what to read when a count looks odd."""
    examples: dict[str, list[str]] = {}
    for out in outcomes:
        if out.status == "error" and len(examples.setdefault(out.reason or "", [])) < per_reason:
            examples[out.reason or ""].append(f"{out.name}: {(out.message or '')[:160]}")
    return examples


def bomb_ended_as_it_should(outcome) -> bool:
    """A bomb is refused as ``over limits``, except :data:`WAV_CLAIM`, which scans what it really holds."""
    if outcome.name.endswith(WAV_CLAIM):
        return outcome.status == "ok"
    return outcome.reason == "over limits"


def markdown(summary: dict, command: str, campaign: int, digest: str) -> str:
    """The BENCHMARKS.md section for a campaign summary."""
    lines = [
        "## Fuzzing (`python -m bench.fuzz`)", "",
        f"Command: `{command}` — campaign seed {campaign}, seed files digest `{digest}`, "
        f"{platform.machine()}, {os.cpu_count()} cores; the real scanner path (`deepscan check --encoders debug "
        "--workers 1`, one process per batch), a hang is no result for 60 s.", "",
        "| cases | ok | typed errors | worker crashes | hangs | tracebacks | main-process crashes | unexpected exceptions |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {summary['cases']} | {summary['by_status'].get('ok', 0)} | {summary['by_status'].get('error', 0)} | "
        f"{summary['worker_crashes']} | {summary['hangs']} | {summary['tracebacks']} | "
        f"{summary['main_process_crashes']} | {summary['unexpected']} |", "",
        "Errors by reason: " + ", ".join(f"{reason} {n}" for reason, n in summary["errors_by_reason"].items()) + ". "
        "Scanned files by the reason attached to their verdict: "
        + ", ".join(f"{reason} {n}" for reason, n in summary["ok_by_reason"].items()) + ".",
        "",
        "Cases by mutation: " + ", ".join(f"{m} {n}" for m, n in summary["by_mutator"].items()) + ".", "",
        f"Peak RSS: decoding worker {summary['worker_peak_rss_mb']:.0f} MB (bound {summary['rss_limit_mb']} MB), "
        f"scanner main process {summary['main_peak_rss_mb']:.0f} MB. Scanning took {summary['scan_wall_s']:.0f} s "
        f"in {summary['scanner_runs']} scanner runs.", "",
        "Slowest cases (time since the result before, decoding pipelined with encoding):", "",
        "| case | s | result | mutation |", "|---|---:|---|---|",
    ]
    for slow in summary["slowest"]:
        lines.append(f"| {slow['case']} | {slow['seconds']} | {slow['reason']} | {slow['detail'] or ''} |")
    lines += ["", f"Bombs (each must be refused, `over limits`, within 10 s, except {WAV_CLAIM}: FFmpeg reads the "
              "one second the file holds and ignores the header's claim):", "",
              "| bomb | result | s | reason given |", "|---|---|---:|---|"]
    for bomb in summary["bombs"]:
        lines.append(f"| {bomb['bomb']} | {bomb['reason'] or bomb['status']} | {bomb['seconds']} | "
                     f"{bomb['message'].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """Command line: run a campaign, print the summary, exit 1 when any case failed."""
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=200, help="number of cases (indices 0..N-1 from --start)")
    parser.add_argument("--start", type=int, default=0, help="first case index")
    parser.add_argument("--campaign", type=int, default=DEFAULT_CAMPAIGN, help="campaign seed")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="cases per scanner process")
    parser.add_argument("--stall-s", type=float, default=STALL_S, help="seconds without a result that make a hang")
    parser.add_argument("--no-bombs", action="store_true", help="skip the decompression and resource bombs")
    parser.add_argument("--keep", type=Path, help="copy failing cases' files into this folder")
    parser.add_argument("--json", type=Path, help="write the summary here as JSON")
    parser.add_argument("--markdown", action="store_true", help="print the BENCHMARKS.md section")
    parser.add_argument("--write-case", nargs=2, metavar=("INDEX", "FILE"), help="write one case's bytes and exit")
    args = parser.parse_args(argv)
    if args.write_case:
        case, data = make_case(args.campaign, int(args.write_case[0]), seed_files(shared_cases_dir()))
        Path(args.write_case[1]).write_bytes(data)
        print(json.dumps({"name": case.name, "seed": case.seed_name, "mutator": case.mutator, "detail": case.detail}))
        return 0
    indices = list(range(args.start, args.start + args.cases))
    began = time.monotonic()
    tally = run_campaign(indices, args.campaign, args.batch, args.stall_s, not args.no_bombs, args.keep,
                         progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    summary = summarize(tally)
    summary["wall_s"] = round(time.monotonic() - began, 1)
    summary["seeds_digest"] = seeds_digest(seed_files(shared_cases_dir()))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    if args.markdown:
        command = "python -m bench.fuzz " + " ".join(argv if argv is not None else sys.argv[1:])
        print(markdown(summary, command.strip(), args.campaign, summary["seeds_digest"]))
    else:
        print(json.dumps({k: v for k, v in summary.items() if k != "traceback_samples"}, indent=1))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
