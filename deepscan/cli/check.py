"""``deepscan check PATH...``: scan files and directories and print a verdict per file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from deepscan.cli.common import (
    EXIT_USAGE, OutputFormat, finish_check, open_output, output_format_for, progress_enabled, require_writable,
    scanner_or_exit, stderr,
)
from deepscan.cli.scanning import NoProgress, media_progress, resume_from, streaming_writer, write_final
from deepscan.writers.safe import markup_text


def check(
    paths: List[Path] = typer.Argument(..., metavar="PATHS", help="Media files or directories (walked recursively)."),
    detector: Optional[Path] = typer.Option(
        None, "--detector", "-d", envvar="DEEPSCAN_DETECTOR",
        help="Detector checkpoint (.safetensors); default: the one that ships.", rich_help_panel="Models"),
    encoders: Optional[str] = typer.Option(
        None, "--encoders", help="Encoders: default, debug, or a folder with image/ and audio/ (default: the detector's).", rich_help_panel="Models"),
    image_encoder: Optional[str] = typer.Option(None, "--image-encoder", help="Image encoder: hub id or local directory.", rich_help_panel="Models"),
    audio_encoder: Optional[str] = typer.Option(None, "--audio-encoder", help="Audio encoder: hub id or local directory.", rich_help_panel="Models"),
    output_format: Optional[OutputFormat] = typer.Option(
        None, "--format", "-f", show_default=False, metavar="FORMAT",
        help="table, json, jsonl, csv or junit; default: from --output's extension, else table.", rich_help_panel="Output"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write results to this file, not stdout.", rich_help_panel="Output"),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write an HTML report.", rich_help_panel="Output"),
    fail_on_fake: bool = typer.Option(False, "--fail-on-fake", help="Exit with code 1 when any file is judged fake.", rich_help_panel="Output"),
    fail_on_uncertain: bool = typer.Option(
        False, "--fail-on-uncertain", help="Exit with code 1 when any file is judged fake or uncertain.", rich_help_panel="Output"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda.", rich_help_panel="Speed"),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, bf16 or int8 (auto: bf16 where supported, else int8 with VNNI, else fp32).", rich_help_panel="Speed"),
    batch_size: int = typer.Option(64, "--batch-size", min=1, metavar="N", help="Face crops per encoder batch.", rich_help_panel="Speed"),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, metavar="N", help="Decoding processes (0: none; default: one per 2 cores).", rich_help_panel="Speed"),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", envvar="DEEPSCAN_CACHE_DIR", help="Feature cache folder (default ~/.cache/deepscan).", rich_help_panel="Speed"),
    use_cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse features of unchanged files.", rich_help_panel="Speed"),
    resume: bool = typer.Option(False, "--resume", help="With a .jsonl --output: skip files already in it, append.", rich_help_panel="Output"),
    face_detector: str = typer.Option(
        "auto", "--face-detector", help="auto (YuNet if its weights can be had, else Haar), yunet or haar.", rich_help_panel="Models"),
    yunet_model: Optional[Path] = typer.Option(None, "--yunet-model", help="A YuNet ONNX file other than the registry's.", rich_help_panel="Models"),
    experts: str = typer.Option(
        "auto", "--experts", help="auto (every expert whose weights can be had), none, or a comma list of: aasist, "
             "meso4, av_sync, synthetic_speech, generated_image, generated_image_lite2, face_forgery, provenance.", rich_help_panel="Models"),
    models_dir: Optional[Path] = typer.Option(
        None, "--models-dir", envvar="DEEPSCAN_MODELS_DIR", help="Folder of model weight files, used as is.", rich_help_panel="Models"),
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Walk into subdirectories.", rich_help_panel="Input"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar.", rich_help_panel="Output"),
    ray: bool = typer.Option(
        False, "--ray", help='Scan on a Ray cluster (pip install "deepscan\\[ray]"): --ray-address, else $RAY_ADDRESS, '
        "else a local one. PATHS and --output may be URIs (s3://...).", rich_help_panel="Ray cluster"),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="Ray cluster to join: auto, HOST:PORT or ray://HOST:10001 (implies --ray).", rich_help_panel="Ray cluster"),
    ray_actors: Optional[int] = typer.Option(
        None, "--ray-actors", min=1, metavar="N", help="Scoring actors on the cluster (default: one per GPU, else per CPU).", rich_help_panel="Ray cluster"),
) -> None:
    """Scan media for manipulation: one verdict per file, with per-modality and per-window scores."""
    from deepscan.faces import FaceDetectorConfig
    from deepscan.scanner import Scanner

    if ray or ray_address or ray_actors:  # deepscan.cli.ray_check: same options, results and exit codes
        from deepscan.cli.ray_check import check_on_ray

        raise typer.Exit(check_on_ray(
            paths, address=ray_address, actors=ray_actors, output=output, output_format=output_format,
            resume=resume, html=html, fail_on_fake=fail_on_fake, fail_on_uncertain=fail_on_uncertain, quiet=quiet,
            recursive=recursive,
            face_detector=face_detector, yunet_model=yunet_model, detector=detector, encoders=encoders,
            image_encoder=image_encoder, audio_encoder=audio_encoder, device=device, precision=precision,
            batch_frames=batch_size, cache=(cache_dir or True) if use_cache else False, experts=experts,
            models_dir=models_dir))

    output_format = output_format_for(output_format, output)
    missing = [str(p) for p in paths if not p.exists() and not p.is_symlink()]
    if missing:
        stderr.print(f"[red]error:[/] no such file or directory: {markup_text(', '.join(missing))}")
        raise typer.Exit(EXIT_USAGE)
    require_writable(("--output", output), ("--html", html))  # before the models load: a typo costs no scan
    def build() -> Scanner:
        face_config = None  # auto
        if face_detector == "yunet":
            from deepscan.weights import model_path

            face_config = FaceDetectorConfig(backend="yunet",
                                             model_path=str(yunet_model or model_path("yunet", models_dir)))
        elif face_detector != "auto":
            face_config = FaceDetectorConfig(backend=face_detector)
        return Scanner(detector=detector, encoders=encoders, image_encoder=image_encoder,
                       audio_encoder=audio_encoder, device=device, precision=precision,
                       face_config=face_config, batch_frames=batch_size, workers=workers,
                       cache=(cache_dir or True) if use_cache else False, experts=experts,
                       models_dir=models_dir)

    scanner = scanner_or_exit(build)

    results, done = [], set()
    if resume:
        if output_format != OutputFormat.jsonl or output is None:
            stderr.print("[red]error:[/] --resume needs --format jsonl and --output FILE")
            raise typer.Exit(EXIT_USAGE)
        try:
            results = resume_from(output)
        except ValueError as error:
            stderr.print(f"[red]error:[/] cannot resume from {markup_text(output)}: {markup_text(error)}")
            raise typer.Exit(EXIT_USAGE)
        done = {p for r in results for p in (r.path, os.path.abspath(r.path))}
        if results:
            stderr.print(f"resuming: {len(results)} files already in {markup_text(output)}")
    skip = (lambda p: p in done or os.path.abspath(p) in done) if done else None
    interrupted = False
    with open_output(output, append=resume) as stream:
        writer = streaming_writer(output_format, stream)
        with media_progress(not progress_enabled(quiet)) as progress:
            total = None
            if not isinstance(progress, NoProgress):
                from deepscan.scanner import total_media_seconds

                total = total_media_seconds(paths, recursive=recursive, skip=skip) or None
            task = progress.add_task("scanning", total=total)
            try:
                for result in scanner.scan(paths, recursive=recursive, skip=skip,
                                           on_progress=lambda _p, s: progress.advance(task, s)):
                    results.append(result)
                    progress.update(task, description=f"{len(results)} file{'s' if len(results) != 1 else ''}")
                    if writer is not None:
                        writer.write(result)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                scanner.close()  # ends the decoding workers (terminated already on Ctrl-C)
        if results or interrupted:  # no media found: the error says so, no empty table before it
            write_final(output_format, results, stream, output)
    raise typer.Exit(finish_check(results, paths, output_format=output_format, output=output, html=html,
                                  interrupted=interrupted, fail_on_fake=fail_on_fake,
                                  fail_on_uncertain=fail_on_uncertain))
