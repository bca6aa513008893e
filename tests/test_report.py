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
    html = render_html(results).replace("<wbr>", "")  # the break opportunities in names
    assert 'files in <code class="root" title="/data/scans">/data/scans</code>' in html
    assert '<a href="#file-0">2024/a.mp4</a>' in html and '<a href="#file-1">b.mp4</a>' in html
    assert 'title="/data/scans/2024/c.mp4">2024/c.mp4<' in html  # the full path is the tooltip
    assert render_html(results, root="/data").replace("<wbr>", "").count('<a href="#file-0">scans/2024/a.mp4</a>') == 1


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


# --- issue 21: a report that renders right -------------------------------------------------------


def _fusion(path: str, p_fake: float, threshold: float, modalities: dict, cues: dict, verdict: str,
            container: str = "mov,mp4,m4a,3gp,3g2,mj2", has_audio: bool = True) -> ScanResult:
    """A result of the cue-fusion detector as a scan writes it: one window, modalities from the cues."""
    window = WindowScore(index=0, start_s=0.0, end_s=4.0, p_fake=p_fake, logit=float(np.log(p_fake / (1 - p_fake))),
                         modalities={m: (v or {}).get("p_fake") for m, v in modalities.items()}, frames=32,
                         frames_with_face=32, cues=cues)
    return ScanResult(
        path=path, status="ok", verdict=verdict, p_fake=p_fake, threshold=threshold, modalities=modalities,
        top_modality=max((m for m, v in modalities.items() if v.get("p_fake") is not None),
                         key=lambda m: modalities[m]["p_fake"], default=None),
        windows=[window], cues=cues, detector=dict(FUSION),
        media={"path": path, "kind": "video", "container": container, "video_codec": "h264",
               "audio_codec": "aac" if has_audio else None, "duration_s": 4.0, "width": 640, "height": 360,
               "fps": 25.0, "has_audio": has_audio, "size_bytes": 654321},
        faces={"frames": 32, "frames_with_face": 32, "max_faces": 1, "no_face": False}, elapsed_s=0.8)


def _silent_faceswap() -> ScanResult:
    """The silent face swap of the issue: 0.664 against 0.665, every audio cue absent."""
    absent = {"p_fake": None, "reason": "no audio stream", "windows": 0}
    cues = {"face_forgery": {"p_fake": 0.58, "weights_sha256": "14fa159f4b68" + "0" * 52, "trained_on": "harvest"},
            "aasist": dict(absent), "av_sync": dict(absent), "synthetic_speech": dict(absent)}
    modalities = {"image": {"present": True, "p_fake": 0.58, "reason": None},
                  "audio": {"present": False, "p_fake": None, "reason": "no audio stream"},
                  "video": {"present": False, "p_fake": None, "reason": "no audio stream"}}
    return _fusion("/scans/batch_2024/fake_faceswap_film_noaudio.mp4", 0.664, 0.665, modalities, cues,
                   "real", has_audio=False)


def _lipsync() -> ScanResult:
    """The lip-sync fake of the issue: audio 0.774 and video 0.700 above 0.665, fused to 0.444, real."""
    cues = {"aasist": {"p_fake": 0.774}, "av_sync": {"p_fake": 0.700, "lag_ms": -80.0, "correlation": 0.57},
            "face_forgery": {"p_fake": 0.12}}
    modalities = {"image": {"present": True, "p_fake": 0.12, "reason": None},
                  "audio": {"present": True, "p_fake": 0.774, "reason": None},
                  "video": {"present": True, "p_fake": 0.700, "reason": None}}
    return _fusion("/scans/batch_2024/fake_wav2lip_presenter_take03.mp4", 0.444, 0.665, modalities, cues, "real")


def _uncertain() -> ScanResult:
    """A result the uncertain band caught (its band as the records carry it; its margin is p_fake - threshold)."""
    result = _silent_faceswap()
    result.verdict = "uncertain"
    result.uncertain_band = [0.615, 0.715]
    return result


def _card(html: str, fragment: str) -> str:
    """The HTML of the card whose name holds ``fragment``."""
    cards = re.findall(r'<article class="card.*?</article>', html, flags=re.S)
    found = [c for c in cards if fragment in c.replace("<wbr>", "")]
    assert len(found) == 1, fragment
    return found[0]


def test_a_silent_videos_video_modality_says_its_own_reason():
    card = _card(render_html([_silent_faceswap()]), "fake_faceswap_film_noaudio")
    rows = dict(re.findall(r'<div class="row" title="(\w+): ([^"]*)">', card))
    assert rows["audio"] == "no audio stream"
    assert rows["video"] != "no audio stream" and "lip-sync" in rows["video"]


def test_container_reads_as_the_name_people_know():
    from deepscan.media import container_name

    html = render_html([_silent_faceswap()])
    assert "<dt>container</dt><dd>MP4</dd>" in html and "mov,mp4,m4a" not in html
    cases = {("mov,mp4,m4a,3gp,3g2,mj2", "a.mp4"): "MP4", ("mov,mp4,m4a,3gp,3g2,mj2", "b.MOV"): "MOV",
             ("mov,mp4,m4a,3gp,3g2,mj2", "c.m4a"): "M4A", ("matroska,webm", "d.webm"): "WebM",
             ("matroska,webm", "e.mkv"): "Matroska", ("avi", "f.avi"): "AVI", ("gif", "g.webp"): "GIF",
             ("wav", "h.wav"): "WAV", ("mp3", "i.mp3"): "MP3", ("flac", None): "FLAC", ("ogg", "j.ogg"): "Ogg",
             ("png", "k.png"): "PNG", ("jpeg", "l.jpg"): "JPEG", ("webp", "m.webp"): "WebP",
             ("png_pipe", "n.png"): "PNG", ("image2", "o.jpg"): "JPEG", ("something,new", "p.x"): "something,new",
             (None, "q.mp4"): None}
    assert {key: container_name(*key) for key in cases} == cases


def test_modality_scores_above_the_threshold_under_a_real_verdict_are_explained():
    card = _card(render_html([_lipsync(), _results()[0]]), "fake_wav2lip_presenter_take03")
    note = re.search(r'<p class="scale-note against">(.*?)</p>', card, flags=re.S)
    assert note, card
    text = note.group(1)
    assert "audio and video" in text and "0.665" in text and "0.444" in text
    assert "fused" in text and "training data" in text
    plain = _card(render_html([_results()[0]]), "real_talk.mp4")
    assert 'class="scale-note"' in plain and "scale-note against" not in plain  # said quietly where all agree


def test_uncertain_is_amber_with_its_margin_and_real_is_said_in_words():
    results = [_uncertain(), _lipsync(), _results()[1], ScanResult.error("/scans/x.mp4", "truncated or corrupt")]
    html = render_html(results)
    assert 'data-count="uncertain">1<' in html and '<div class="tile uncertain">' in html
    assert "--uncertain: #d97706" in html and ".badge.uncertain { background: var(--uncertain); }" in html
    card = _card(html, "fake_faceswap_film_noaudio")
    assert card.startswith('<article class="card uncertain"')
    assert '<span class="badge uncertain">uncertain</span>' in card
    assert '<span class="margin">-0.001</span>' in card and 'class="band"' in card  # the band on the meter
    rows = re.findall(r"<tr data-card=.*?</tr>", html, flags=re.S)
    margins = [re.search(r'<td class="num margin"[^>]*>([^<]*)</td>', row).group(1) for row in rows]
    assert margins == ["-0.001", "-0.221", "+0.350", "–"]
    legend = re.search(r'<ul class="legend".*?</ul>', html, flags=re.S).group(0)
    assert "real</span> no sign of manipulation found by these cues" in legend
    assert "within ±0.050 of the threshold" in legend
    assert "real: no sign of manipulation found by these cues" in _card(html, "fake_wav2lip")


def test_names_break_between_their_parts_and_hashes_stay_whole():
    result = _with_cues(_ok("/scans/batch_2024-06-01/fake_faceswap_film_noaudio.mp4", [0.2, 0.3]))
    html = render_html([result, _ok("/scans/other/b.mp4", [0.1])])
    assert "break-all" not in html  # no rule that breaks a name or a hash at any letter
    card = _card(html, "fake_faceswap_film_noaudio")
    assert "<h3 " in card and ">fake_<wbr>faceswap_<wbr>film_<wbr>noaudio<wbr>.mp4</h3>" in card
    assert ">batch_<wbr>2024-<wbr>06-<wbr>01/<wbr>fake_<wbr>faceswap_" in card
    sha = "51" * 32
    assert f'<code class="hash" title="sha256 {sha}">{sha[:12]}…</code>' in card  # cue weights: short, full on hover
    assert f'<code class="hash" title="sha256 {DETECTOR["sha256"]}">{DETECTOR["sha256"][:12]}…</code>' in html
    assert re.search(r"code\.hash \{[^}]*white-space: nowrap", html)


def _line_starts(page, selector: str) -> list[list[int]]:
    """For each element matching ``selector``: the offsets in its text where a new line starts."""
    return page.eval_on_selector_all(selector, """els => els.map(el => {
        const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
        const tops = []; let node;
        while ((node = walker.nextNode())) {
            for (let i = 0; i < node.length; i++) {
                const range = document.createRange(); range.setStart(node, i); range.setEnd(node, i + 1);
                const rect = range.getClientRects()[0];
                tops.push(rect ? Math.round(rect.top) : null);
            }
        }
        const starts = [];
        for (let i = 1; i < tops.length; i++) {
            if (tops[i] !== null && tops[i - 1] !== null && tops[i] > tops[i - 1] + 2) starts.push(i);
        }
        return starts;
    })""")


def test_report_fits_800_px_in_headless_chromium(browser, tmp_path):
    """At 800 px the table stays in its card, names wrap only between their parts, hashes stay on one line."""
    folder = "/data/incoming/batch_2024-06-01"
    results = [_uncertain(), _lipsync(),
               _with_cues(_ok(f"{folder}/real_talking_face_mp4v_aac16k_stereo.mp4", [0.1, 0.2])),
               _ok(f"{folder}/fake_vocoded_speech_22k_mono.wav", [0.6, 0.8], kind="audio"),
               _ok(f"{folder}/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855_swap_final.png",
                   [0.3], kind="image", audio=False),
               _ok(f"{folder}/noface_interview_recording.mp4", [0.5, 0.5], verdict="unknown",
                   reason="no cue applies: no face; no speech"),
               ScanResult.error(f"{folder}/broken_upload_truncated.mp4", "truncated or corrupt",
                                "moov atom not found: the file was cut short", detector=dict(DETECTOR))]
    path = write_html(results, tmp_path / "report.html")
    page = browser.new_page(viewport={"width": 800, "height": 1000})
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report_800px.png"), full_page=True)

    assert page.evaluate("document.documentElement.scrollWidth") <= 800  # nothing overflows the page
    box, table = page.locator(".tablebox").bounding_box(), page.locator("#results").bounding_box()
    assert table["x"] + table["width"] <= box["x"] + box["width"]  # the table fits in its card
    for card in page.locator("article.card").all():
        outer = card.bounding_box()
        for inner in card.locator("h3, .path, .plot svg, dl.facts").all():
            b = inner.bounding_box()
            assert b["x"] + b["width"] <= outer["x"] + outer["width"] + 0.5

    # a name wraps only after "/", "_", "-" or before ".", or inside a run of more than 16 characters (a hash)
    names = [n.replace("\u200b", "") for n in page.eval_on_selector_all(
        "#results td.path a, article.card h3, article.card header .path", "els => els.map(e => e.textContent)")]
    starts = _line_starts(page, "#results td.path a, article.card h3, article.card header .path")
    assert any(starts), "at 800 px some names should wrap"
    for name, offsets in zip(names, starts):
        for i in offsets:
            run = re.search(r"[^/_\-.]*$", name[:i]).group(0)
            assert name[i - 1] in "/_-" or name[i] == "." or len(run) >= 16, (name, name[:i])
    for hashes in _line_starts(page, "code.hash"):
        assert hashes == []  # every hash on one line
    assert page.locator("code.hash").count() >= 3
    uncertain = page.locator("#results .badge.uncertain")
    assert uncertain.count() == 1
    assert uncertain.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(217, 119, 6)"
    assert page.locator("#legend").is_visible()
    page.close()
    assert problems == []
