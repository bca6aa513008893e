"""Which frozen encoders to use, where their weights are, and how to load them without surprises.

An encoder is named by an :class:`EncoderSpec`: a modality (``"image"`` or ``"audio"``; the video
encoder is derived from the image one and has no weights), a Hugging Face hub id or a local
directory, an optional revision and the feature dimension it produces.

Weights are loaded with transformers' ``from_pretrained``. At scan time the network is never
touched: a hub id is loaded from the local Hugging Face cache only, and a model that is not there
fails at once with :class:`~deepscan.errors.ModelLoadingError` naming the model and the command that
fetches it, ``deepscan models download``. Only :func:`download_models` (and :func:`load_pretrained`
with ``download=True``) reach the network, and never while ``HF_HUB_OFFLINE`` is set.

Encoder sets (:func:`resolve_encoders`):

``"default"``
    :data:`DEFAULT_ENCODERS`, CLIP ViT-B/32 (Radford et al., ICML 2021) for faces and wav2vec 2.0
    base (Baevski et al., NeurIPS 2020) for speech.
``"debug"``
    tiny seeded random-weight encoders built from configs (:mod:`deepscan.extractors.debug`), for
    tests and demos; their output is labelled ``"debug"``.
a directory
    an offline copy laid out as::

        DIR/
          image/   config.json + model.safetensors   (CLIPVisionModelWithProjection or CLIPModel)
          audio/   config.json + model.safetensors   (Wav2Vec2Model or a Wav2Vec2 checkpoint)

    each subfolder being what ``save_pretrained`` writes (or a copy of the hub repository).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import ModelLoadingError

__all__ = [
    "DEFAULT_ENCODERS",
    "DEBUG_ID",
    "MODALITIES",
    "EncoderSpec",
    "resolve_encoders",
    "encoders_for_checkpoint",
    "is_offline",
    "cached_location",
    "load_pretrained",
    "list_models",
    "download_models",
]

DEFAULT_ENCODERS = {"image": "openai/clip-vit-base-patch32", "audio": "facebook/wav2vec2-base"}
DEBUG_ID = "debug"  # the id of the built-in tiny random encoders
MODALITIES = ("image", "audio")  # modalities with weights; "video" is computed from "image"
DEFAULT_DIMS = {"image": 512, "audio": 768}  # feature dims of the default encoders
DOWNLOAD_COMMAND = "deepscan models download"

CONFIG_FILE = "config.json"
WEIGHT_FILES = (  # what from_pretrained accepts, preferred first
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
DOWNLOAD_PATTERNS = ("*.json", "*.txt")  # small files fetched with the weights


@dataclass(frozen=True)
class EncoderSpec:
    """One frozen encoder: where it comes from and what it produces.

    Parameters
    ----------
    modality : str
        ``"image"`` or ``"audio"``.
    id : str
        A hub id (``"openai/clip-vit-base-patch32"``), an absolute local directory, or
        :data:`DEBUG_ID` for the built-in tiny encoder.
    revision : str, optional
        Hub branch, tag or commit; ``None`` means ``"main"`` (ignored for directories and debug).
    dim : int, optional
        Feature dimension (512 for CLIP ViT-B/32 ``image_embeds``, 768 for wav2vec2-base hidden
        states). ``None`` is filled in from the model's ``config.json`` when it can be read, else
        from :data:`DEFAULT_DIMS`.

    Raises
    ------
    ValueError
        If ``modality`` is not one of :data:`MODALITIES`.
    """

    modality: str
    id: str
    revision: str | None = None
    dim: int | None = None

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise ValueError(f"unknown encoder modality {self.modality!r}; expected one of {MODALITIES}")
        if self.dim is None:
            object.__setattr__(self, "dim", _read_dim(self) or DEFAULT_DIMS[self.modality])

    @property
    def is_debug(self) -> bool:
        """True for the built-in tiny random encoder."""
        return self.id == DEBUG_ID

    @property
    def is_local(self) -> bool:
        """True when :attr:`id` is a local directory."""
        return not self.is_debug and os.path.isdir(self.id)

    def to_dict(self) -> dict:
        """Return the spec as a JSON-ready dict."""
        return asdict(self)


def _dim_from_config(modality: str, config: dict) -> int | None:
    # A full CLIPModel config nests the vision part; projection_dim sits at the top of both.
    if modality == "image":
        return config.get("projection_dim") or config.get("vision_config", {}).get("projection_dim")
    return config.get("hidden_size")


def _read_dim(spec: EncoderSpec) -> int | None:
    if spec.is_debug:
        return DEFAULT_DIMS[spec.modality]
    if os.path.isdir(spec.id):
        path = os.path.join(spec.id, CONFIG_FILE)
    else:
        path = _cached_file(spec.id, CONFIG_FILE, spec.revision)
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return _dim_from_config(spec.modality, json.load(f))
    except (OSError, ValueError):
        return None


def _looks_like_path(value: str) -> bool:
    # Hub ids are "name" or "owner/name"; anything else with a separator is meant as a directory.
    return value.startswith((".", "/", "~")) or "\\" in value or value.count("/") > 1


def _spec_for(modality: str, value: str, revision: str | None) -> EncoderSpec:
    if value == DEBUG_ID:
        return EncoderSpec(modality, DEBUG_ID)
    expanded = os.path.expanduser(value)
    if os.path.isdir(expanded):
        return EncoderSpec(modality, str(Path(expanded).resolve()))
    if _looks_like_path(value):
        raise ModelLoadingError(
            f"{modality} encoder directory {value!r} does not exist; give a hub id "
            f"(e.g. {DEFAULT_ENCODERS[modality]!r}) or a directory written by save_pretrained"
        )
    return EncoderSpec(modality, value, revision)


def resolve_encoders(
    preset_or_dir: str = "default",
    image: str | None = None,
    audio: str | None = None,
    revision: str | None = None,
) -> dict[str, EncoderSpec]:
    """Turn a preset name or directory, plus per-encoder overrides, into encoder specs.

    Parameters
    ----------
    preset_or_dir : str
        ``"default"`` (:data:`DEFAULT_ENCODERS`), ``"debug"`` (tiny random encoders) or a directory
        with ``image/`` and ``audio/`` subfolders, each written by ``save_pretrained`` (see the
        module docstring for the layout).
    image, audio : str, optional
        Override one encoder with a hub id, a local directory or ``"debug"``.
    revision : str, optional
        Hub revision (branch, tag or commit) applied to every encoder given as a hub id.

    Returns
    -------
    dict[str, EncoderSpec]
        ``{"image": ..., "audio": ...}``. Nothing is loaded or downloaded.

    Raises
    ------
    ModelLoadingError
        If ``preset_or_dir`` is neither a preset nor a directory, if the directory lacks an
        ``image/`` or ``audio/`` subfolder, or if an override looks like a path that does not exist.
    """
    if preset_or_dir == "default":
        values = dict(DEFAULT_ENCODERS)
    elif preset_or_dir == DEBUG_ID:
        values = {m: DEBUG_ID for m in MODALITIES}
    else:
        root = Path(os.path.expanduser(preset_or_dir))
        if not root.is_dir():
            raise ModelLoadingError(
                f"encoders {preset_or_dir!r} is neither a preset ('default', 'debug') nor a directory"
            )
        missing = [m for m in MODALITIES if not (root / m).is_dir()]
        if missing:
            raise ModelLoadingError(
                f"encoder directory {str(root)!r} lacks the subfolder(s) {', '.join(m + '/' for m in missing)}; "
                "expected image/ and audio/, each written by save_pretrained"
            )
        values = {m: str((root / m).resolve()) for m in MODALITIES}
    for modality, override in (("image", image), ("audio", audio)):
        if override is not None:
            values[modality] = override
    return {m: _spec_for(m, values[m], revision) for m in MODALITIES}


def encoders_for_checkpoint(checkpoint, encoders: str | None = None, image: str | None = None,
                            audio: str | None = None) -> dict[str, EncoderSpec]:
    """The encoders to run with a detector: ``encoders`` as given, else the ones its checkpoint names.

    Parameters
    ----------
    checkpoint : deepscan.model.checkpoint.DetectorCheckpoint
        The detector's metadata (:func:`deepscan.model.read_metadata`).
    encoders : str, optional
        A preset or directory that overrides the checkpoint (see :func:`resolve_encoders`).
    image, audio : str, optional
        Per-encoder overrides.

    Returns
    -------
    dict[str, EncoderSpec]
        The debug encoders when the checkpoint was trained on them, else its hub ids (with the
        overrides applied).

    Raises
    ------
    ModelLoadingError
        As :func:`resolve_encoders`.
    """
    if encoders is not None:
        return resolve_encoders(encoders, image=image, audio=audio)
    ids = {m: (checkpoint.encoders.get(m) or {}).get("id") for m in MODALITIES}
    if all(i == DEBUG_ID for i in ids.values()):
        return resolve_encoders(DEBUG_ID, image=image, audio=audio)
    return resolve_encoders("default", image=image or ids["image"] or DEFAULT_ENCODERS["image"],
                            audio=audio or ids["audio"] or DEFAULT_ENCODERS["audio"])


def is_offline() -> bool:
    """Whether network access is switched off (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE`` or ``DEEPSCAN_OFFLINE`` set).

    Read from the environment on each call, so that setting the variable after import still counts.

    Returns
    -------
    bool
    """
    from huggingface_hub import constants

    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DEEPSCAN_OFFLINE")
    return constants.HF_HUB_OFFLINE or any(
        os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"} for name in names
    )


def _cached_file(repo_id: str, filename: str, revision: str | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename, revision=revision)
    except (ValueError, OSError):  # malformed repo id
        return None
    return found if isinstance(found, str) else None


def cached_location(spec: EncoderSpec) -> str | None:
    """Where the encoder's weights already are on this machine, without touching the network.

    Parameters
    ----------
    spec : EncoderSpec

    Returns
    -------
    str or None
        The local directory, or the hub cache snapshot directory holding ``config.json`` and a
        weight file (from ``huggingface_hub.try_to_load_from_cache``), or ``"built-in"`` for the
        debug encoder; ``None`` when the model is not available offline.
    """
    if spec.is_debug:
        return "built-in"
    if spec.is_local:
        return spec.id
    config = _cached_file(spec.id, CONFIG_FILE, spec.revision)
    if config is None:
        return None
    if any(_cached_file(spec.id, name, spec.revision) for name in WEIGHT_FILES):
        return os.path.dirname(config)
    return None


def _missing_message(spec: EncoderSpec, why: str) -> str:
    rev = f" (revision {spec.revision})" if spec.revision else ""
    return (
        f"{spec.modality} encoder {spec.id!r}{rev} is not available offline: {why}. "
        f"Fetch it once with `{DOWNLOAD_COMMAND}` (add --encoders/--image-encoder/--audio-encoder as "
        "used here), or point --encoders at a local copy"
    )


def load_pretrained(spec: EncoderSpec, model_cls: Any, *, download: bool = False, **kwargs):
    """Load an encoder's weights with ``model_cls.from_pretrained``, failing fast when offline.

    Parameters
    ----------
    spec : EncoderSpec
        A hub id or local directory (not the debug encoder).
    model_cls : type
        A transformers model class, e.g. ``CLIPVisionModelWithProjection`` or ``Wav2Vec2Model``.
    download : bool
        ``False`` (scan time): read the hub cache only, never the network. ``True``: let
        ``from_pretrained`` fetch missing files, unless ``HF_HUB_OFFLINE`` is set.
    **kwargs
        Passed to ``from_pretrained`` (``dtype`` defaults to ``torch.float32``).

    Returns
    -------
    transformers.PreTrainedModel
        The model in ``eval()`` mode.

    Raises
    ------
    ModelLoadingError
        If the model is not cached (and may not be downloaded), or the files cannot be loaded. The
        message names the model id and ``deepscan models download``. A missing model fails at once:
        ``local_files_only=True`` is passed, so no request is retried.
    ValueError
        If ``spec`` is the debug encoder (build it with :mod:`deepscan.extractors.debug`).
    """
    import torch

    if spec.is_debug:
        raise ValueError("the debug encoder has no weights to load; use deepscan.extractors.debug")
    kwargs.setdefault("dtype", torch.float32)
    if spec.is_local:
        source, local_only, revision = spec.id, True, None
    else:
        cached = cached_location(spec) is not None
        if not cached and (not download or is_offline()):
            why = "HF_HUB_OFFLINE is set and it is not in the cache" if is_offline() else "it is not in the cache"
            raise ModelLoadingError(_missing_message(spec, why))
        source, local_only, revision = spec.id, cached or is_offline(), spec.revision
    try:
        model = model_cls.from_pretrained(
            source, revision=revision or "main", local_files_only=local_only, **kwargs
        )
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        if spec.is_local:
            raise ModelLoadingError(
                f"could not load {spec.modality} encoder from directory {spec.id!r} "
                f"({type(err).__name__}: {err}); it must hold what save_pretrained writes"
            ) from err
        raise ModelLoadingError(_missing_message(spec, f"{type(err).__name__}: {err}")) from err
    return model.eval()


def list_models(specs: dict[str, EncoderSpec]) -> list[dict]:
    """Describe the configured encoders and whether each one is ready offline.

    Parameters
    ----------
    specs : dict[str, EncoderSpec]
        As returned by :func:`resolve_encoders`.

    Returns
    -------
    list[dict]
        One JSON-ready dict per encoder with keys ``modality``, ``id``, ``revision``, ``dim``,
        ``cached`` (bool) and ``location`` (directory, ``"built-in"``, or ``None``).
    """
    rows = []
    for spec in specs.values():
        location = cached_location(spec)
        rows.append({**spec.to_dict(), "cached": location is not None, "location": location})
    return rows


def download_models(specs: dict[str, EncoderSpec]) -> list[dict]:
    """Fetch the weights of hub encoders into the Hugging Face cache (``snapshot_download``).

    Local directories and the debug encoder need nothing and are skipped. Only the files that
    ``from_pretrained`` needs are fetched: configs, and safetensors weights when the repository has
    them (else the PyTorch ``.bin``), never TensorFlow/Flax copies.

    Parameters
    ----------
    specs : dict[str, EncoderSpec]
        As returned by :func:`resolve_encoders`.

    Returns
    -------
    list[dict]
        :func:`list_models` rows after the download.

    Raises
    ------
    ModelLoadingError
        If ``HF_HUB_OFFLINE`` is set and a model is missing, or the hub cannot be reached, or the
        repository or revision does not exist; the message names the model id.
    """
    for spec in specs.values():
        if spec.is_debug or spec.is_local or cached_location(spec) is not None:
            continue
        if is_offline():
            raise ModelLoadingError(
                f"cannot download {spec.modality} encoder {spec.id!r}: HF_HUB_OFFLINE is set; "
                "unset it (and TRANSFORMERS_OFFLINE) on a machine with network access"
            )
        try:
            from huggingface_hub import HfApi, snapshot_download

            files = HfApi().list_repo_files(spec.id, revision=spec.revision)
            weights = "*.safetensors" if any(f.endswith(".safetensors") for f in files) else "*.bin"
            snapshot_download(
                spec.id, revision=spec.revision, allow_patterns=[*DOWNLOAD_PATTERNS, weights]
            )
        except Exception as err:  # network, auth, missing repo: all mean "not downloaded"
            raise ModelLoadingError(
                f"could not download {spec.modality} encoder {spec.id!r}"
                f"{' revision ' + spec.revision if spec.revision else ''} from the Hugging Face hub "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
            ) from err
    return list_models(specs)
