"""The cue-fusion detector: a calibrated logistic regression over the experts' cues, one per media kind.

Where the training data are a few hundred files per media kind, a linear model over a handful of
expert scores is what the data can support: each cue enters as its log-odds and a presence flag (a
cue that does not apply contributes nothing, not a 0.5), and a logistic regression per media kind
(audio, image, video) weighs them (stacked generalisation, Wolpert, Neural Networks 1992; Platt
scaling, Platt 1999). Its output is a calibrated ``p_fake``; its threshold is set at a stated false
positive rate on out-of-fold scores of the data it learned from.

The checkpoint is a small safetensors file: per kind ``{kind}.coef`` float32 ``(2 C,)`` and
``{kind}.intercept`` float32 ``(1,)``, and JSON metadata under the ``deepscan`` key with
``detector_kind: "cue-fusion"``, the cues per kind, thresholds, uncertain bands, out-of-fold metrics
and the training provenance (files by SHA-256, licences). No pickle.

Each kind's ``uncertain_band`` ``[lo, hi]`` is where its verdict is ``uncertain`` rather than ``real``
or ``fake``: set from the out-of-fold scores of the data it learned from
(:func:`deepscan.training.fusion.uncertain_band_from_oof`), never narrower than
:data:`deepscan.results.MIN_UNCERTAIN_MARGIN` each side of the threshold; a checkpoint that records
none gets that minimum.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepscan.errors import CheckpointError
from deepscan.results import uncertain_band

__all__ = ["FUSION_KIND", "KindModel", "FusionDetector", "is_fusion_checkpoint", "cue_features", "DEFAULT_PATH"]

FUSION_KIND = "cue-fusion"
METADATA_KEY = "deepscan"
FORMAT_VERSION = 1
P_CLIP = 1e-4  # cue probabilities are clipped to [P_CLIP, 1 - P_CLIP] before the log-odds
DEFAULT_PATH = Path(__file__).resolve().parent / "default.safetensors"  # the detector deepscan ships
CUE_MODALITY = {"aasist": "audio", "aasist-l": "audio", "synthetic_speech": "audio", "meso4": "image",
                "meso4-f2f": "image", "face_forgery": "image", "generated_image": "image", "av_sync": "video"}


def _logit(p: float) -> float:
    p = min(max(float(p), P_CLIP), 1.0 - P_CLIP)
    return math.log(p / (1.0 - p))


def cue_features(cues: dict, names: list[str]) -> np.ndarray:
    """The fusion input of one file or window: per cue its log-odds and a presence flag.

    Parameters
    ----------
    cues : dict
        Cue name -> ``{"p_fake": float or None, ...}`` (a result's or a window's ``cues``) or -> float/None.
    names : list of str
        The cues the model uses, in order.

    Returns
    -------
    np.ndarray
        float64 ``(2 * len(names),)``: ``[logit(p_1), present_1, logit(p_2), present_2, ...]``, 0 and 0
        for a cue that is absent or did not apply.
    """
    out = np.zeros(2 * len(names))
    for i, name in enumerate(names):
        value = cues.get(name)
        p = value.get("p_fake") if isinstance(value, dict) else value
        if p is not None and not (isinstance(p, float) and math.isnan(p)):
            out[2 * i], out[2 * i + 1] = _logit(p), 1.0
    return out


@dataclass
class KindModel:
    """The logistic regression of one media kind.

    Attributes
    ----------
    cues : list of str
        Cue names, in the order of the features.
    coef : np.ndarray
        float ``(2 * len(cues),)`` weights of :func:`cue_features`.
    intercept : float
    threshold : float
        Decision threshold on ``p_fake`` (set at ``target_fpr`` on out-of-fold scores).
    metrics : dict
        Out-of-fold metrics on the training data (AUC, EER, AP, ECE, counts).
    band : list of float or None
        ``[lo, hi]`` on ``p_fake`` where the verdict is ``uncertain``, as set from out-of-fold data
        (:func:`deepscan.training.fusion.uncertain_band_from_oof`); ``None``: not recorded (the
        minimum band applies, :func:`deepscan.results.uncertain_band`).
    band_detail : dict
        How the band was set: the rule, the precision level, the window, the unclipped edges, the
        out-of-fold files inside it.
    """

    cues: list
    coef: np.ndarray
    intercept: float
    threshold: float = 0.5
    metrics: dict = field(default_factory=dict)
    band: list | None = None
    band_detail: dict = field(default_factory=dict)

    def logit(self, cues: dict) -> float | None:
        """Fused fake-vs-real log-odds, or ``None`` when none of the model's cues applies."""
        x = cue_features(cues, self.cues)
        if not x[1::2].any():
            return None
        return float(x @ self.coef + self.intercept)


@dataclass
class FusionDetector:
    """Per-kind cue fusion, loaded from (or saved to) a safetensors checkpoint.

    Attributes
    ----------
    kinds : dict
        Media kind (``"audio"``, ``"image"``, ``"video"``) -> :class:`KindModel`.
    provenance : dict
        What it was trained on: data, files by SHA-256, licences, method, out-of-fold metrics.
    target_fpr : float
        The false positive rate the thresholds were set at.
    sha256, name, path : str
        Of the checkpoint file.
    """

    kinds: dict
    provenance: dict = field(default_factory=dict)
    target_fpr: float = 0.05
    sha256: str = ""
    name: str = "cue-fusion"
    path: str | None = None

    @property
    def cues(self) -> list[str]:
        """Every cue some kind uses."""
        return sorted({c for model in self.kinds.values() for c in model.cues})

    def logit(self, kind: str, cues: dict) -> float | None:
        """Fused log-odds of a file or window of a media kind; ``None`` when no cue applies or the kind is unknown."""
        model = self.kinds.get(kind)
        return None if model is None else model.logit(cues)

    def threshold(self, kind: str) -> float:
        """Decision threshold of a media kind (0.5 for a kind it has no model for)."""
        model = self.kinds.get(kind)
        return 0.5 if model is None else model.threshold

    def band(self, kind: str) -> tuple[float, float]:
        """The ``p_fake`` interval of a media kind where its verdict is ``uncertain``.

        Parameters
        ----------
        kind : str
            ``"audio"``, ``"image"`` or ``"video"``.

        Returns
        -------
        (float, float)
            The band the checkpoint records for the kind, widened to at least
            :data:`deepscan.results.MIN_UNCERTAIN_MARGIN` each side of its threshold
            (:func:`deepscan.results.uncertain_band`); that minimum where none is recorded.
        """
        model = self.kinds.get(kind)
        return uncertain_band(self.threshold(kind), None if model is None else model.band)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint (safetensors, metadata JSON under ``deepscan``).

        Returns
        -------
        Path
        """
        import torch
        from safetensors.torch import save

        tensors, kinds = {}, {}
        for kind, model in self.kinds.items():
            tensors[f"{kind}.coef"] = torch.tensor(np.asarray(model.coef), dtype=torch.float32)
            tensors[f"{kind}.intercept"] = torch.tensor([model.intercept], dtype=torch.float32)
            kinds[kind] = {"cues": list(model.cues), "threshold": float(model.threshold), "metrics": model.metrics}
            if model.band is not None:
                kinds[kind]["uncertain_band"] = [float(model.band[0]), float(model.band[1])]
                kinds[kind]["uncertain_band_detail"] = model.band_detail
        meta = {"detector_kind": FUSION_KIND, "format_version": FORMAT_VERSION, "kinds": kinds,
                "target_fpr": self.target_fpr, "provenance": self.provenance}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # written as bytes by an ordinary open: the file gets the user's usual permissions
        path.write_bytes(save(tensors, metadata={METADATA_KEY: json.dumps(meta, default=_json_default)}))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FusionDetector":
        """Read a cue-fusion checkpoint.

        Raises
        ------
        CheckpointError
            When the file is missing, not safetensors, not a cue-fusion checkpoint, or inconsistent.
        """
        from safetensors import safe_open

        path = Path(path)
        try:
            data = path.read_bytes()
            with safe_open(str(path), "pt") as f:
                meta = json.loads((f.metadata() or {}).get(METADATA_KEY, "{}"))
                tensors = {k: f.get_tensor(k).numpy() for k in f.keys()}
        except (OSError, ValueError, Exception) as error:  # safetensors raises its own error types
            raise CheckpointError(f"cannot read the fusion detector: {error}", path) from error
        if meta.get("detector_kind") != FUSION_KIND:
            raise CheckpointError("not a cue-fusion detector checkpoint", path)
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise CheckpointError("cue-fusion checkpoint is newer than this deepscan; upgrade deepscan", path)
        kinds = {}
        for kind, info in (meta.get("kinds") or {}).items():
            coef = tensors.get(f"{kind}.coef")
            intercept = tensors.get(f"{kind}.intercept")
            if coef is None or intercept is None or coef.shape != (2 * len(info["cues"]),):
                raise CheckpointError(f"fusion checkpoint: kind {kind!r} has no or mis-shaped weights", path)
            band = info.get("uncertain_band")
            if band is not None and not _is_band(band):
                raise CheckpointError(f"fusion checkpoint: kind {kind!r} has a malformed uncertain_band {band!r}", path)
            kinds[kind] = KindModel(list(info["cues"]), coef.astype(np.float64), float(intercept[0]),
                                    float(info.get("threshold", 0.5)), info.get("metrics") or {},
                                    None if band is None else [float(band[0]), float(band[1])],
                                    info.get("uncertain_band_detail") or {})
        return cls(kinds, meta.get("provenance") or {}, float(meta.get("target_fpr", 0.05)),
                   hashlib.sha256(data).hexdigest(), path.stem, os.fspath(path))

    def describe(self) -> dict:
        """The ``detector`` block of every result: name, hash, what it learned from, how good it is."""
        data = self.provenance.get("data")
        metrics = {k: {m: (round(v, 3) if isinstance(v, float) else v) for m, v in model.metrics.items()}
                   for k, model in self.kinds.items()}
        return {"name": self.name, "sha256": self.sha256, "trained_on": self.provenance.get("trained_on", "harvest"),
                "synthetic": False, "label": None, "kind": FUSION_KIND, "data": data, "metrics": metrics,
                "real_media": self.provenance.get("real_media"), "limits": self.provenance.get("limits"),
                "summary": self.summary()}

    def summary(self) -> str:
        """One line on what the detector knows: its cues, its AUC per media kind on real media, its limits.

        Returns
        -------
        str
            For example ``"cue fusion of aasist, av_sync, ... per media kind; AUC on real media
            (never trained on): audio 0.712, image 0.520, video 0.860; weak on zero-shot TTS"``.
            Out-of-fold AUCs on the training data stand in (and say so) where no real-media
            measurement was recorded.
        """
        real = self.provenance.get("real_media") or {}
        parts = [f"cue fusion of {', '.join(self.cues)} per media kind"]
        measured = {k: v.get("auc") for k, v in real.items() if isinstance(v, dict) and v.get("auc") is not None}
        if measured:
            where = self.provenance.get("real_media_source", "real media (never trained on)")
            parts.append(f"AUC on {where}: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(measured.items())))
        elif self.kinds:
            parts.append("out-of-fold AUC on its training data: " + ", ".join(
                f"{k} {m.metrics['auc']:.3f}" for k, m in sorted(self.kinds.items()) if m.metrics.get("auc") is not None))
        missing = sorted({"audio", "image", "video"} - set(self.kinds))
        if missing:
            parts.append(f"no model for {', '.join(missing)} (verdict unknown)")
        if self.provenance.get("limits"):
            parts.append(str(self.provenance["limits"]))
        return "; ".join(parts)


def _is_band(band) -> bool:
    """Whether ``band`` is ``[lo, hi]`` with ``0 <= lo <= hi <= 1``."""
    return (isinstance(band, list) and len(band) == 2 and all(isinstance(v, (int, float)) for v in band)
            and 0.0 <= band[0] <= band[1] <= 1.0)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def is_fusion_checkpoint(path: str | os.PathLike) -> bool:
    """Whether a file is a cue-fusion checkpoint (reads the safetensors header only; False on any error)."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size < 100 * 1024 * 1024:
                return False
            header = json.loads(f.read(size))
        meta = json.loads(header.get("__metadata__", {}).get(METADATA_KEY, "{}"))
        return meta.get("detector_kind") == FUSION_KIND
    except (OSError, ValueError, AttributeError):
        return False
