"""A self-contained HTML report of scan results: summary, sortable table, one card per file.

The report is a single UTF-8 file that works offline: styles and the small sort/filter script are
inline, plots are inline SVG drawn by matplotlib, face thumbnails are ``data:`` URIs. Nothing is
fetched from the network when it is opened. The template is Jinja2 with autoescaping on, so file
names (non-ASCII, ``<``, ``&``, quotes) and reasons are shown as text, never as markup.
"""

from __future__ import annotations

import io
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import jinja2
from markupsafe import Markup, escape

from deepscan.media import container_name
from deepscan.model.fusion import FUSION_KIND
from deepscan.results import MODALITIES, STATUS_OK, ScanResult, summarize
from deepscan.results import VERDICT_MEANINGS as RESULT_MEANINGS
from deepscan.writers.paths import display_root, relative_to
from deepscan.writers.safe import plot_text

DEFAULT_TITLE = "deepscan report"
TEMPLATE_NAME = "report.html.j2"

MAX_PLOT_POINTS = 160  # windows per timeline before they are max-pooled into bins
PLOT_SIZE_IN = (6.4, 1.9)  # timeline figure size, inches (rendered at 100% of the card's width)
PLOT_COLORS = {"fused": "#111827", "image": "#2563eb", "audio": "#d97706", "video": "#059669",
               "aasist": "#b45309", "aasist-l": "#f59e0b", "meso4": "#7c3aed", "meso4-f2f": "#a78bfa",
               "av_sync": "#0891b2", "synthetic_speech": "#be185d", "generated_image": "#4d7c0f",
               "face_forgery": "#1e3a8a"}
OTHER_COLOR = "#6b7280"  # a series without a colour of its own
THRESHOLD_COLOR = "#dc2626"

_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")
_BREAK_AFTER = re.compile(r"([/\\_\-]+)")  # a name may wrap after a path separator, "_" or "-"
_BREAK_BEFORE = re.compile(r"(?<=[^/\\_\-.])(?=\.)")  # ... and before a dot: ".mp4" stays whole
LONG_RUN = 16  # characters of a name part without a break opportunity before it gets one
# what each verdict means, in the words of the legend beside the table (the table's and the README's words)
VERDICT_MEANINGS = {**RESULT_MEANINGS, "error": "the file could not be scanned"}


def render_html(results: Sequence[ScanResult], title: str = DEFAULT_TITLE,
                generated_at: datetime | None = None, root: str | None = None) -> str:
    """Render results as one self-contained HTML document.

    Parameters
    ----------
    results : sequence of ScanResult
        The scanned files, in the order to show them.
    title : str
        Page title and heading.
    generated_at : datetime, optional
        Time shown in the header; now (UTC) when omitted.
    root : str, optional
        Folder the file names are shown from, named in the header; default: the folder the files
        share (the scanned folder, :func:`deepscan.writers.paths.display_root`). Each name's full
        path is its tooltip.

    Returns
    -------
    str
        The HTML document (UTF-8 text, ``<!doctype html>`` first).

    Raises
    ------
    TypeError
        When an item of ``results`` is not a :class:`ScanResult`.
    """
    results = list(results)
    for item in results:
        if not isinstance(item, ScanResult):
            raise TypeError(f"render_html needs ScanResult objects, got {type(item).__name__}")
    from deepscan import __version__

    generated_at = generated_at or datetime.now(timezone.utc)
    root = root if root is not None else display_root([r.path for r in results], prefer_cwd=False)
    files = [_file_view(i, r, root) for i, r in enumerate(results)]
    html = _environment().get_template(TEMPLATE_NAME).render(
        title=title,
        generated=generated_at.strftime("%Y-%m-%d %H:%M:%S %Z").strip(),
        version=__version__,
        counts=summarize(results),
        legend=_legend(results),
        detectors=_detectors(results),
        files=files,
        modalities=MODALITIES,
        colors=PLOT_COLORS,
        root=root,
        root_shown=breakable(root) if root else None,
        metric_headers={"auc": "AUC", "eer": "EER", "ap": "AP", "accuracy": "acc", "ece": "ECE"},
    )
    # file names that were not valid UTF-8 reach Python as lone surrogates: show them as \udcXX
    return html.encode("utf-8", "backslashreplace").decode("utf-8")


def write_html(results: Iterable[ScanResult], path: str | os.PathLike, title: str = DEFAULT_TITLE) -> Path:
    """Render results with :func:`render_html` and write them to ``path`` (UTF-8).

    Parameters
    ----------
    results : iterable of ScanResult
    path : str or PathLike
        The report file; missing parent directories are created.
    title : str
        Page title and heading.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    OSError
        When the file cannot be written.
    """
    path = Path(path)
    html = render_html(list(results), title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def timeline_svg(result: ScanResult, salt: str = "0", cues: bool = False) -> str | None:
    """Plot per-window ``p_fake`` against time as inline SVG: fused and per modality, or per cue.

    Each window is drawn at its centre time; the threshold is a dashed line. Files with more than
    :data:`MAX_PLOT_POINTS` windows are max-pooled into that many bins so that the plot stays
    small and a short suspicious stretch stays visible.

    Parameters
    ----------
    result : ScanResult
        A scanned file (``status == "ok"``) with its windows.
    salt : str
        Token (letters, digits, "-", "_") that makes the SVG's element ids unique when several
        plots share one HTML page.
    cues : bool
        Plot each expert cue's window scores (``aasist``, ``meso4``, ``av_sync``...) instead of the
        detector's fused and per-modality scores.

    Returns
    -------
    str or None
        ``<svg ...>...</svg>`` markup without XML declaration, or None when there is nothing to plot.
    """
    windows = [_window_dict(w) for w in result.windows]
    if not windows:
        return None
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    starts = [float(w["start_s"]) for w in windows]
    ends = [max(float(w["end_s"]), float(w["start_s"])) for w in windows]
    if cues:
        series = {}
        for name in sorted({n for w in windows for n in (w.get("cues") or {})}):
            values = [((w.get("cues") or {}).get(name) or {}).get("p_fake") for w in windows]
            if any(v is not None for v in values):
                series[name] = values
        if not series:
            return None
    else:
        series = {"fused": [w["p_fake"] for w in windows]}
        for name in MODALITIES:
            values = [(w.get("modalities") or {}).get(name) for w in windows]
            if any(v is not None for v in values):
                series[name] = values
    starts, ends, series = _pool(starts, ends, series, MAX_PLOT_POINTS)
    centres = [(s + e) / 2.0 for s, e in zip(starts, ends)]
    instant = ends[-1] <= starts[0]  # an image: one window of no duration

    rc = {"svg.fonttype": "none", "svg.hashsalt": f"deepscan-{salt}", "font.size": 8,
          "font.family": "sans-serif", "axes.edgecolor": "#9ca3af", "axes.linewidth": 0.6,
          "xtick.color": "#4b5563", "ytick.color": "#4b5563", "axes.labelcolor": "#374151"}
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=PLOT_SIZE_IN)
        ax = fig.add_subplot()
        for name, values in series.items():
            fused = name == "fused"
            ys = [math.nan if v is None else float(v) for v in values]
            style = {"color": PLOT_COLORS.get(name, OTHER_COLOR), "zorder": 3 if fused else 2}
            if not instant:
                # each window's score holds over its time span: a step per window, gaps where absent
                ax.step(starts + [ends[-1]], ys + [ys[-1]], where="post", linewidth=2.0 if fused else 1.1,
                        **style)
            if instant or len(ys) <= 12:
                ax.plot(centres, ys, linestyle="none", marker="o", markersize=5 if fused else 3.5, **style)
            # one legend entry; a cue name read from a results file is plain text, never mathtext
            ax.plot([], [], label=plot_text(name), linewidth=2.0 if fused else 1.1, **style)
        if result.threshold is not None and not cues:
            ax.axhline(result.threshold, color=THRESHOLD_COLOR, linestyle="--", linewidth=1.0,
                       label="threshold", zorder=1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_yticks([0, 0.5, 1])
        ax.set_ylabel("cue score" if cues else "p_fake")
        if instant:
            ax.set_xlim(centres[0] - 1.0, centres[0] + 1.0)
            ax.set_xticks([centres[0]])
            ax.set_xticklabels(["whole file"])
        else:
            ax.set_xlim(starts[0], ends[-1])
            ax.set_xlabel("time (s)")
        ax.grid(axis="y", color="#e5e7eb", linewidth=0.6)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=7)
        fig.subplots_adjust(left=0.09, right=0.78, top=0.95, bottom=0.24)  # room for "synthetic_speech"
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return _inline_svg(buffer.getvalue(), prefix=f"plot{salt}-")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("deepscan.writers", "templates"),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,  # results from older files may lack keys
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["signed"] = _signed
    env.filters["pct"] = _pct
    env.filters["seconds"] = _seconds
    env.filters["size"] = _size
    return env


def _file_view(index: int, result: ScanResult, root: str | None = None) -> dict:
    """Everything the template shows for one file, already formatted."""
    ok = result.status == STATUS_OK
    svg = timeline_svg(result, salt=str(index)) if ok else None
    instant = all(_window_dict(w)["end_s"] <= _window_dict(w)["start_s"] for w in result.windows)
    # a still image has one instant: its cues are the table's numbers, a plot of dots adds nothing
    cue_svg = timeline_svg(result, salt=f"{index}c", cues=True) if ok and not instant else None
    cues = []
    for name, c in (result.cues or {}).items():
        sha = c.get("weights_sha256") or ""
        cues.append({"name": name, "p_fake": c.get("p_fake"), "reason": c.get("reason"),
                     "expert": c.get("expert"), "sha": sha[:12], "sha_full": sha,
                     "trained_on": c.get("trained_on"), "lag_ms": c.get("lag_ms"),
                     "correlation": c.get("correlation")})
    absent: dict = {}  # reason -> cues that did not apply, for one line each under the scored cues
    for c in cues:
        if c["p_fake"] is None:
            absent.setdefault(c["reason"] or "not run", []).append(c["name"])
    media = result.media or {}
    faces = result.faces or {}
    modalities = []
    for name in MODALITIES:
        info = (result.modalities or {}).get(name) or {}
        modalities.append({"name": name, "present": bool(info.get("present")), "p_fake": info.get("p_fake"),
                           "reason": modality_reason(name, info.get("reason"))})
    thumbnails = [t for t in (result.thumbnails or [])
                  if isinstance(t.get("jpeg_base64"), str) and _BASE64.match(t["jpeg_base64"])]
    shown_path = relative_to(result.path, root)
    name = os.path.basename(result.path.rstrip("/\\")) or result.path
    verdict = (result.verdict or "error") if ok else "error"
    return {
        "index": index,
        "anchor": f"file-{index}",
        "result": result,
        "ok": ok,
        "name": breakable(name),
        "shown_path": breakable(shown_path),
        "verdict": verdict,
        "meaning": VERDICT_MEANINGS.get(verdict, ""),
        "margin": result.margin if ok else None,
        "band": uncertain_band(result) if ok else None,
        "scale_note": scale_note(result, modalities) if ok else None,
        "svg": Markup(svg) if svg else None,
        "cue_svg": Markup(cue_svg) if cue_svg else None,
        "cues": cues,
        "absent_cues": list(absent.items()),
        "modalities": modalities,
        "thumbnails": thumbnails,
        "media": media,
        "media_facts": _media_facts(media, result.path),
        "faces": faces,
        "window_count": len(result.windows),
        "error_message": media.get("error"),
        "provenance": provenance_rows((result.cues or {}).get("provenance")) if ok else [],
    }


def provenance_rows(cue: dict | None) -> list[tuple[str, str]]:
    """What a file declares about itself, as ``(label, text)`` rows for the report's small provenance table.

    Parameters
    ----------
    cue : dict or None
        The result's ``provenance`` cue (:func:`deepscan.aggregate.apply_provenance`): ``column``,
        ``reason`` and ``facts`` (:meth:`deepscan.experts.provenance.Provenance.as_dict`).

    Returns
    -------
    list of (str, str)
        The C2PA manifest's chain (claim generator, signer and issuer, signing time, validation,
        actions, ingredients), the IPTC source type, generator marks, the watermark and software
        tags; empty when the file declares nothing (no mark is no evidence, and nothing is shown).
    """
    if not cue or cue.get("column") in (None, "-"):
        return []
    facts = cue.get("facts") or {}
    rows = [("declares", str(cue.get("reason") or cue.get("column")))]
    c2pa = facts.get("c2pa") or {}
    if c2pa:
        rows.append(("C2PA claim generator", str(c2pa.get("claim_generator") or "–")))
        signer = " / ".join(str(x) for x in (c2pa.get("signer"), c2pa.get("issuer")) if x)
        rows.append(("C2PA signer / issuer", signer or "–"))
        if c2pa.get("signed_at"):
            rows.append(("C2PA signed", str(c2pa["signed_at"])))
        failures = ", ".join(str(f) for f in c2pa.get("validation_failures") or ())
        rows.append(("C2PA validation", str(c2pa.get("validation_state")) + (f" ({failures})" if failures else "")))
        for action in c2pa.get("actions") or ():
            text = ", ".join(str(x) for x in (action.get("action"), action.get("digital_source_type"),
                                              action.get("software_agent")) if x)
            rows.append(("C2PA action", text))
        for ingredient in c2pa.get("ingredients") or ():
            types = ", ".join(ingredient.get("digital_source_types") or ())
            text = ", ".join(str(x) for x in (ingredient.get("title"), ingredient.get("relationship")) if x)
            rows.append(("C2PA ingredient", text + (f" (declares {types})" if types else "")))
    iptc = facts.get("iptc_source_type") or {}
    if iptc:
        rows.append(("IPTC source type", f"{iptc.get('term')} ({iptc.get('where')})"))
    for mark in facts.get("generator_marks") or ():
        text = f"{mark.get('generator')}: {mark.get('field')} in {mark.get('where')}"
        if mark.get("documented_at"):
            text += f" (documented at {mark['documented_at']})"
        rows.append(("generator metadata", text))
    watermark = facts.get("watermark") or {}
    if watermark:
        rows.append(("watermark", f"{watermark.get('scheme')} ({watermark.get('generator')}): "
                                  f"{watermark.get('bits_matched')}/{watermark.get('n_bits')} bits, false-match "
                                  f"rate {watermark.get('false_match_rate')}"))
    for tag in facts.get("software") or ():
        rows.append(("software tag", f"{tag.get('field')} = {tag.get('value')} ({tag.get('role')})"))
    return rows


def breakable(text: str) -> Markup:
    """``text`` escaped, with a line-break opportunity (``<wbr>``) after each path separator, ``_`` and
    ``-``, and before each dot: a long file name wraps between its parts, never inside a word.

    Parameters
    ----------
    text : str

    Returns
    -------
    markupsafe.Markup
        Safe HTML; its text content is ``text`` unchanged.
    """
    parts = []
    for piece in _BREAK_AFTER.split(str(text)):
        if _BREAK_AFTER.fullmatch(piece):
            parts.append(str(escape(piece)) + "<wbr>")
        else:
            parts.append("<wbr>".join(_long_run_breaks(p) for p in _BREAK_BEFORE.split(piece)))
    joined = "".join(parts)
    return Markup(joined[:-5] if joined.endswith("<wbr>") else joined)


def _long_run_breaks(run: str) -> str:
    """``run`` escaped; a run longer than :data:`LONG_RUN` characters (a hash in a name) may break every
    :data:`LONG_RUN` characters, so that it cannot widen a table column past its card."""
    if len(run) <= LONG_RUN:
        return str(escape(run))
    return "<wbr>".join(str(escape(run[i:i + LONG_RUN])) for i in range(0, len(run), LONG_RUN))


def uncertain_band(result: ScanResult) -> tuple[float, float] | None:
    """The record's ``uncertain_band``: the ``p_fake`` interval whose verdict is ``uncertain``, as ``(low, high)``.

    ``None`` when the record has none (results written before the band existed) or it is malformed.
    """
    band = getattr(result, "uncertain_band", None)
    if not (isinstance(band, (list, tuple)) and len(band) == 2 and all(_is_number(b) for b in band)):
        return None
    low, high = float(band[0]), float(band[1])
    return (max(0.0, low), min(1.0, high)) if low <= high else None


def modality_reason(name: str, reason: str | None) -> str | None:
    """Why a modality has no score, in its own words.

    The video modality of the cue-fusion detector is lip-sync, which reads the lips against the
    voice: a silent video's lip-sync cue says ``"no audio stream"``, which under "video" would read
    as if the video were missing. It says what it lacks instead.
    """
    if name == "video" and reason and re.search(r"\b(audio|speech)\b", reason):
        if reason.strip() == "no audio stream":
            return "lip-sync needs an audio stream; this file has none"
        return f"lip-sync: {reason}"
    return reason


def scale_note(result: ScanResult, modalities: list[dict]) -> dict | None:
    """A line under the modality scores on how they relate to the verdict.

    Modality scores are not on the fused score's scale, so the threshold does not apply to them: a
    lip-sync fake can show audio 0.774 and video 0.700 above a 0.665 threshold and still be fused to
    0.444, ``real``. The line says so, and names the modalities that lie on the other side of the
    threshold from the verdict.

    Returns
    -------
    dict or None
        ``{"text": str, "against": [modality names]}``; None when no modality was scored.
    """
    scored = [m for m in modalities if m["present"] and _is_number(m["p_fake"])]
    if not scored or not _is_number(result.p_fake) or not _is_number(result.threshold):
        return None
    threshold, p_fake = float(result.threshold), float(result.p_fake)
    fused_fake = p_fake >= threshold
    against = [m["name"] for m in scored if (float(m["p_fake"]) >= threshold) != fused_fake]
    if (result.detector or {}).get("kind") == FUSION_KIND:
        scale, weighs = "each cue's own scale", "the cues"
    else:
        scale, weighs = "each modality head's own scale", "the modalities"
    how = f"the verdict is the fused p_fake, which weighs {weighs} as the detector learned on its training data"
    if not against:
        return {"text": f"Modality scores are on {scale}; {how}.", "against": []}
    names = ", ".join(against[:-1]) + " and " + against[-1] if len(against) > 1 else against[0]
    lead = (f"{names} {'scores' if len(against) == 1 else 'score'} {'below' if fused_fake else 'above'} "
            f"{threshold:.3f} on {scale}, but {how}: {p_fake:.3f}, {'above' if fused_fake else 'below'} "
            f"the threshold, which applies to it alone.")
    return {"text": lead, "against": against}


def _legend(results: Sequence[ScanResult]) -> list[tuple[str, str]]:
    """(verdict, what it means) for the legend beside the table; the uncertain band as the results state it."""
    meanings = dict(VERDICT_MEANINGS)
    sides = set()
    for r in results:
        band = uncertain_band(r) if r.status == STATUS_OK else None
        if band and _is_number(r.threshold):
            sides.add((round(float(r.threshold) - band[0], 3), round(band[1] - float(r.threshold), 3)))
    if len(sides) == 1:
        below, above = sides.pop()
        where = (f"within ±{below:.3f} of the threshold" if below == above
                 else f"from {below:.3f} below to {above:.3f} above the threshold")
        meanings["uncertain"] = f"{where}, too close to call either way (shaded on each file's meter)"
    elif sides:
        meanings["uncertain"] = f"{meanings['uncertain']} (shaded on each file's meter)"
    return list(meanings.items())


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _media_facts(media: dict, path: str | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs of the probe facts worth showing, in reading order."""
    facts = []
    if media.get("kind"):
        facts.append(("kind", str(media["kind"])))
    if media.get("container"):
        facts.append(("container", container_name(str(media["container"]), media.get("path") or path)))
    codecs = " / ".join(str(c) for c in (media.get("video_codec"), media.get("audio_codec")) if c)
    if codecs:
        facts.append(("codecs", codecs))
    if media.get("duration_s"):
        facts.append(("duration", _seconds(media["duration_s"])))
    if media.get("width") and media.get("height"):
        facts.append(("size", f"{media['width']}×{media['height']}"))
    if media.get("fps"):
        facts.append(("fps", f"{media['fps']:.2f}"))
    if media.get("has_audio"):
        rate, channels = media.get("audio_sample_rate"), media.get("audio_channels")
        facts.append(("audio", f"{rate} Hz × {channels} ch" if rate else "yes"))
    elif media.get("kind") in ("video", "audio"):
        facts.append(("audio", "none"))
    if media.get("rotation"):
        facts.append(("rotation", f"{media['rotation']}°"))
    if media.get("size_bytes") is not None:
        facts.append(("file size", _size(media["size_bytes"])))
    return facts


def _detectors(results: Sequence[ScanResult]) -> list[dict]:
    """The distinct detectors behind the results (by sha256, then name), in first-seen order, as shown."""
    seen = {}
    for result in results:
        detector = result.detector or {}
        if not detector:
            continue
        key = detector.get("sha256") or detector.get("name")
        seen.setdefault(key, detector)
    return [{**d, "provenance": provenance_view(d)} for d in seen.values()]


PROVENANCE_METRICS = ("auc", "eer", "ap", "accuracy", "ece")  # the columns of the metrics table, in order
_GROUPING_KEYS = {"per_kind", "kinds", "metrics", "per_method", "methods", "counts"}  # left out of row labels
_MAX_DEPTH = 4


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def provenance_view(detector: dict) -> dict:
    """A detector's provenance as short tables instead of nested dictionaries.

    Whatever the checkpoint records (a trained cross-modal detector's data description and
    validation / test metrics, the cue-fusion detector's counts per media kind and out-of-fold
    metrics), the report shows:

    - ``counts``: rows ``(label, real, fake)`` from every mapping whose only counts are ``real`` and
      ``fake`` files (``{"audio": {"real": 212, "fake": 388}}``), from ``data["counts"]`` alone when
      the checkpoint records it (``{"counts": {"train": {"real": ...}}}``: per-kind and per-window
      tallies beside it would repeat the same files, and a tally of kinds such as
      ``{"real": 12, "av_offset": 3}`` is not a class count);
    - ``metrics``: rows ``(label, n, {metric: value})`` from every mapping that holds one of
      :data:`PROVENANCE_METRICS`, labelled by where it sits (``val``, ``test · audio``), values
      rounded to 3 digits in the template;
    - ``real_media``: the same rows for metrics measured on real media, when recorded;
    - ``notes``: short texts (method, limits, licences).

    Parameters
    ----------
    detector : dict
        A result's ``detector`` block (:func:`deepscan.aggregate.describe_detector`, or the cue-fusion
        detector's ``describe()``).

    Returns
    -------
    dict
        ``{"counts", "metrics", "real_media", "tables", "notes"}``; ``tables`` are the metric tables to
        show (``{"title", "rows", "n": bool, "metrics": [names with a value]}``); empty lists where
        nothing was recorded.
    """
    counts: list = []
    data = detector.get("data")
    if isinstance(data, dict) and isinstance(data.get("counts"), dict):
        data = {"counts": data["counts"]}  # the split counts; per-kind and per-window tallies repeat them
    _collect_counts(data, [], counts, 0)
    metrics = _metric_rows(detector.get("metrics"))
    real_media = _metric_rows(detector.get("real_media"))
    tables = [{"title": title, "rows": rows, "n": any(row["n"] is not None for row in rows),
               "metrics": [m for m in PROVENANCE_METRICS if any(m in row["values"] for row in rows)]}
              for title, rows in (("held out from its training data", metrics),
                                  ("measured on real media", real_media)) if rows]
    notes = []
    for key, title in (("method", "method"), ("limits", "limits"), ("licences", "licences")):
        value = detector.get(key)
        if isinstance(value, str) and value:
            notes.append((title, value))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            notes.append((title, "; ".join(value)))
    return {"counts": counts, "metrics": metrics, "real_media": real_media, "tables": tables, "notes": notes}


def _label(path: list) -> str:
    return " · ".join(str(p) for p in path if str(p) not in _GROUPING_KEYS) or "all"


def _collect_counts(value, path: list, rows: list, depth: int) -> None:
    if not isinstance(value, dict) or depth > _MAX_DEPTH:
        return
    real, fake = value.get("real"), value.get("fake")
    tallies = {key for key, item in value.items() if _is_count(item)}
    if (_is_count(real) or _is_count(fake)) and tallies <= {"real", "fake"}:
        rows.append({"label": _label(path), "real": real if _is_count(real) else None,
                     "fake": fake if _is_count(fake) else None})
        return
    for key, item in value.items():
        _collect_counts(item, path + [key], rows, depth + 1)


def _metric_rows(value) -> list:
    rows: list = []

    def walk(item, path: list, depth: int) -> None:
        if not isinstance(item, dict) or depth > _MAX_DEPTH:
            return
        found = {m: float(item[m]) for m in PROVENANCE_METRICS
                 if isinstance(item.get(m), (int, float)) and not isinstance(item.get(m), bool)}
        if found:
            n = item.get("n")
            if not _is_count(n) and _is_count(item.get("n_real")) and _is_count(item.get("n_fake")):
                n = item["n_real"] + item["n_fake"]
            label = _label(path)
            if isinstance(item.get("cue_set"), str):  # a cue-fusion kind: which cues it fuses
                label = f"{label} ({item['cue_set']})" if label else item["cue_set"]
            rows.append({"label": label, "n": n if _is_count(n) else None, "values": found,
                         "interval": ((item.get("auc_lo"), item.get("auc_hi"))
                                      if isinstance(item.get("auc_lo"), float) and isinstance(item.get("auc_hi"), float)
                                      else None)})
        for key, sub in item.items():
            if isinstance(sub, dict) and key not in ("confusion", "candidates"):  # the alternatives it was chosen among
                walk(sub, path + [key], depth + 1)

    walk(value, [], 0)
    return rows


def _window_dict(window) -> dict:
    return window if isinstance(window, dict) else window.__dict__


def _pool(starts: list[float], ends: list[float], series: dict, limit: int):
    """Max-pool windows into at most ``limit`` bins.

    Parameters
    ----------
    starts, ends : list of float
        Window bounds, seconds, in time order.
    series : dict of str to list of (float or None)
        Values aligned with the windows; None where a modality is absent.
    limit : int
        Most bins to keep.

    Returns
    -------
    tuple
        ``(starts, ends, series)`` of the bins: first start, last end, and the largest value.
    """
    n = len(starts)
    if n <= limit:
        return starts, ends, series
    bounds = [round(i * n / limit) for i in range(limit + 1)]
    pairs = list(zip(bounds, bounds[1:]))
    pooled = {}
    for name, values in series.items():
        bins = []
        for a, b in pairs:
            present = [v for v in values[a:b] if v is not None]
            bins.append(max(present) if present else None)
        pooled[name] = bins
    return [starts[a] for a, _ in pairs], [ends[b - 1] for _, b in pairs], pooled


def _inline_svg(text: str, prefix: str) -> str:
    """Matplotlib's SVG document reduced to the ``<svg>`` element (no prolog, DTD or metadata).

    Every ``id`` and reference to it gets ``prefix``: matplotlib numbers its groups ``figure_1``,
    ``line2d_1``, ... in every figure, and ids must be unique in the one HTML page.
    """
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = re.sub(r'url\(#([^)]+)\)', lambda m: f"url(#{prefix}{m.group(1)})", text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', text)
    return text.replace("<svg ", '<svg role="img" aria-label="p_fake per window over time" ', 1).strip()


def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _signed(value, digits: int = 3) -> str:
    """A margin with its sign: ``+0.012``, ``-0.221``; ``–`` when absent."""
    if not _is_number(value):
        return "–"
    return f"{value:+.{digits}f}"


def _pct(value) -> str:
    """A probability as a CSS width percentage in [0, 100]."""
    if value is None:
        return "0"
    return f"{max(0.0, min(1.0, float(value))) * 100:.1f}"


def _seconds(value) -> str:
    if value is None:
        return "–"
    value = float(value)
    if value >= 3600:
        return f"{int(value // 3600)} h {int(value % 3600 // 60):02d} min"
    if value >= 60:
        return f"{int(value // 60)} min {value % 60:04.1f} s"
    return f"{value:.2f} s"


def _size(value) -> str:
    if value is None:
        return "–"
    value = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
