"""``deepscan demo``: synthesise a corpus, train a demo detector on the debug encoders, evaluate, check.

Everything runs offline on the CPU: ``deepscan.synth`` makes the clips, the ``debug`` encoders are
built from configs (no download). The work folder (default ``./deepscan-demo``) keeps the corpus
(``data/``), the feature cache (``cache/``) and the detector (``demo-detector.safetensors``), so that
``deepscan check FILE --encoders debug --detector deepscan-demo/demo-detector.safetensors`` works
afterwards; a rerun with the same seed reuses the cached features.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from deepscan.cli.common import EXIT_USAGE, stderr
from deepscan.cli.synth import progress_bar
from deepscan.errors import DeepscanError

DEMO_WORKDIR = Path("deepscan-demo")
DEMO_CLIPS = 160  # 24 held-out files: enough for the AUC to mean something; about 3 min on 2 cores
DEMO_CHECKED = 4  # held-out clips shown in the verdict table
AUC_TARGET = 0.9


def demo(
    workdir: Path = typer.Option(DEMO_WORKDIR, "--workdir", help="Folder for the corpus, cache and detector."),
    clips: int = typer.Option(DEMO_CLIPS, "--clips", min=8, help="Clips to synthesise (half real, half fake)."),
    seed: int = typer.Option(1, "--seed", help="Seed of the corpus and the training."),
    epochs: int = typer.Option(50, "--epochs", min=1, help="Most training epochs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Offline demo: synthetic corpus -> training on debug encoders -> held-out evaluation -> verdict table."""
    from deepscan.extractors import load_extractors
    from deepscan.scanner import Scanner
    from deepscan.training.data import load_dataset, make_synthetic_corpus
    from deepscan.training.train import run_training
    from deepscan.writers import render_table

    started = time.perf_counter()
    data, detector = workdir / "data", workdir / "demo-detector.safetensors"
    console = Console()
    try:
        with progress_bar(quiet) as progress:
            task = progress.add_task("synthesising clips", total=clips, info="")
            if not _same_corpus(data, clips, seed):
                make_synthetic_corpus(data, clips=clips, seed=seed,
                                      progress=lambda d, n: progress.update(task, completed=d))
            progress.update(task, completed=clips)
            t_synth = time.perf_counter() - started
            extractors = load_extractors("debug")
            summary = run_training(data, detector, epochs=epochs, seed=seed, cache_dir=workdir / "cache",
                                   extractors=extractors, progress=progress)
        t_train = time.perf_counter() - started - t_synth
        test = summary["test"] or {}
        held_out = [item for item in load_dataset(data).subset("test")]
        shown = [i.path for i in held_out if i.label == "real"][: DEMO_CHECKED // 2]
        shown += [i.path for i in held_out if i.label == "fake"][: DEMO_CHECKED - len(shown)]
        scanner = Scanner(detector=detector, encoders="debug", device="cpu")
        results = list(scanner.scan(shown, recursive=False))
    except (DeepscanError, ValueError, OSError) as error:
        stderr.print(f"[red]error:[/] {error}")
        raise typer.Exit(EXIT_USAGE)
    console.print(render_table(results))
    per_kind = ", ".join(f"{k} {m['auc']:.3f}" for k, m in sorted(test.get("per_kind", {}).items()) if m.get("auc") is not None)
    auc = test.get("auc")
    console.print(f"held-out AUC: {'n/a' if auc is None else f'{auc:.3f}'} on {test.get('n_real', 0)} real and "
                  f"{test.get('n_fake', 0)} fake test files (per kind: {per_kind or 'n/a'})")
    val_auc = (summary["val"] or {}).get("auc")
    console.print(f"validation AUC: {'n/a' if val_auc is None else f'{val_auc:.3f}'}; synth {t_synth:.0f} s, "
                  f"features + training {t_train:.0f} s, total {time.perf_counter() - started:.0f} s")
    console.print(f"detector: {detector} (try: deepscan check FILE --detector {detector})")
    if auc is None or auc < AUC_TARGET:
        stderr.print(f"[yellow]warning:[/] held-out AUC below {AUC_TARGET}")


def _same_corpus(data: Path, clips: int, seed: int) -> bool:
    import json

    marker = data / "corpus.json"
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return info.get("clips") == clips and info.get("seed") == seed and (data / "manifest.csv").is_file()
