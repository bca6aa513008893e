"""Training the cross-modal detector on cached window features.

Windows are the training examples (each labelled as its file); validation is per file, the
file's log-odds being the mean of its window log-odds (:func:`deepscan.results.aggregate_windows`,
the rule ``check`` uses), so early stopping and calibration see what users will see.

- Optimiser: AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019).
- Class balance: cross-entropy weighted by inverse class frequency of the training windows.
- Missing modalities: :attr:`DetectorConfig.modality_dropout` drops present modalities at random
  while training, so the detector learns to judge from any subset.
- Early stopping on validation AUC (ties broken by validation loss), keeping the best weights.
- Calibration: temperature scaling on the validation files' log-odds (Guo et al., ICML 2017).
- Threshold: 0.5 on the calibrated ``p_fake`` (the Bayes decision for calibrated probabilities
  at equal costs); ``deepscan evaluate --fit-threshold --target-fpr F`` picks another.
- Synchrony: the detector gets SyncNet-style lag-correlation features
  (:attr:`TrainConfig.sync_channels`), and each epoch adds *feature-level sync negatives*: copies of
  real training windows whose audio tokens are rolled 0.24-0.96 s against the frames, or taken
  from another real file's window, labelled fake (:attr:`TrainConfig.sync_negatives`). These are
  SyncNet's negatives (Chung & Zisserman, ACCV-W 2016, sec. 3.1: shifted or other-clip audio);
  made from cached tokens they cost no decoding or encoding.
- Determinism: one seed drives weight init, dropout and batch order; the detector runs on one
  CPU thread (faster for this small model, ~10x here, and free of thread-order effects).
"""

from __future__ import annotations

import copy
import datetime
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..model import CrossModalDetector, DetectorConfig, save_detector
from ..results import MODALITIES
from .. import metrics
from .data import FileSample

__all__ = ["TrainConfig", "TrainResult", "train_detector", "file_logits", "checkpoint_encoders", "default_detector_config"]

DEFAULT_EPOCHS = 50  # demo corpora still improved at epoch 26-35 of 30-50 (160 clips, seeds 1-3)
DEFAULT_BATCH_SIZE = 16
DEFAULT_LR = 1e-3
DEFAULT_WEIGHT_DECAY = 1e-2
DEFAULT_PATIENCE = 12
DEFAULT_MODALITY_DROPOUT = 0.1
DEFAULT_SYNC_CHANNELS = 4
DEFAULT_SYNC_NEGATIVES = 2.0  # sync negatives per real training window and epoch
DEFAULT_MODALITY_LOSS = 2.0  # weight of the per-modality heads' loss
# Which modalities each pseudo-fake kind manipulates. Lip-sync fakes (offset, swapped voice) leave
# every modality real on its own: only their combination is fake, which the fused head judges.
MANIPULATED_MODALITIES = {
    "av_offset": frozenset(),
    "swapped_audio": frozenset(),
    "blended_face": frozenset({"image", "video"}),
    "vocoded_audio": frozenset({"audio"}),
}
# Splits whose real files also give pseudo-fakes when the data has labelled fakes: more fakes to
# learn from and to select the epoch on; the test split is left as labelled, so its metrics are not
# flattered by manipulations the detector was taught.
SPLITS_WITH_PSEUDO_FAKES = ("train", "val")
SYNC_SHIFT_RANGE_S = (0.24, 0.96)  # |roll| of the audio tokens in a shifted sync negative
EVAL_BATCH = 64  # windows per forward pass when scoring


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_detector`.

    Parameters
    ----------
    epochs : int
        Most passes over the training windows.
    batch_size : int
        Windows per step.
    lr : float
        AdamW learning rate.
    weight_decay : float
        AdamW decoupled weight decay.
    patience : int
        Epochs without a better validation AUC before stopping.
    seed : int
        Seed of initialisation, dropout and batch order.
    d_model, n_heads, n_self_layers, ff_dim : int
        Detector width, heads, self-attention layers and feed-forward width.
    dropout, modality_dropout : float
        Dropout and per-modality dropout probabilities.
    sync_channels : int
        Channels of the detector's synchrony features (0 disables them).
    sync_negatives : float
        Expected feature-level sync negatives per real training window with frames and audio, per
        epoch (0 disables them); half shifted audio, half audio from another file.
    modality_loss : float
        Weight of the per-modality heads' loss (0 disables it): each head learns whether *its*
        modality was manipulated, known from the fake kind (:data:`MANIPULATED_MODALITIES`).
    stats_pooling : bool
        Mean and standard deviation pooling for the modality heads
        (``DetectorConfig.modality_stats_pooling``).
    standardise_inputs : bool
        Standardise each input feature dimension with the training tokens' mean and standard
        deviation (``DetectorConfig.standardise_inputs``).
    """

    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    patience: int = DEFAULT_PATIENCE
    seed: int = 0
    d_model: int = 64
    n_heads: int = 4
    n_self_layers: int = 1
    ff_dim: int = 256
    dropout: float = 0.0
    modality_dropout: float = DEFAULT_MODALITY_DROPOUT
    sync_channels: int = DEFAULT_SYNC_CHANNELS
    sync_negatives: float = DEFAULT_SYNC_NEGATIVES
    modality_loss: float = DEFAULT_MODALITY_LOSS
    stats_pooling: bool = True
    standardise_inputs: bool = True

    def __post_init__(self):
        for name in ("epochs", "batch_size", "d_model", "n_heads", "ff_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience!r}")
        if self.sync_channels < 0 or self.sync_negatives < 0:
            raise ValueError(f"sync_channels and sync_negatives must be >= 0, got {self.sync_channels!r}, "
                             f"{self.sync_negatives!r}")


@dataclass
class TrainResult:
    """What :func:`train_detector` returns.

    Attributes
    ----------
    model : CrossModalDetector
        The best model (by validation AUC), in eval mode.
    temperature : float
        Calibration temperature fitted on validation files.
    threshold : float
        Decision threshold on calibrated ``p_fake``.
    history : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_auc``, ``val_loss``.
    best_epoch : int
    val_metrics : dict or None
        :func:`~deepscan.metrics.detection_metrics` of the validation files.
    """

    model: CrossModalDetector
    temperature: float
    threshold: float
    history: list = field(default_factory=list)
    best_epoch: int = 0
    val_metrics: dict | None = None


def default_detector_config(extractors, cfg: TrainConfig) -> DetectorConfig:
    """Detector config with the encoders' dims and the training config's sizes."""
    dims = {m: int(extractors.config[m]["dim"]) for m in MODALITIES}
    return DetectorConfig(image_dim=dims["image"], audio_dim=dims["audio"], video_dim=dims["video"],
                          d_model=cfg.d_model, n_heads=cfg.n_heads, n_self_layers=cfg.n_self_layers,
                          ff_dim=cfg.ff_dim, dropout=cfg.dropout, modality_dropout=cfg.modality_dropout,
                          sync_channels=int(cfg.sync_channels),
                          fuse_modality_logits=cfg.modality_loss > 0,
                          modality_stats_pooling=cfg.stats_pooling,
                          standardise_inputs=cfg.standardise_inputs)


def checkpoint_encoders(extractors) -> dict:
    """Encoder identities for a checkpoint: ``{m: {"id", "revision", "dim"}}`` from ``extractors.config``."""
    return {m: {"id": extractors.config[m]["id"], "revision": extractors.config[m].get("revision"),
                "dim": int(extractors.config[m]["dim"])} for m in MODALITIES}


def _flatten(samples: Sequence[FileSample]) -> tuple[list, np.ndarray, np.ndarray]:
    windows, labels, owner = [], [], []
    for i, s in enumerate(samples):
        for w in s.windows:
            windows.append(w)
            labels.append(s.y)
            owner.append(i)
    return windows, np.asarray(labels, np.int64), np.asarray(owner, np.int64)


def modality_targets(samples: Sequence[FileSample]) -> torch.Tensor:
    """Per-window targets of the modality heads: 1 where that modality was manipulated.

    Parameters
    ----------
    samples : sequence of FileSample

    Returns
    -------
    torch.Tensor
        int64 ``(N_windows, 3)`` in :data:`~deepscan.model.config.MODALITIES` order: 0 real,
        1 manipulated, -1 unknown (a fake of a kind not in :data:`MANIPULATED_MODALITIES`).
    """
    rows = []
    for s in samples:
        if s.y == 0:
            row = [0] * len(MODALITIES)
        elif s.kind in MANIPULATED_MODALITIES:
            row = [int(m in MANIPULATED_MODALITIES[s.kind]) for m in MODALITIES]
        else:
            row = [-1] * len(MODALITIES)
        rows.extend([row] * len(s.windows))
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, len(MODALITIES))


def _modality_loss(out, targets: torch.Tensor) -> torch.Tensor:
    losses = []
    for i, m in enumerate(MODALITIES):
        target = targets[:, i].masked_fill(~out.modality_present[m], -1)
        if bool((target >= 0).any()):
            losses.append(F.cross_entropy(out.modality_logits[m], target, ignore_index=-1))
    return torch.stack(losses).mean() if losses else out.logits.sum() * 0.0


def _pad(features: list) -> dict:
    from ..scanner import batch_features

    return batch_features(features, torch.device("cpu"))


def _take(batch: dict, index: torch.Tensor) -> dict:
    return {k: (v[index] if v is not None else None) for k, v in batch.items()}


def sync_negatives(padded: dict, labels: np.ndarray, owner: np.ndarray, rate: float,
                   generator: torch.Generator) -> dict | None:
    """Feature-level sync negatives: real windows with their audio tokens shifted or swapped in.

    Each real window with image and audio tokens is drawn ``rate`` times on average (Poisson
    thinning by a Bernoulli per copy). Half the copies roll the window's audio tokens by
    :data:`SYNC_SHIFT_RANGE_S` either way within its real tokens (times stay, so the voice slides
    against the mouth); half take the audio tokens, mask and times of a real window of another file.

    Parameters
    ----------
    padded : dict
        Batched training windows (:func:`deepscan.scanner.batch_features`).
    labels : np.ndarray
        int64 ``(N,)`` window labels (0 real).
    owner : np.ndarray
        int64 ``(N,)`` file index of each window.
    rate : float
        Expected copies per eligible window.
    generator : torch.Generator
        Source of all draws.

    Returns
    -------
    dict or None
        Batched negatives (same keys as ``padded``), or None when there are none.
    """
    if padded.get("audio") is None or padded.get("image") is None or rate <= 0:
        return None
    eligible = torch.nonzero(torch.as_tensor(labels == 0) & padded["audio_mask"].any(1)
                             & (padded["image_mask"].sum(1) >= 4)).flatten()
    if eligible.numel() < 2:
        return None
    copies = int(np.floor(rate)) + 1
    chosen = eligible.repeat(copies)
    keep = torch.rand(chosen.numel(), generator=generator) < rate / copies
    chosen = chosen[keep]
    if chosen.numel() == 0:
        return None
    out = _take(padded, chosen)
    audio, mask, times = out["audio"].clone(), out["audio_mask"].clone(), out["audio_times"].clone()
    swap = torch.rand(chosen.numel(), generator=generator) < 0.5
    owners = torch.as_tensor(owner)
    for row in range(chosen.numel()):
        n = int(mask[row].sum())
        if swap[row]:
            others = eligible[owners[eligible] != owners[chosen[row]]]
            if others.numel():
                donor = others[torch.randint(others.numel(), (1,), generator=generator)].item()
                audio[row], mask[row], times[row] = padded["audio"][donor], padded["audio_mask"][donor], padded["audio_times"][donor]
                continue
        step = float(times[row, 1] - times[row, 0]) if n > 1 else 0.08
        lo, hi = (max(int(round(s / step)), 1) for s in SYNC_SHIFT_RANGE_S)
        k = int(torch.randint(lo, hi + 1, (1,), generator=generator)) * (1 if torch.rand(1, generator=generator) < 0.5 else -1)
        audio[row, :n] = torch.roll(audio[row, :n], k % max(n, 1), dims=0)
    out["audio"], out["audio_mask"], out["audio_times"] = audio, mask, times
    return out


def _cat(a: dict, b: dict | None) -> dict:
    if b is None:
        return a
    return {k: (torch.cat([a[k], b[k]]) if a[k] is not None else None) for k in a}


@torch.no_grad()
def _window_logits(model: CrossModalDetector, padded: dict, n: int) -> np.ndarray:
    from ..scanner import logit_margin

    model.eval()
    out = []
    for start in range(0, n, EVAL_BATCH):
        index = torch.arange(start, min(start + EVAL_BATCH, n))
        out.append(logit_margin(model(**_take(padded, index)).logits))
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def file_logits(model: CrossModalDetector, samples: Sequence[FileSample], temperature: float = 1.0) -> np.ndarray:
    """File-level log-odds: the mean of each file's window log-odds (as ``check``), divided by ``temperature``.

    Parameters
    ----------
    model : CrossModalDetector
    samples : sequence of FileSample
    temperature : float

    Returns
    -------
    np.ndarray
        float64 ``(N_files,)``.
    """
    windows, _, owner = _flatten(samples)
    if not windows:
        return np.zeros(0)
    logits = _window_logits(model, _pad(windows), len(windows)) / float(temperature)
    return np.array([logits[owner == i].mean() for i in range(len(samples))])


def evaluate_samples(model, checkpoint, samples: Sequence, threshold: float | None = None) -> dict:
    """Metrics of a loaded detector on file samples, overall and per fake kind.

    Parameters
    ----------
    model : CrossModalDetector
    checkpoint : DetectorCheckpoint
        Its temperature and threshold are used.
    samples : sequence of FileSample
    threshold : float, optional
        Overrides the checkpoint's threshold.

    Returns
    -------
    dict
        The fields of :func:`~deepscan.metrics.detection_metrics` (``auc``, ``eer``,
        ``ap``, ``accuracy``, ``ece``, ``n_real``, ``n_fake``, ``confusion``, ...), plus
        ``temperature``, ``fitted_temperature`` (the temperature these files would ask for),
        ``per_kind`` (kind -> the same metrics, that kind's fakes against all reals) and
        ``files`` (path, kind, label, p_fake per file).

    Raises
    ------
    ValueError
        When there are no samples.
    """
    if not samples:
        raise ValueError("no files to evaluate (is the split empty?)")
    threshold = checkpoint.threshold if threshold is None else float(threshold)
    logits = file_logits(model, samples, checkpoint.temperature)
    labels = np.array([s.y for s in samples], np.int64)
    p = 1.0 / (1.0 + np.exp(-logits))
    out = metrics.detection_metrics(labels, p, threshold)
    out["temperature"] = checkpoint.temperature
    out["fitted_temperature"] = (metrics.fit_temperature(labels, logits * checkpoint.temperature)
                                 if len(set(labels.tolist())) == 2 else None)
    out["per_kind"] = {}
    real = labels == 0
    for kind in sorted({s.kind for s in samples if s.y == 1}):
        sel = real | np.array([s.kind == kind and s.y == 1 for s in samples])
        out["per_kind"][kind] = metrics.detection_metrics(labels[sel], p[sel], threshold)
    out["files"] = [{"path": s.path, "kind": s.kind, "label": "fake" if s.y else "real", "p_fake": float(q)}
                    for s, q in zip(samples, p)]
    return out


def _bce(labels: np.ndarray, logits: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))


def _fit_standardisers(model: CrossModalDetector, windows: Sequence) -> None:
    """Set each modality's input standardisation from the training windows' tokens (identity if < 2)."""
    for m in MODALITIES:
        tokens = [getattr(w, m) for w in windows if getattr(w, m).shape[0] > 0]
        if sum(t.shape[0] for t in tokens) >= 2:
            model.standardisers[m].fit(torch.cat(tokens).float())


def train_detector(
    train: Sequence[FileSample],
    val: Sequence[FileSample],
    config: DetectorConfig,
    cfg: TrainConfig,
    progress: Callable[[int, int, dict], None] | None = None,
) -> TrainResult:
    """Train a detector on window features, early-stopping on validation file AUC, then calibrate.

    Parameters
    ----------
    train : sequence of FileSample
        Training files (real and fake).
    val : sequence of FileSample
        Validation files; without both classes, the last epoch is kept and the temperature is 1.
    config : DetectorConfig
        The detector's dims and sizes (``modality_dropout`` applies while training).
    cfg : TrainConfig
    progress : callable(epoch, epochs, stats), optional
        Called after each epoch with ``{"train_loss", "val_auc", "val_loss"}``.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        When the training files lack a class.
    """
    windows, labels, train_owner = _flatten(train)
    counts = np.bincount(labels, minlength=2)
    if counts.min() == 0:
        raise ValueError(f"training needs real and fake windows, got {counts[0]} real and {counts[1]} fake")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        model = CrossModalDetector(config)
        if model.standardisers is not None:
            _fit_standardisers(model, windows)
        optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        base_padded = _pad(windows)
        base_y = torch.as_tensor(labels)
        base_targets = modality_targets(train)
        val_y = np.array([s.y for s in val], np.int64)
        can_validate = len(set(val_y.tolist())) == 2
        val_padded = None
        if val:
            val_windows, _, val_owner = _flatten(val)
            val_padded = _pad(val_windows)
        history, best, best_key, best_epoch, stale = [], None, None, 0, 0
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            padded, y, targets = base_padded, base_y, base_targets
            if config.sync_channels and cfg.sync_negatives > 0:
                extra = sync_negatives(base_padded, labels, train_owner, cfg.sync_negatives, generator)
                if extra is not None:
                    n_extra = extra["audio"].shape[0]
                    padded = _cat(base_padded, extra)
                    y = torch.cat([base_y, torch.ones(n_extra, dtype=torch.int64)])
                    # each modality of a sync negative is real on its own
                    targets = torch.cat([base_targets, torch.zeros(n_extra, len(MODALITIES), dtype=torch.int64)])
            epoch_counts = np.bincount(y.numpy(), minlength=2)
            class_weight = torch.tensor(len(y) / (2.0 * epoch_counts), dtype=torch.float32)
            order = torch.randperm(len(y), generator=generator)
            total = 0.0
            for start in range(0, len(order), cfg.batch_size):
                index = order[start:start + cfg.batch_size]
                out = model(**_take(padded, index))
                loss = F.cross_entropy(out.logits, y[index], weight=class_weight)
                if cfg.modality_loss > 0:
                    loss = loss + cfg.modality_loss * _modality_loss(out, targets[index])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += loss.item() * len(index)
            stats = {"epoch": epoch, "train_loss": total / len(order), "val_auc": None, "val_loss": None}
            if val_padded is not None:
                wl = _window_logits(model, val_padded, len(val_owner))
                fl = np.array([wl[val_owner == i].mean() for i in range(len(val))])
                stats["val_loss"] = _bce(val_y, fl)
                if can_validate:
                    stats["val_auc"] = float(metrics.roc_auc_score(val_y, fl))
            history.append(stats)
            if progress is not None:
                progress(epoch, cfg.epochs, stats)
            key = (stats["val_auc"] if stats["val_auc"] is not None else 0.0,
                   -(stats["val_loss"] if stats["val_loss"] is not None else stats["train_loss"]))
            if best_key is None or key > best_key:
                best, best_key, best_epoch, stale = copy.deepcopy(model.state_dict()), key, epoch, 0
            else:
                stale += 1
                if can_validate and stale > cfg.patience:
                    break
        model.load_state_dict(best)
        model.eval()
        temperature, val_metrics = 1.0, None
        if can_validate:
            raw = file_logits(model, val)
            temperature = metrics.fit_temperature(val_y, raw)
            p = 1.0 / (1.0 + np.exp(-raw / temperature))
            val_metrics = metrics.detection_metrics(val_y, p, 0.5)
    finally:
        torch.set_num_threads(threads)
    return TrainResult(model, float(temperature), 0.5, history, best_epoch, val_metrics)


def counts_of(samples: Sequence[FileSample]) -> dict:
    """Files and windows per split, label and kind: ``{split: {"files": {kind: n}, "windows": {kind: n}}}``."""
    out: dict = {}
    for s in samples:
        entry = out.setdefault(s.split, {"files": {}, "windows": {}, "real": 0, "fake": 0})
        entry["files"][s.kind] = entry["files"].get(s.kind, 0) + 1
        entry["windows"][s.kind] = entry["windows"].get(s.kind, 0) + len(s.windows)
        entry["fake" if s.y else "real"] += 1
    return out


def save_trained(
    path: str | os.PathLike,
    result: TrainResult,
    extractors,
    sampling: dict,
    dataset,
    samples: Sequence[FileSample],
    cfg: TrainConfig,
    real_only: bool,
    kinds: Sequence[str],
    test_metrics: dict | None = None,
    pseudo_fakes: bool = False,
) -> str:
    """Save a trained detector with its provenance, calibration and threshold.

    ``trained_on`` is ``"synthetic"`` for data made by ``deepscan synth``, ``"debug"`` for debug
    encoders, else the data folder's name.

    Returns
    -------
    str
        SHA-256 of the checkpoint written.
    """
    trained_on = "synthetic" if dataset.synthetic else ("debug" if extractors.is_debug else dataset.name)
    provenance = {
        "trained_on": trained_on,
        "encoders": "debug" if extractors.is_debug else "pretrained",
        "data": {**dataset.describe(), "samples": counts_of(samples), "real_only": bool(real_only)},
        "pseudo_fake_kinds": list(kinds) if real_only or pseudo_fakes else [],
        "pseudo_fake_splits": ["train", "val", "test"] if real_only else list(SPLITS_WITH_PSEUDO_FAKES) if pseudo_fakes else [],
        "metrics": {"val": result.val_metrics, "test": test_metrics},
        "history": result.history,
        "best_epoch": result.best_epoch,
        "train_config": vars(cfg),
        "seed": cfg.seed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "deepscan_version": __version__,
        "threshold_rule": "0.5 on temperature-calibrated p_fake (fitted on validation files)",
    }
    provenance = _json_safe(provenance)
    return save_detector(path, result.model, encoders=checkpoint_encoders(extractors), sampling=sampling,
                         threshold=result.threshold, calibration={"temperature": result.temperature},
                         provenance=provenance)


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return _json_safe(value.item())
    return value


def run_training(
    data: str | os.PathLike,
    output: str | os.PathLike,
    encoders: str = "default",
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    real_only: bool = False,
    variants: int = 1,
    pseudo_fakes: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    patience: int = DEFAULT_PATIENCE,
    cache_dir: str | os.PathLike | None = None,
    kinds: Sequence[str] | None = None,
    train_config: TrainConfig | None = None,
    extractors=None,
    progress=None,
) -> dict:
    """Everything ``deepscan train`` does: load data, extract (cached) features, train, calibrate, save.

    Parameters
    ----------
    data : str or os.PathLike
        Data folder or manifest (see :func:`deepscan.training.data.load_dataset`).
    output : str or os.PathLike
        Checkpoint to write.
    encoders : str
        ``"default"``, ``"debug"`` or a directory (ignored when ``extractors`` is given).
    epochs, seed, batch_size, lr, patience
        As :class:`TrainConfig` (ignored when ``train_config`` is given).
    real_only : bool
        Train on the reals and their pseudo-fakes (``variants`` per kind and file).
    variants : int
        Seeded pseudo-fakes of each kind per real file.
    pseudo_fakes : bool
        With labelled fakes, also train on pseudo-fakes of the real files of
        :data:`SPLITS_WITH_PSEUDO_FAKES` (the test split keeps only the labelled fakes).
    cache_dir : str or os.PathLike, optional
        Feature cache location.
    kinds : sequence of str, optional
        Pseudo-fake kinds (default all).
    extractors : Extractors, optional
        Already loaded encoders.
    progress : rich.progress.Progress, optional
        Gets a "features" and a "training" task.

    Returns
    -------
    dict
        ``trained_on``, ``best_epoch``, ``temperature``, ``threshold``, ``val`` and ``test`` metrics
        (None when a split has no two classes), ``counts``, ``seconds``, ``encoded`` (windows encoded,
        i.e. cache misses), ``sha256``.

    Raises
    ------
    DataSetError
        For unusable data.
    ModelLoadingError
        When the encoders cannot be loaded.
    ValueError
        When a split lacks what training needs.
    """
    import time

    from ..extractors import load_extractors
    from .data import PSEUDO_FAKE_KINDS, FeatureStore, build_samples, load_dataset

    started = time.perf_counter()
    kinds = tuple(kinds or PSEUDO_FAKE_KINDS)
    cfg = train_config or TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed)
    dataset = load_dataset(data, real_only=real_only)
    extractors = extractors or load_extractors(encoders)
    store = FeatureStore(extractors, cache=cache_dir)
    feature_task = progress.add_task("features", total=len(dataset.items), info="") if progress else None
    samples = build_samples(dataset, store, real_only=real_only, kinds=kinds, variants=variants, seed=cfg.seed,
                            augment_splits=SPLITS_WITH_PSEUDO_FAKES if pseudo_fakes else (),
                            progress=(lambda d, n: progress.update(feature_task, completed=d)) if progress else None)
    split = {name: [s for s in samples if s.split == name] for name in ("train", "val", "test")}
    if not split["val"]:
        raise ValueError("the validation split is empty: add files (about 15% of sources go to val)")
    train_task = progress.add_task("training", total=cfg.epochs, info="") if progress else None

    def on_epoch(epoch, total, stats):
        if progress is not None:
            auc = stats["val_auc"]
            progress.update(train_task, completed=epoch,
                            info=f"loss {stats['train_loss']:.3f} val AUC {'n/a' if auc is None else f'{auc:.3f}'}")

    result = train_detector(split["train"], split["val"], default_detector_config(extractors, cfg), cfg, on_epoch)
    test_metrics = None
    if len({s.y for s in split["test"]}) == 2:
        from types import SimpleNamespace

        calibrated = SimpleNamespace(threshold=result.threshold, temperature=result.temperature)
        test_metrics = evaluate_samples(result.model, calibrated, split["test"])
        test_metrics.pop("files", None)
    sha = save_trained(output, result, extractors, store.sampling, dataset, samples, cfg, real_only, kinds, test_metrics,
                       pseudo_fakes=pseudo_fakes)
    return {"trained_on": "synthetic" if dataset.synthetic else ("debug" if extractors.is_debug else dataset.name),
            "best_epoch": result.best_epoch, "temperature": result.temperature, "threshold": result.threshold,
            "val": result.val_metrics, "test": test_metrics, "counts": counts_of(samples),
            "seconds": time.perf_counter() - started, "encoded": store.encoded, "sha256": sha}
