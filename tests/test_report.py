"""HTML report: escaping, counts, self-containment, long files, the CLI, and a real headless browser."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepscan.results import ScanResult, WindowScore, summarize
from deepscan.writers import JsonLinesWriter, write_json
from deepscan.writers.html import MAX_PLOT_POINTS, _pool, render_html, timeline_svg, write_html

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

NASTY = "clips/<script>alert('x')</script> & \"q\" 名前_é.mp4"
DETECTOR = {"name": "demo", "sha256": "cd" * 32, "trained_on": "synthetic", "synthetic": True,
            "label": "DEMO detector trained on synthetic data: verdicts are a demonstration",
            "data": None, "metrics": None}


def _jpeg(seed: int) -> str:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=70)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _ok(path: str, p_windows: list[float], kind: str = "video", audio: bool = True, threshold: float = 0.5,
        window_s: float = 4.0, verdict: str | None = None, reason: str | None = None) -> ScanResult:
    """A scanned file whose window scores are ``p_windows`` (image/video = p ± 0.05, audio = p)."""
    image = kind in ("video", "image")
    windows = []
    for i, p in enumerate(p_windows):
        start, end = (0.0, 0.0) if kind == "image" else (i * window_s, (i + 1) * window_s)
        windows.append(WindowScore(
            index=i, start_s=start, end_s=end, p_fake=p, logit=float(np.log(p / (1 - p))),
            modalities={"image": min(1.0, p + 0.05) if image else None, "audio": p if audio else None,
                        "video": max(0.0, p - 0.05) if kind == "video" else None},
            frames=32 if image else 0, frames_with_face=30 if image else 0))
    p_file = float(np.mean(p_windows))
    modalities = {
        "image": {"present": image, "p_fake": min(1.0, p_file + 0.05) if image else None,
                  "reason": None if image else "no video stream"},
        "audio": {"present": audio, "p_fake": p_file if audio else None, "reason": None if audio else "no audio stream"},
        "video": {"present": kind == "video", "p_fake": max(0.0, p_file - 0.05) if kind == "video" else None,
                  "reason": None if kind == "video" else "single frame: no motion"},
    }
    duration = 0.0 if kind == "image" else len(p_windows) * window_s
    top = max((m for m in modalities if modalities[m]["present"]), key=lambda m: modalities[m]["p_fake"])
    ranked = sorted(windows, key=lambda w: -w.p_fake)[:3] if image else []
    return ScanResult(
        path=path, status="ok", reason=reason, verdict=verdict or ("fake" if p_file >= threshold else "real"),
        p_fake=p_file, threshold=threshold, modalities=modalities, top_modality=top, windows=windows,
        media={"path": path, "kind": kind, "container": "mp4" if kind == "video" else kind, "video_codec": "h264",
               "audio_codec": "aac" if audio else None, "duration_s": duration, "width": 640, "height": 360,
               "fps": 25.0, "has_audio": audio, "audio_sample_rate": 16000 if audio else None,
               "audio_channels": 1 if audio else None, "rotation": 0, "size_bytes": 123456},
        faces={"frames": 32 * len(windows) if image else 0, "frames_with_face": 30 * len(windows) if image else 0,
               "max_faces": 1, "no_face": False},
        detector=dict(DETECTOR), elapsed_s=1.5,
        thumbnails=[{"window": w.index, "start_s": w.start_s, "end_s": w.end_s, "p_fake": w.p_fake,
                     "jpeg_base64": _jpeg(w.index)} for w in ranked])


def _results() -> list[ScanResult]:
    return [
        _ok("clips/real_talk.mp4", [0.1, 0.2, 0.15, 0.3]),
        _ok("clips/fake_swap.mp4", [0.7, 0.9, 0.95], audio=False),
        _ok(NASTY, [0.6, 0.4]),
        _ok("clips/face.png", [0.35], kind="image", audio=False),
        _ok("clips/voice.wav", [0.55, 0.8, 0.6, 0.7, 0.9], kind="audio"),
        _ok("clips/noface.mp4", [0.5, 0.5], verdict="unknown", reason="no face"),
        ScanResult.error("clips/broken.mp4", "truncated or corrupt", "moov atom not found: the file was cut short",
                         detector=dict(DETECTOR)),
    ]


def test_counts_cards_and_plots():
    results = _results()
    html = render_html(results, title="my scan")
    assert html.startswith("<!doctype html>")
    assert html.count('<article class="card') == len(results)
    counts = summarize(results)
    for key, value in counts.items():
        assert f'data-count="{key}">{value}<' in html
    ok = [r for r in results if r.status == "ok"]
    assert html.count("<svg") == len(ok)
    assert html.count("<tr data-card=") == len(results)
    assert html.count('src="data:image/jpeg;base64,') == sum(len(r.thumbnails) for r in results)
    assert "<title>my scan</title>" in html


def test_escapes_file_names_and_keeps_non_ascii():
    html = render_html(_results())
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;q&#34; 名前_é.mp4" in html
    assert html.count("<script>") == 1  # only the report's own sort/filter script


def test_lone_surrogates_in_paths_render_as_escapes():
    html = render_html([_ok("clips/bad\udcffname.mp4", [0.2])])
    html.encode("utf-8")
    assert "bad\\udcffname.mp4" in html


def test_self_contained_no_external_resources():
    html = render_html(_results())
    assert not re.search(r"""(?:src|href|xlink:href)\s*=\s*["']?(?:https?:)?//""", html)
    assert "@import" not in html and "url(http" not in html and "<link" not in html
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html


def test_detector_label_and_error_reason_are_shown():
    results = _results()
    html = render_html(results)
    assert html.count(DETECTOR["label"]) >= 1
    assert re.search(r'<section class="banner warn">\s*<div class="label">DEMO detector', html)
    assert html.count('class="banner') == 1  # one detector behind every result
    assert "could not be scanned: truncated or corrupt" in html
    assert "moov atom not found" in html
    assert "no audio stream" in html  # an absent modality says why


def test_long_file_plot_stays_small_and_keeps_the_peak():
    p = [0.1] * 600
    p[437] = 0.99
    long = _ok("long.mp4", p)
    svg = timeline_svg(long)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert len(svg) < 60_000
    starts = [w.start_s for w in long.windows]
    ends = [w.end_s for w in long.windows]
    bin_starts, bin_ends, pooled = _pool(starts, ends, {"fused": p}, MAX_PLOT_POINTS)
    assert len(bin_starts) == MAX_PLOT_POINTS
    assert max(pooled["fused"]) == 0.99 and min(pooled["fused"]) == 0.1
    assert bin_starts[0] == 0.0 and bin_ends[-1] == ends[-1]
    assert all(a < b for a, b in zip(bin_starts, bin_starts[1:]))


def test_svg_ids_do_not_collide_between_plots():
    html = render_html([_ok("a.mp4", [0.2, 0.3]), _ok("b.mp4", [0.2, 0.3])])
    ids = re.findall(r'<(?:clipPath|path|g)[^>]* id="([^"]+)"', html)
    assert ids and len(ids) == len(set(ids))


def test_render_refuses_other_objects():
    with pytest.raises(TypeError, match="ScanResult"):
        render_html([{"path": "x", "status": "ok"}])


def test_write_html_creates_parents(tmp_path):
    path = write_html(_results(), tmp_path / "deep" / "er" / "report.html")
    text = path.read_text(encoding="utf-8")
    assert text.count('<article class="card') == len(_results())


def test_cli_report_from_jsonl_and_json(tmp_path):
    from typer.testing import CliRunner

    from deepscan.cli import app

    results = _results()
    jsonl = tmp_path / "results.jsonl"
    with open(jsonl, "w", encoding="utf-8") as stream:
        writer = JsonLinesWriter(stream)
        for r in results:
            writer.write(r)
    array = tmp_path / "results.json"
    with open(array, "w", encoding="utf-8") as stream:
        write_json(results[:2], stream)
    out = tmp_path / "out" / "report.html"
    run = CliRunner().invoke(app, ["report", str(jsonl), str(array), "-o", str(out), "--title", "CI run"])
    assert run.exit_code == 0, run.output
    html = out.read_text(encoding="utf-8")
    assert html.count('<article class="card') == len(results) + 2
    assert "<title>CI run</title>" in html

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n" + json.dumps(results[0].to_dict()) + "\n", encoding="utf-8")
    run = CliRunner().invoke(app, ["report", str(bad), "-o", str(tmp_path / "x.html")])
    assert run.exit_code == 2
    assert not (tmp_path / "x.html").exists()


FUSION = {"name": "default", "sha256": "ef" * 32, "trained_on": "harvest", "synthetic": False, "label": None,
          "kind": "cue-fusion", "data": {"audio": {"real": 212, "fake": 388}, "video": {"real": 60, "fake": 95}},
          "metrics": {"audio": {"auc": 0.912345, "eer": 0.1876, "ap": 0.9, "ece": 0.04567, "n_real": 212, "n_fake": 388},
                      "video": {"auc": 0.79, "eer": 0.3, "ap": 0.7, "ece": 0.081, "n_real": 60, "n_fake": 95}},
          "real_media": {"audio": {"auc": 0.8561, "auc_lo": 0.7123, "auc_hi": 0.9512}},
          "limits": ["no expert for diffusion images without a face"]}
TRAINED = {"name": "mine", "sha256": "ab" * 32, "trained_on": "clips", "synthetic": False, "label": None,
           "data": {"root": "/data/clips", "name": "clips", "layout": "folder", "files": 40,
                    "counts": {"train": {"real": 14, "fake": 14}, "test": {"real": 6, "fake": 6}},
                    "kinds": {"train": {"real": 14, "lipsync": 14}},
                    "samples": {"train": {"real": 14, "fake": 14, "files": {"real": 14}}}},
           "metrics": {"val": {"auc": 0.8765, "eer": 0.21, "accuracy": 0.8, "confusion": {"tn": 3}, "n_real": 5,
                               "n_fake": 5},
                       "test": {"auc": 0.7, "per_kind": {"lipsync": {"auc": 0.654321, "n_real": 6, "n_fake": 3}}}}}


def _with_cues(result: ScanResult) -> ScanResult:
    """The result with an AASIST and a lip-sync cue per window, and a cue that never applies."""
    for i, w in enumerate(result.windows):
        w.cues = {"aasist": {"p_fake": 0.2 + 0.1 * i}, "av_sync": {"p_fake": 0.6},
                  "face_forgery": {"p_fake": None, "reason": "weights not shipped in this installation"}}
    result.cues = {"aasist": {"p_fake": 0.25, "trained_on": "ASVspoof 2019 LA", "weights_sha256": "51" * 32},
                   "av_sync": {"p_fake": 0.6, "lag_ms": -130.0, "correlation": 0.24},
                   "face_forgery": {"p_fake": None, "reason": "weights not shipped in this installation"}}
    return result


def test_provenance_is_a_short_table_rounded_to_three_digits():
    results = [_ok("a.mp4", [0.2, 0.3]), _ok("b.mp4", [0.6, 0.7])]
    results[0].detector, results[1].detector = dict(FUSION), dict(TRAINED)
    html = render_html(results)
    assert html.count('<section class="banner') == 2
    assert "{&#39;" not in html and "{'" not in html  # no dictionary dumped as text
    assert "<caption>training files</caption>" in html
    assert re.search(r"<td>audio</td><td class=\"num\">212</td><td class=\"num\">388</td><td class=\"num\">600</td>", html)
    assert re.search(r"<td>train</td><td class=\"num\">14</td><td class=\"num\">14</td>", html)  # per split
    assert html.count("<td>train</td>") == 1 and "samples · train" not in html  # once: no tally of kinds or windows
    assert ">0.912<" in html and "0.912345" not in html and ">0.046<" in html
    assert "<td>test · lipsync</td><td class=\"num\">9</td><td class=\"num\">0.654</td>" in html
    assert "measured on real media" in html and "0.856 <span class=\"ci\">[0.71, 0.95]</span>" in html
    assert "no expert for diffusion images without a face" in html
    assert "confusion" not in html and "detector provenance" not in html  # once, in the banner


def test_paths_relative_to_the_scanned_folder():
    results = [_ok("/data/scans/2024/a.mp4", [0.2]), _ok("/data/scans/b.mp4", [0.3]),
               ScanResult.error("/data/scans/2024/c.mp4", "truncated or corrupt")]
    html = render_html(results)
    assert 'files in <code class="root">/data/scans</code>' in html
    assert '<a href="#file-0">2024/a.mp4</a>' in html and '<a href="#file-1">b.mp4</a>' in html
    assert 'title="/data/scans/2024/c.mp4">2024/c.mp4<' in html  # the full path is the tooltip
    assert render_html(results, root="/data").count('<a href="#file-0">scans/2024/a.mp4</a>') == 1


def test_cue_timeline_beside_the_fused_one_except_for_stills():
    video = _with_cues(_ok("clip.mp4", [0.1, 0.5, 0.9]))
    still = _with_cues(_ok("face.png", [0.35], kind="image", audio=False))
    html = render_html([video, still])
    assert html.count('aria-label="cue timelines"') == 1  # a still's cues are its numbers
    assert "weights not shipped in this installation:</span> face_forgery" in html
    assert "lag -130 ms, r 0.24" in html and "ASVspoof 2019 LA" in html


# --- the report in a real browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no headless browser: {CHROMIUM} is absent (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as playwright:
        try:
            instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as error:  # a browser that will not start is an environment problem, not a bug here
            pytest.skip(f"{CHROMIUM} could not be launched by playwright: {error}")
        yield instance
        instance.close()


def test_report_renders_in_headless_chromium(browser, tmp_path):
    results = _results()
    path = write_html(results, tmp_path / "report.html")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copy(shot, ARTIFACTS / "report_browser.png")
    assert shot.stat().st_size > 10_000

    cards = page.locator("article.card")
    assert cards.count() == len(results)
    for i, r in enumerate(results):
        card = cards.nth(i)
        assert card.get_attribute("data-verdict") == (r.verdict if r.status == "ok" else "error")
        if r.status != "ok":
            assert card.locator("svg").count() == 0
            continue
        box = card.locator(".plot svg").bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 50, r.path
        assert card.locator(".plot svg path").count() > 3  # axes, ticks and the lines were drawn
        for img in card.locator(".thumbs img").all():
            assert img.evaluate("el => el.complete && el.naturalWidth") == 112
    assert page.locator("h3", has_text="名前_é.mp4").count() == 1
    assert page.locator("script").count() == 1

    rows = page.locator("#results tbody tr")

    def p_column():
        return [float(v) if v != "–" else -1.0
                for v in rows.evaluate_all("rs => rs.map(r => r.cells[2].textContent.trim())")]

    header = page.locator("#results th", has_text="p_fake")
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    ascending = p_column()
    assert ascending == sorted(ascending) and len(ascending) == len(results)
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    assert p_column() == sorted(ascending, reverse=True)
    page.locator("#results th", has_text="file").click()
    names = rows.evaluate_all("rs => rs.map(r => r.cells[0].textContent.trim())")
    plain = [n for n in names if re.fullmatch(r"[a-z0-9_/.]+", n)]
    assert plain == sorted(plain) and len(plain) == len(results) - 1

    page.locator("#filter").fill("fake")
    visible = page.locator("#results tbody tr:visible")
    expected = sum("fake" in r.path or r.verdict == "fake" for r in results)
    assert visible.count() == expected
    assert page.locator("article.card:visible").count() == expected
    assert page.locator("#shown").inner_text() == f"{expected} of {len(results)} files shown"
    page.locator("#filter").fill("名前")
    assert visible.count() == 1
    page.locator("#filter").fill("")
    assert visible.count() == len(results)
    page.close()
    assert problems == []


def test_report_reads_like_a_report_in_headless_chromium(browser, tmp_path):
    """Provenance as tables, names from the scanned folder, cue timelines under the fused one, on the same axis."""
    folder = tmp_path / "scans"
    results = [_with_cues(_ok(str(folder / "interviews" / "clip.mp4"), [0.1, 0.5, 0.9, 0.4])),
               _with_cues(_ok(str(folder / "voice.wav"), [0.7, 0.8], kind="audio")),
               _with_cues(_ok(str(folder / "face.png"), [0.35], kind="image", audio=False))]
    for r in results:
        r.detector = dict(FUSION)
    path = write_html(results, tmp_path / "report.html")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report_cues.png"), full_page=True)

    assert page.evaluate("document.documentElement.scrollWidth") <= 1200  # nothing overflows sideways
    banner = page.locator("section.banner").bounding_box()
    tables = page.locator("section.banner table.prov-table")
    assert tables.count() == 3  # training files, held-out metrics, real media
    for i in range(tables.count()):
        box = tables.nth(i).bounding_box()
        assert box["x"] >= banner["x"] and box["x"] + box["width"] <= banner["x"] + banner["width"]
    assert page.locator("section.banner td", has_text="0.912").count() == 1
    assert page.locator(".sub code.root").inner_text() == str(folder)
    assert page.locator("#results td.path").first.inner_text() == "interviews/clip.mp4"

    for i, r in enumerate(results):
        card = page.locator("article.card").nth(i)
        plots = card.locator(".plot svg")
        if r.media["kind"] == "image":
            assert plots.count() == 1
            continue
        assert plots.count() == 2
        fused, cues = plots.nth(0).bounding_box(), plots.nth(1).bounding_box()
        assert abs(fused["x"] - cues["x"]) < 1 and abs(fused["width"] - cues["width"]) < 1  # one time axis
        assert 0 <= cues["y"] - (fused["y"] + fused["height"]) < 60  # right under it
        assert card.locator("table.cues th").all_inner_texts() == ["aasist", "av_sync"]
        bars = [b["x"] for b in (card.locator("table.cues td.bar").nth(j).bounding_box() for j in range(2))]
        assert abs(bars[0] - bars[1]) < 1  # the cue bars start at one x
    page.close()
    assert problems == []
