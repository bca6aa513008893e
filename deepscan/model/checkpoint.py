"""Detector checkpoints: safetensors weights with a JSON description in the metadata.

A checkpoint is one ``.safetensors`` file (https://huggingface.co/docs/safetensors). Its header
metadata (a str -> str map) holds one key, :data:`METADATA_KEY`, whose value is JSON::

    {"format_version": 1,
     "config": {...DetectorConfig.to_dict()...},
     "encoders": {"image": {"id": "openai/clip-vit-base-patch32", "revision": null, "dim": 512}, ...},
     "sampling": {...window length, fps, token rates...},
     "threshold": 0.5,
     "calibration": {"temperature": 1.0},
     "provenance": {"trained_on": "...", "encoders": "...", "metrics": {...}, ...}}

The model is rebuilt from ``config`` and its weights read with safetensors; no pickle is ever
loaded (a pickle can run arbitrary code). The ``sha256`` of a checkpoint is that of the file's bytes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import struct
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from ..errors import CheckpointError, CheckpointMismatchError
from .config import MODALITIES, DetectorConfig
from .detector import CrossModalDetector

FORMAT_VERSION = 1
METADATA_KEY = "deepscan"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
DEFAULT_CALIBRATION = {"temperature": 1.0}
# ``provenance["trained_on"]`` values (and absence) that mark a detector whose scores mean nothing.
NOT_TRAINED = frozenset({"", "none", "untrained", "random", "debug", "synthetic"})

_PICKLE_PREFIXES = (b"\x80", b"PK\x03\x04")  # pickle protocol >= 2; torch.save's zip archive


@dataclass
class DetectorCheckpoint:
    """The description a checkpoint carries, plus its file hash and name.

    Attributes
    ----------
    config : DetectorConfig
        The detector's dimensions, from which the model is rebuilt.
    encoders : dict of str to dict
        Modality -> ``{"id": str, "revision": str or None, "dim": int}`` of the frozen encoders the
        detector was trained on.
    sampling : dict
        Sampling parameters of the features (window length in s, visual fps, token rates, ...).
    threshold : float
        Decision threshold on the calibrated ``p_fake``, in [0, 1].
    calibration : dict
        ``{"temperature": float}`` for temperature scaling of the logits (Guo et al. 2017, "On
        Calibration of Modern Neural Networks", arXiv:1706.04599), maybe more keys.
    provenance : dict
        How the detector came to be: ``trained_on`` (data set name, or ``"synthetic"``,
        ``"debug"``, ``"untrained"``), ``encoders`` (e.g. ``"debug"``), metrics, dates, ...
    format_version : int
        Checkpoint format version (:data:`FORMAT_VERSION` when written by this deepscan).
    sha256 : str
        Hex SHA-256 of the checkpoint file's bytes.
    name : str
        The file's stem, e.g. ``"detector-v1"``.
    path : str or None
        Where it was read from.
    """

    config: DetectorConfig
    encoders: dict
    sampling: dict
    threshold: float
    calibration: dict
    provenance: dict
    format_version: int = FORMAT_VERSION
    sha256: str = ""
    name: str = ""
    path: str | None = field(default=None, compare=False)

    @property
    def trained_on(self) -> str:
        """What the detector was trained on, from provenance; ``"untrained"`` when it does not say."""
        value = self.provenance.get("trained_on")
        return str(value) if value not in (None, "") else "untrained"

    @property
    def is_synthetic(self) -> bool:
        """True when this is not a real detector: untrained, debug or synthetic data, or debug encoders.

        Scores of such a detector must never be shown as a real/fake verdict.
        """
        if self.trained_on.strip().lower() in NOT_TRAINED:
            return True
        if str(self.provenance.get("encoders", "")).strip().lower() == "debug":
            return True
        return any(str(enc.get("id", "")).lower().startswith("debug") for enc in self.encoders.values())

    @property
    def temperature(self) -> float:
        """Calibration temperature (1.0 when not calibrated)."""
        return float(self.calibration.get("temperature", 1.0))

    def metadata(self) -> dict:
        """Return the JSON description stored in the file (without ``sha256``, ``name``, ``path``)."""
        return {
            "format_version": self.format_version,
            "config": self.config.to_dict(),
            "encoders": copy.deepcopy(self.encoders),
            "sampling": copy.deepcopy(self.sampling),
            "threshold": self.threshold,
            "calibration": copy.deepcopy(self.calibration),
            "provenance": copy.deepcopy(self.provenance),
        }

    def to_dict(self) -> dict:
        """Return a JSON-ready summary for results and reports (metadata plus name, hash, flags)."""
        data = self.metadata()
        data.update(name=self.name, sha256=self.sha256, trained_on=self.trained_on, is_synthetic=self.is_synthetic)
        return data


def _check_encoders(encoders: dict, config: DetectorConfig, where: str) -> dict:
    """Validate an ``encoders`` map against ``config``; return a normalised deep copy.

    Raises
    ------
    ValueError
        When a modality is missing or unknown, or an entry lacks ``id``/``dim`` or has the wrong dim.
    """
    if not isinstance(encoders, dict):
        raise ValueError(f"{where}: encoders must be a dict modality -> {{id, revision, dim}}")
    unknown = sorted(set(encoders) - set(MODALITIES))
    missing = [m for m in MODALITIES if m not in encoders]
    if unknown or missing:
        raise ValueError(f"{where}: encoders must name exactly {list(MODALITIES)}; unknown {unknown}, missing {missing}")
    normalised = {}
    for modality in MODALITIES:
        entry = encoders[modality]
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
            raise ValueError(f"{where}: encoders[{modality!r}] needs a non-empty string 'id', got {entry!r}")
        dim = entry.get("dim")
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise ValueError(f"{where}: encoders[{modality!r}]['dim'] must be an int, got {dim!r}")
        expected = config.input_dims[modality]
        if dim != expected:
            raise ValueError(
                f"{where}: the {modality} encoder {entry['id']} gives dim {dim} but the detector "
                f"config expects {modality}_dim={expected}"
            )
        revision = entry.get("revision")
        if revision is not None and not isinstance(revision, str):
            raise ValueError(f"{where}: encoders[{modality!r}]['revision'] must be a string or None")
        normalised[modality] = {**copy.deepcopy(entry), "revision": revision}
    return normalised


def _check_threshold(threshold, calibration) -> tuple[float, dict]:
    """Validate a threshold in [0, 1] and a calibration dict with a positive finite temperature."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    if not isinstance(calibration, dict):
        raise ValueError(f"calibration must be a dict like {DEFAULT_CALIBRATION}, got {calibration!r}")
    temperature = calibration.get("temperature", 1.0)
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise ValueError(f"calibration temperature must be a positive finite number, got {temperature!r}")
    return float(threshold), {**copy.deepcopy(calibration), "temperature": float(temperature)}


def _write(path: str | os.PathLike, tensors: dict[str, torch.Tensor], description: dict) -> str:
    """Serialise, write atomically and return the SHA-256 of the bytes written."""
    try:
        text = json.dumps(description, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"checkpoint metadata must be JSON-serialisable (no NaN): {error}") from error
    data = save_tensors(tensors, metadata={METADATA_KEY: text})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return hashlib.sha256(data).hexdigest()


def save_detector(
    path: str | os.PathLike,
    model: CrossModalDetector,
    *,
    encoders: dict,
    sampling: dict,
    threshold: float = 0.5,
    calibration: dict | None = None,
    provenance: dict,
) -> str:
    """Write a detector checkpoint.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.safetensors`` file (written atomically; parent folders are created).
    model : CrossModalDetector
        The detector; its ``config`` and float weights are stored (weights as they are, on CPU).
    encoders : dict
        Modality -> ``{"id": str, "revision": str or None, "dim": int}`` for all of
        :data:`~deepscan.model.config.MODALITIES`; each ``dim`` must equal the config's input width.
    sampling : dict
        JSON-serialisable sampling parameters (window length in s, fps, token rates, ...).
    threshold : float
        Decision threshold on calibrated ``p_fake``, in [0, 1].
    calibration : dict, optional
        ``{"temperature": float > 0, ...}``; default ``{"temperature": 1.0}``.
    provenance : dict
        JSON-serialisable training provenance, e.g. ``{"trained_on": "synthetic", "encoders":
        "debug", "metrics": {...}}``; ``{}`` marks an untrained detector.

    Returns
    -------
    str
        Hex SHA-256 of the file written.

    Raises
    ------
    TypeError
        When ``model`` is not a :class:`CrossModalDetector`.
    ValueError
        When encoders, threshold or calibration are invalid or the metadata is not JSON-serialisable.
    """
    if not isinstance(model, CrossModalDetector):
        raise TypeError(f"save_detector needs a CrossModalDetector, got {type(model).__name__}")
    config = model.config
    threshold, calibration = _check_threshold(threshold, DEFAULT_CALIBRATION if calibration is None else calibration)
    for name, value in (("sampling", sampling), ("provenance", provenance)):
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be a dict, got {type(value).__name__}")
    description = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "encoders": _check_encoders(encoders, config, "save_detector"),
        "sampling": sampling,
        "threshold": threshold,
        "calibration": calibration,
        "provenance": provenance,
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return _write(path, tensors, description)


def _read_bytes(path: str | os.PathLike) -> bytes:
    """Read a checkpoint file, turning OS errors into :class:`CheckpointError`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError("detector checkpoint not found", path)
    if not path.is_file():
        raise CheckpointError("detector checkpoint is not a regular file", path)
    try:
        return path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read detector checkpoint: {error.strerror or error}", path) from error


def _parse_header(data: bytes, path) -> dict:
    """Return the deepscan description from a safetensors file's header, or raise CheckpointError."""
    if data.startswith(_PICKLE_PREFIXES):
        raise CheckpointError(
            "this looks like a pickle / torch.save checkpoint; deepscan only loads .safetensors "
            "detectors written by deepscan (pickles can run arbitrary code)",
            path,
        )
    if len(data) < 8:
        raise CheckpointError(f"not a safetensors file ({len(data)} bytes, too short for a header)", path)
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER_BYTES or 8 + header_len > len(data):
        raise CheckpointError("not a safetensors file (header length does not fit the file)", path)
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"not a safetensors file (header is not JSON: {error})", path) from error
    if not isinstance(header, dict):
        raise CheckpointError("not a safetensors file (header is not a JSON object)", path)
    metadata = header.get("__metadata__") or {}
    if METADATA_KEY not in metadata:
        raise CheckpointError(
            f"safetensors file without deepscan metadata (no {METADATA_KEY!r} key); it is not a "
            "deepscan detector checkpoint",
            path,
        )
    try:
        description = json.loads(metadata[METADATA_KEY])
    except (TypeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"deepscan metadata is not valid JSON: {error}", path) from error
    if not isinstance(description, dict):
        raise CheckpointError("deepscan metadata is not a JSON object", path)
    return description


def _describe(data: bytes, path) -> DetectorCheckpoint:
    """Build a :class:`DetectorCheckpoint` from a file's bytes, validating every field."""
    description = _parse_header(data, path)
    version = description.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"checkpoint has no valid format_version (got {version!r})", path)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format_version {version} is newer than this deepscan supports "
            f"({FORMAT_VERSION}); upgrade deepscan to load it",
            path,
        )
    missing = [k for k in ("config", "encoders", "threshold") if k not in description]
    if missing:
        raise CheckpointError(f"checkpoint metadata lacks {missing}", path)
    try:
        config = DetectorConfig.from_dict(description["config"])
        encoders = _check_encoders(description["encoders"], config, "checkpoint")
        threshold, calibration = _check_threshold(
            description["threshold"], description.get("calibration", DEFAULT_CALIBRATION)
        )
    except ValueError as error:
        raise CheckpointError(f"invalid checkpoint metadata: {error}", path) from error
    sampling = description.get("sampling") or {}
    provenance = description.get("provenance") or {}
    if not isinstance(sampling, dict) or not isinstance(provenance, dict):
        raise CheckpointError("checkpoint metadata 'sampling' and 'provenance' must be JSON objects", path)
    return DetectorCheckpoint(
        config=config,
        encoders=encoders,
        sampling=sampling,
        threshold=threshold,
        calibration=calibration,
        provenance=provenance,
        format_version=version,
        sha256=hashlib.sha256(data).hexdigest(),
        name=Path(path).stem,
        path=os.fspath(path),
    )


def read_metadata(path: str | os.PathLike) -> DetectorCheckpoint:
    """Read a checkpoint's description without building the model.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.safetensors`` detector checkpoint.

    Returns
    -------
    DetectorCheckpoint

    Raises
    ------
    CheckpointError
        When the file is missing, is a pickle, is not safetensors, lacks deepscan metadata, has a
        newer ``format_version`` or invalid metadata.
    """
    return _describe(_read_bytes(path), path)


def _load_weights(data: bytes, path) -> dict[str, torch.Tensor]:
    try:
        return load_tensors(data)
    except Exception as error:  # safetensors raises its own SafetensorError and others
        raise CheckpointError(f"cannot read the checkpoint's tensors: {error}", path) from error


def check_encoders(checkpoint: DetectorCheckpoint, expected_encoders: dict) -> None:
    """Refuse a checkpoint whose encoders differ from the configured ones in id or dim.

    Parameters
    ----------
    checkpoint : DetectorCheckpoint
        As read from the file.
    expected_encoders : dict
        Modality -> ``{"id": str, "dim": int, "revision": str or None}``; modalities, keys or values
        that are absent (or ``None``) are not checked. A differing revision only warns.

    Raises
    ------
    CheckpointMismatchError
        Naming the modality, the checkpoint's encoder and dim, and the configured ones.
    """
    for modality, expected in expected_encoders.items():
        if expected is None:
            continue
        got = checkpoint.encoders.get(modality)
        if got is None:
            raise CheckpointMismatchError(
                f"detector {checkpoint.name!r} has no {modality} encoder, but {expected.get('id')} is configured",
                checkpoint.path,
            )
        for key in ("id", "dim"):
            if expected.get(key) is not None and expected[key] != got.get(key):
                raise CheckpointMismatchError(
                    f"detector {checkpoint.name!r} was trained on {modality} encoder {got['id']} "
                    f"(dim {got['dim']}), but the configured {modality} encoder is "
                    f"{expected.get('id', got['id'])} (dim {expected.get('dim', got['dim'])}); "
                    f"use a detector trained for these encoders or configure {got['id']}",
                    checkpoint.path,
                )
        if expected.get("revision") is not None and got.get("revision") not in (None, expected["revision"]):
            warnings.warn(
                f"detector {checkpoint.name!r}: {modality} encoder {got['id']} revision "
                f"{got['revision']} differs from the configured revision {expected['revision']}",
                stacklevel=3,
            )


def load_detector(
    path: str | os.PathLike,
    expected_encoders: dict | None = None,
    device: str | torch.device = "cpu",
) -> tuple[CrossModalDetector, DetectorCheckpoint]:
    """Load a detector checkpoint: rebuild the model from its config and read its weights.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.safetensors`` checkpoint written by :func:`save_detector`.
    expected_encoders : dict, optional
        The configured encoders, modality -> ``{"id": str, "dim": int, "revision": ...}``; when
        given, a checkpoint trained on other encoders (id or dim) is refused.
    device : str or torch.device
        Where to put the model.

    Returns
    -------
    model : CrossModalDetector
        In eval mode, float32, on ``device``.
    checkpoint : DetectorCheckpoint
        The checkpoint's description, hash and name.

    Raises
    ------
    CheckpointMismatchError
        When ``expected_encoders`` differ from the checkpoint's in id or dim for any modality.
    CheckpointError
        When the file is missing, a pickle, not safetensors, lacks deepscan metadata, has a newer
        ``format_version``, or holds weights that do not fit its config.
    """
    data = _read_bytes(path)
    checkpoint = _describe(data, path)
    if expected_encoders is not None:
        check_encoders(checkpoint, expected_encoders)
    tensors = _load_weights(data, path)
    model = CrossModalDetector(checkpoint.config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"weights do not fit the checkpoint's detector config: {error}", path) from error
    return model.to(device).eval(), checkpoint


def with_threshold(
    path_in: str | os.PathLike,
    path_out: str | os.PathLike,
    threshold: float,
    calibration: dict | None = None,
) -> str:
    """Copy a checkpoint with a new decision threshold (and calibration), weights unchanged.

    Used by ``deepscan evaluate --fit-threshold``. ``provenance["derived_from"]`` records the
    SHA-256 of ``path_in``. ``path_out`` may equal ``path_in`` (written atomically).

    Parameters
    ----------
    path_in, path_out : str or os.PathLike
        Source and destination checkpoints.
    threshold : float
        New threshold on calibrated ``p_fake``, in [0, 1].
    calibration : dict, optional
        New calibration, e.g. ``{"temperature": 1.7}``; ``None`` keeps the source's.

    Returns
    -------
    str
        Hex SHA-256 of the file written.

    Raises
    ------
    CheckpointError
        When ``path_in`` is not a valid checkpoint.
    ValueError
        When ``threshold`` or ``calibration`` is invalid.
    """
    data = _read_bytes(path_in)
    checkpoint = _describe(data, path_in)
    threshold, calibration = _check_threshold(
        threshold, checkpoint.calibration if calibration is None else calibration
    )
    tensors = _load_weights(data, path_in)
    description = checkpoint.metadata()
    description.update(format_version=FORMAT_VERSION, threshold=threshold, calibration=calibration)
    description["provenance"]["derived_from"] = checkpoint.sha256
    return _write(path_out, tensors, description)
