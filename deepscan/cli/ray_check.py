"""``deepscan check ... --ray``: the check command's driver on a Ray cluster (:mod:`deepscan.distributed.ray`).

Same options, outputs and exit codes as the local ``check``; outputs may also be URIs and Parquet
(:mod:`deepscan.distributed.storage`).
"""

from __future__ import annotations

import os
from pathlib import Path

from deepscan.cli.common import (
    EXIT_MODEL_ERROR, EXIT_USAGE, OutputFormat, finish_check, output_format_for, progress_enabled, require_writable,
    stderr,
)
from deepscan.cli.scanning import file_progress, resume_from, streaming_writer, write_final
from deepscan.distributed.storage import (
    is_uri, list_inputs, open_text_output, prior_jsonl_results, restore_uri, write_parquet,
)
from deepscan.errors import CheckpointError, DeepscanError, DetectorNotConfiguredError, ModelLoadingError
from deepscan.writers.safe import markup_text

__all__ = ["check_on_ray"]

def check_on_ray(paths, *, address=None, actors=None, output=None, output_format=None, resume=False,
                 html=None, fail_on_fake=False, fail_on_uncertain=False, quiet=False, recursive=True,
                 face_detector="auto", yunet_model=None,
                 **scanner_options) -> int:
    """``deepscan check ... --ray``: scan on a cluster, write results as the local check does; the exit code.

    Results stream to ``output`` (a local path or a URI) as JSON Lines or CSV while the scan runs
    (in completion order); ``table``, ``json`` and ``junit`` are written at the end in input
    order; an ``output`` ending in ``.parquet`` gets a Parquet file at the end
    (:func:`~deepscan.distributed.storage.write_parquet`). Without ``output_format``, the output's
    extension picks it (:func:`deepscan.cli.common.output_format_for`), as locally. ``resume``
    needs JSON Lines and an output, as locally.

    Parameters
    ----------
    paths : list
        Paths and URIs as the CLI parsed them (``pathlib`` folds ``s3://``; it is restored).
    address, actors
        See :class:`~deepscan.distributed.ray.RayScanner`.
    output, output_format, resume, html, fail_on_fake, fail_on_uncertain, quiet, recursive, face_detector, yunet_model
        As ``deepscan check`` (a YuNet file named here must exist on every node).
    **scanner_options
        :class:`~deepscan.scanner.Scanner` arguments.

    Returns
    -------
    int
        The exit code (:mod:`deepscan.cli.common`).
    """
    from deepscan.distributed.ray import RayScanner

    target = restore_uri(output) if output is not None else None
    fmt = output_format_for(output_format, target)
    parquet = target is not None and target.lower().endswith(".parquet")
    sources = [restore_uri(p) for p in paths]
    missing = [s for s in sources if not is_uri(s) and not os.path.lexists(s)]
    if missing:
        stderr.print(f"[red]error:[/] no such file or directory: {markup_text(', '.join(missing))}")
        return EXIT_USAGE
    require_writable(("--output", target), ("--html", html))  # local paths, before the cluster starts
    results, prior = [], b""
    if resume:
        if fmt != OutputFormat.jsonl or target is None or parquet:
            stderr.print("[red]error:[/] --resume needs --format jsonl and --output FILE")
            return EXIT_USAGE
        try:
            results, prior = prior_jsonl_results(target) if is_uri(target) else (resume_from(Path(target)), b"")
        except (ValueError, OSError) as error:
            stderr.print(f"[red]error:[/] cannot resume from {markup_text(target)}: {markup_text(error)}")
            return EXIT_USAGE
        if results:
            stderr.print(f"resuming: {len(results)} files already in {markup_text(target)}")
    try:
        if (address or os.environ.get("RAY_ADDRESS") or "local") == "local":  # the actors run here: check it now
            from deepscan.weights import models_dir

            models_dir(scanner_options.get("models_dir"))  # a folder that is not there: ModelsDirNotFoundError
        if face_detector == "yunet":
            from deepscan.faces import FaceDetectorConfig
            from deepscan.weights import model_path

            scanner_options["face_config"] = FaceDetectorConfig(
                backend="yunet", model_path=str(yunet_model or model_path("yunet", scanner_options.get("models_dir"))))
        elif face_detector != "auto":
            from deepscan.faces import FaceDetectorConfig

            scanner_options["face_config"] = FaceDetectorConfig(backend=face_detector)
        scanner = RayScanner(address=address, actors=actors, **scanner_options)
    except ImportError as error:
        stderr.print(f"[red]error:[/] {markup_text(error)}")
        return EXIT_USAGE
    except DetectorNotConfiguredError as error:
        stderr.print(f"[red]error:[/] {error.message}")
        return EXIT_USAGE
    except (ModelLoadingError, CheckpointError) as error:
        stderr.print(f"[red]error:[/] {markup_text(error)}")
        return EXIT_MODEL_ERROR
    except (DeepscanError, ValueError, ConnectionError, TimeoutError) as error:
        stderr.print(f"[red]error:[/] {markup_text(error)}")
        return EXIT_USAGE
    if scanner.detector_info.get("label"):
        stderr.print(f"[bold yellow]{markup_text(scanner.detector_info['label'])}[/]")
    for name, problem in scanner.expert_problems.items():
        stderr.print(f"[yellow]warning:[/] {name} is not available on the actors: {markup_text(problem)}")
    stderr.print(f"ray: {len(scanner.actors)} actors on {len(scanner.nodes)} node(s), decoding in "
                 f"{'tasks' if scanner.decode == 'tasks' else 'the actors'}")
    done = {p for r in results for p in ((r.path,) if is_uri(r.path) else (r.path, os.path.abspath(r.path)))}
    interrupted = False
    stream, close = (None, False) if parquet else open_text_output(target, prior, append_local=resume)
    try:
        writer = streaming_writer(fmt, stream) if stream is not None else None
        with file_progress(not progress_enabled(quiet)) as progress:
            task = progress.add_task("scanning", total=None)
            try:
                skip = (lambda p: p in done or (not is_uri(p) and os.path.abspath(p) in done)) if done else None
                for result in scanner.scan(sources, recursive=recursive, skip=skip):
                    results.append(result)
                    progress.update(task, description=f"{len(results)} file{'s' if len(results) != 1 else ''}", advance=1)
                    if writer is not None:
                        writer.write(result)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                scanner.close()
        order = {s: i for i, s in enumerate(item.source for item in list_inputs(sources, recursive))}
        ordered = sorted(results, key=lambda r: order.get(r.path, len(order)))
        if parquet:
            write_parquet(ordered, target)
        elif stream is not None:
            write_final(fmt, ordered, stream, target)
    finally:
        if close:
            stream.close()
    return finish_check(ordered, sources, output_format=fmt, output=target, html=html, interrupted=interrupted,
                        fail_on_fake=fail_on_fake, fail_on_uncertain=fail_on_uncertain)
