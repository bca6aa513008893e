"""Scanning on a Ray cluster: same results as the local scanner, each file once, faults and resume.

One local Ray cluster (``ray.init(num_cpus=2)`` on 127.0.0.1) serves the whole module, and one pool
of scoring actors most tests; debug encoders, experts off. Skips with its reason where Ray (the
``ray`` extra) cannot be installed or a cluster cannot start.
"""

from __future__ import annotations

import json
import os

import pytest

ray = pytest.importorskip(
    "ray", reason='Ray is not installed (pip install "deepscan[ray]"): scanning on a Ray cluster is not tested')
pytest.importorskip("pyarrow", reason='pyarrow is not installed (pip install "deepscan[ray]")')

from deepscan import synth  # noqa: E402
from deepscan.cli.ray_check import check_on_ray  # noqa: E402
from deepscan.distributed.ray import ACTOR_EXIT_ENV, RayScanner  # noqa: E402
from deepscan.distributed.storage import list_inputs, read_parquet, restore_uri, write_parquet  # noqa: E402
from deepscan.results import ScanResult  # noqa: E402
from deepscan.scanner import Scanner  # noqa: E402
from deepscan.writers import JsonLinesWriter  # noqa: E402
from tests.conftest import media_files  # noqa: E402
from tests.helpers import make_detector  # noqa: E402

OPTIONS = {"encoders": "debug", "precision": "fp32", "experts": "none", "cache": False}
# Two actors of half a CPU each: the module's pool and one other pool fit the 2-CPU cluster together,
# and the pool leaves a CPU to the decoding tasks of decode="tasks".
ACTOR_CPUS = 0.5
P_FAKE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster on 127.0.0.1 for this module; its GCS address.

    Ray starts its workers at nice 15; on a machine shared with other jobs (CI, developers) the
    actors then wait behind everything else, so the test cluster's workers run at nice 0.
    """
    os.environ["RAY_worker_niceness"] = "0"
    try:
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="warning")
    except Exception as error:  # a sandbox without the sockets or shared memory Ray needs
        pytest.skip(f"cannot start a local Ray cluster here: {type(error).__name__}: {error}")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return make_detector(tmp_path_factory.mktemp("det") / "demo.safetensors")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Generated clips, audio and an image, plus two files that must become error results."""
    root = tmp_path_factory.mktemp("media")
    synth.write_clip(root / "talk.mp4", duration_s=6.0, seed=1)
    synth.write_clip(root / "silent.mp4", duration_s=2.0, seed=2, audio=False)
    synth.write_audio(root / "voice.wav", duration_s=3.0, seed=3)
    synth.write_image(root / "face.png", seed=4)
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.mp4").write_text("not a video\n")
    return root


@pytest.fixture(scope="module")
def local(detector):
    return Scanner(detector=detector, workers=0, **OPTIONS)


@pytest.fixture(scope="module")
def pool(cluster, detector):
    scanner = RayScanner(detector=detector, actors=2, actor_cpus=ACTOR_CPUS, **OPTIONS)
    yield scanner
    scanner.close()


def assert_same(ray_results, local_results):
    """One Ray result per file, judged as the local scan judged it."""
    paths = [r.path for r in ray_results]
    assert len(paths) == len(set(paths)), "a file was reported twice"
    assert sorted(paths) == sorted(r.path for r in local_results)
    by_path = {r.path: r for r in ray_results}
    for expected in local_results:
        got = by_path[expected.path]
        assert (got.status, got.reason, got.verdict) == (expected.status, expected.reason, expected.verdict), got.path
        assert got.detector == expected.detector
        assert got.media == expected.media
        if expected.p_fake is None:
            assert got.p_fake is None
            continue
        assert abs(got.p_fake - expected.p_fake) <= P_FAKE_TOLERANCE, got.path
        assert [(w.start_s, w.end_s) for w in got.windows] == [(w.start_s, w.end_s) for w in expected.windows]
        for g, e in zip(got.windows, expected.windows):
            assert abs(g.p_fake - e.p_fake) <= P_FAKE_TOLERANCE
        assert set(got.to_dict()) == set(expected.to_dict())  # the same record schema


@pytest.mark.parametrize("decode", ["actor", "tasks", "tasks-long"])
def test_ray_scan_equals_local_scan_on_generated_media(pool, local, media, decode, monkeypatch):
    if decode == "tasks-long":  # talk.mp4 (2 windows) is then too long to ship decoded: its actor decodes it
        monkeypatch.setattr(pool, "split_max_windows", 1)
    expected = list(local.scan(media))
    got = list(pool.scan(media, decode=decode.split("-")[0]))
    assert_same(got, expected)
    by_name = {os.path.basename(r.path): r for r in got}
    assert by_name["empty.mp4"].reason == "empty file" and by_name["notes.mp4"].reason == "not a media file"
    assert by_name["talk.mp4"].status == "ok" and len(by_name["talk.mp4"].windows) == 2
    assert "DEMO" in by_name["talk.mp4"].detector["label"]


def test_ray_scan_equals_local_scan_on_shared_samples(pool, local, samples_dir):
    files = media_files(samples_dir)
    assert_same(list(pool.scan(files)), list(local.scan(files)))


def test_uris_in_and_parquet_out(pool, local, media, tmp_path):
    uri = f"file://{media}"
    assert restore_uri(str(media)) == str(media)
    assert restore_uri("file:" + str(media)) == uri  # what pathlib makes of file://... is undone
    assert restore_uri("s3:/bucket/key.mp4") == "s3://bucket/key.mp4"
    got = list(pool.scan(uri))
    assert sorted(r.path for r in got) == sorted(f"{uri}/{p.name}" for p in media.iterdir())
    expected = {f"file://{r.path}": r for r in local.scan(media)}
    for r in got:
        assert (r.status, r.verdict, r.reason) == (expected[r.path].status, expected[r.path].verdict,
                                                   expected[r.path].reason)
        if r.status == "ok":
            assert r.media["path"] == r.path  # reported under the URI, not the node's temporary copy
    target = write_parquet(got, f"file://{tmp_path}/out/results.parquet")
    back = read_parquet(target)
    assert [b.to_dict() for b in back] == [r.to_dict() for r in got]


def test_an_actor_killed_mid_run_still_gives_one_result_per_file(cluster, detector, local, media, tmp_path,
                                                                   monkeypatch):
    marker = tmp_path / "talk-died"
    # talk.mp4 kills its actor once (Ray restarts it and retries the call); voice.wav kills it every time
    monkeypatch.setenv(ACTOR_EXIT_ENV, f"talk.mp4:{marker},voice.wav")
    with RayScanner(detector=detector, actors=2, actor_cpus=ACTOR_CPUS, files_per_call=2, **OPTIONS) as scanner:
        got = list(scanner.scan(media))
    assert marker.exists(), "the test hook did not kill an actor"
    paths = [r.path for r in got]
    assert len(paths) == len(set(paths)) == len(list(media.iterdir()))
    by_name = {os.path.basename(r.path): r for r in got}
    voice = by_name.pop("voice.wav")
    assert (voice.status, voice.reason) == ("error", "decoder crashed") and "actor" in voice.media["error"]
    assert_same(list(by_name.values()), [r for r in local.scan(media) if not r.path.endswith("voice.wav")])


def test_resume_after_an_interrupted_run_completes_without_duplicates(pool, cluster, detector, media, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    for i in range(6):
        synth.write_audio(folder / f"voice{i}.wav", duration_s=1.0, seed=10 + i)
    out = tmp_path / "results.jsonl"
    with open(out, "w", encoding="utf-8") as stream:  # a run stopped after 2 results, killed while writing a 3rd
        writer = JsonLinesWriter(stream)
        scan = pool.scan(folder)
        for _ in range(2):
            writer.write(next(scan))
        scan.close()
        stream.write('{"path": "' + str(folder / "voice5.wav"))
    before = out.read_text().splitlines()[:2]
    code = check_on_ray([folder], address=cluster, output=out, output_format="jsonl", resume=True, quiet=True,
                        detector=detector, actors=1, actor_cpus=ACTOR_CPUS, **OPTIONS)
    assert code == 0
    lines = out.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert lines[:2] == before  # finished results kept as written
    assert sorted(r["path"] for r in records) == sorted(str(p) for p in folder.iterdir())
    assert all(r["status"] == "ok" for r in records)
    again = check_on_ray([folder], output=out, output_format="jsonl", resume=True, quiet=True,
                         detector=detector, actors=1, actor_cpus=ACTOR_CPUS, **OPTIONS)
    assert again == 0 and out.read_text().splitlines() == lines  # nothing left to do, nothing added


def test_check_cli_dispatches_to_ray(cluster, detector, media, tmp_path):
    from typer.testing import CliRunner

    from deepscan.cli import app

    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(app, [
        "check", str(media / "voice.wav"), str(media / "empty.mp4"), "--ray", "--ray-actors", "1",
        "--detector", str(detector), "--encoders", "debug", "--precision", "fp32", "--experts", "none",
        "--no-cache", "--output", str(out), "--quiet"])  # JSON Lines: the output's name says so
    assert result.exit_code == 3, result.output  # one file could not be scanned
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((os.path.basename(r["path"]), r["status"]) for r in records) == [
        ("empty.mp4", "error"), ("voice.wav", "ok")]


def test_check_ray_with_no_flags_uses_the_shipped_detector(cluster, samples_dir, models_dir, tmp_path, monkeypatch):
    """`deepscan check ../shared/samples --ray -o out.jsonl`: the local scan's verdicts, one result per file."""
    from typer.testing import CliRunner

    from deepscan.cli import app
    from deepscan.model.fusion import DEFAULT_PATH

    monkeypatch.delenv("DEEPSCAN_DETECTOR", raising=False)
    monkeypatch.setenv("DEEPSCAN_MODELS_DIR", str(models_dir))
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["check", str(samples_dir), "--ray", "--ray-actors", "1", "--no-cache",
                                      "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    got = [ScanResult.from_dict(json.loads(line)) for line in out.read_text().splitlines()]
    local = tmp_path / "local.jsonl"  # the local check's records, rounded as JSON Lines rounds them
    with open(local, "w", encoding="utf-8") as stream:
        writer = JsonLinesWriter(stream)
        for item in Scanner(workers=0, cache=False).scan(samples_dir):
            writer.write(item)
    expected = [ScanResult.from_dict(json.loads(line)) for line in local.read_text().splitlines()]
    assert expected[0].detector["name"] == DEFAULT_PATH.stem
    assert_same(got, expected)


def test_listing_matches_the_local_walk(media):
    listed = list_inputs(media)
    assert [i.source for i in listed] == sorted(str(p) for p in media.iterdir())
    assert all(i.local == os.path.abspath(i.source) and i.error is None for i in listed)
