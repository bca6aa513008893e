"""The cross-modal deepfake detector over frozen encoder features.

The seed took one feature vector per modality (image ``(B, 512)``, audio ``(B, 768)``, video
``(B, 512)``), projected each to a shared width, applied cross-attention image->audio,
image->video and audio->video, and classified the concatenation into 2 logits. This module
generalises it to token sequences with padding masks and token times:

0. optionally (``config.standardise_inputs``), per-dimension standardisation of each modality's
   features with training-set statistics stored in the checkpoint (:class:`FeatureStandardiser`);
1. per modality: LayerNorm + linear projection to ``d_model``, a learnable modality embedding and a
   sinusoidal encoding of each token's time in seconds, shared by all modalities so that tokens at
   the same instant look alike;
2. self-attention within each modality (:class:`~deepscan.model.attention.SelfAttentionBlock`);
3. a head per modality on its masked mean-pooled tokens, before any cross-attention, so each
   modality's score rests on that modality alone;
4. cross-attention for each configured ``(query, key)`` pair, keys taken from step 2;
5. masked mean pooling per modality, presence gating (a missing modality contributes zeros and a
   0 presence flag) and a fused classifier to 2 logits;
6. optionally (``config.sync_channels > 0``), audio-visual synchrony features -- learned mouth and
   voice channels correlated at a range of lags (:class:`~deepscan.model.sync.SyncCorrelation`,
   after SyncNet, Chung & Zisserman 2016) -- with their presence flag, fed to the fused classifier.

A missing modality is masked, never zero-filled into the features. Called with the seed's 2-D
inputs it behaves as the seed with ``T = 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import CrossModalAttention, SelfAttentionBlock
from .config import MODALITIES, DetectorConfig
from .sync import SyncCorrelation


@dataclass
class DetectorOutput:
    """What :class:`CrossModalDetector` returns.

    Attributes
    ----------
    logits : Tensor
        float32 ``(B, n_classes)`` fused logits (index 1 = fake).
    modality_logits : dict of str to Tensor
        Modality -> float32 ``(B, n_classes)`` logits of that modality's own head; all zeros
        (p = 0.5) in rows where the modality is absent, which ``modality_present`` tells.
    modality_present : dict of str to Tensor
        Modality -> bool ``(B,)``, whether the sample had at least one real token of it (after
        modality dropout during training).
    """

    logits: Tensor
    modality_logits: dict[str, Tensor]
    modality_present: dict[str, Tensor]


class TimeEncoding(nn.Module):
    """Sinusoidal encoding of token times in seconds (Vaswani et al. 2017, section 3.5, with time for position).

    Half the channels are ``sin(2 pi t / P_i)``, half ``cos(2 pi t / P_i)``, with periods ``P_i``
    geometric from ``min_period_s`` to ``2 * max_time_s`` (as in whisper's ``sinusoids``, which
    concatenates sines and cosines).

    Parameters
    ----------
    d_model : int
        Output width (even).
    max_time_s : float
        Half the slowest period in seconds.
    min_period_s : float
        The fastest period in seconds.
    """

    def __init__(self, d_model: int, max_time_s: float, min_period_s: float):
        super().__init__()
        n = d_model // 2
        exponent = torch.arange(n, dtype=torch.float64) / max(n - 1, 1)
        periods = min_period_s * (2 * max_time_s / min_period_s) ** exponent
        # Not persistent: rebuilt from the config, never stored in checkpoints.
        self.register_buffer("angular", (2 * math.pi / periods).float(), persistent=False)

    def forward(self, times_s: Tensor) -> Tensor:
        """Encode times.

        Parameters
        ----------
        times_s : Tensor
            float ``(B, T)`` token times in seconds.

        Returns
        -------
        Tensor
            float32 ``(B, T, d_model)`` in [-1, 1].
        """
        phase = times_s.float()[..., None] * self.angular
        return torch.cat([phase.sin(), phase.cos()], dim=-1)


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean of the real tokens of each row, in float32.

    Parameters
    ----------
    tokens : Tensor
        ``(B, T, D)``.
    mask : Tensor
        bool ``(B, T)``, ``True`` = real token.

    Returns
    -------
    Tensor
        float32 ``(B, D)``; zeros in rows without real tokens.
    """
    weights = mask.to(torch.float32)[..., None]
    total = (tokens.float() * weights).sum(dim=1)
    return total / weights.sum(dim=1).clamp(min=1.0)


class FeatureStandardiser(nn.Module):
    """Per-dimension standardisation of one modality's input tokens, ``(x - mean) / std``.

    Frozen encoders' features differ by orders of magnitude in offset and spread from one dimension
    to the next, more so for random debug encoders; a per-token LayerNorm does not remove a
    dimension's offset across samples. Standardising with training-set statistics (as
    scikit-learn's ``StandardScaler``; cepstral mean and variance normalisation in speech) puts
    every dimension on one scale. The statistics are buffers, saved in the checkpoint, set once by
    :meth:`fit` before training; until then the module is the identity.

    Parameters
    ----------
    dim : int
        Feature width.
    """

    MIN_STD = 1e-3  # floor of a dimension's std, so that a constant dimension is not blown up

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, tokens: Tensor) -> None:
        """Set the statistics from real tokens.

        Parameters
        ----------
        tokens : Tensor
            float ``(N, dim)`` tokens (padding excluded), ``N >= 2``.

        Raises
        ------
        ValueError
            If ``tokens`` is not ``(N, dim)`` with ``N >= 2``.
        """
        if tokens.dim() != 2 or tokens.shape[1] != self.mean.shape[0] or tokens.shape[0] < 2:
            raise ValueError(
                f"FeatureStandardiser.fit needs (N >= 2, {self.mean.shape[0]}) tokens, got {tuple(tokens.shape)}"
            )
        tokens = tokens.double()
        self.mean.copy_(tokens.mean(dim=0))
        self.std.copy_(tokens.std(dim=0).clamp(min=self.MIN_STD))

    def forward(self, x: Tensor) -> Tensor:
        """Standardise ``x`` float ``(..., dim)``, computed in float32 and returned in ``x``'s dtype."""
        return ((x.float() - self.mean.float()) / self.std.float()).to(x.dtype)


class CrossModalDetector(nn.Module):
    """Cross-modal transformer that scores image, audio and video tokens as real or fake.

    Parameters
    ----------
    config : DetectorConfig, optional
        Dimensions and hyper-parameters (default: :class:`DetectorConfig`'s defaults, ~3 M parameters).

    Notes
    -----
    Inputs are frozen-encoder features; see :meth:`forward`. In training mode with
    ``config.modality_dropout > 0``, each present modality of each sample is dropped (masked) with
    that probability, always keeping at least one, so the model learns to judge any subset.
    """

    def __init__(self, config: DetectorConfig | None = None):
        super().__init__()
        self.config = config = config or DetectorConfig()
        d = config.d_model
        self.standardisers = None
        if config.standardise_inputs:
            self.standardisers = nn.ModuleDict({m: FeatureStandardiser(dim) for m, dim in config.input_dims.items()})
        self.input_norms = nn.ModuleDict({m: nn.LayerNorm(dim) for m, dim in config.input_dims.items()})
        self.projections = nn.ModuleDict({m: nn.Linear(dim, d) for m, dim in config.input_dims.items()})
        self.modality_embedding = nn.Parameter(torch.randn(len(MODALITIES), d) * 0.02)
        self.time_encoding = TimeEncoding(d, config.max_time_s, config.min_period_s)
        self.embed_dropout = nn.Dropout(config.dropout)
        self.self_layers = nn.ModuleDict(
            {
                m: nn.ModuleList(
                    SelfAttentionBlock(d, config.n_heads, config.dropout, config.ff_dim)
                    for _ in range(config.n_self_layers)
                )
                for m in MODALITIES
            }
        )
        self.self_norms = nn.ModuleDict({m: nn.LayerNorm(d) for m in MODALITIES})
        head_dim = 2 * d if config.modality_stats_pooling else d
        self.modality_heads = nn.ModuleDict({m: nn.Linear(head_dim, config.n_classes) for m in MODALITIES})
        self.cross_layers = nn.ModuleDict(
            {
                f"{q}_{k}": CrossModalAttention(d, config.n_heads, config.dropout, config.ff_dim)
                for q, k in config.cross_pairs
            }
        )
        self.final_norms = nn.ModuleDict({m: nn.LayerNorm(d) for m in MODALITIES})
        fused_dim = len(MODALITIES) * (d + 1)
        self.sync = None
        if config.sync_channels:
            self.sync = SyncCorrelation(config.image_dim, config.audio_dim, config.sync_channels,
                                        config.sync_max_lag_s, config.sync_lag_step_s, config.sync_kernel_s)
            fused_dim += self.sync.out_dim + 1
        self.classifier = nn.Sequential(
            nn.Linear(fused_dim, d),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(d, config.n_classes),
        )

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.modality_embedding.device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the parameters."""
        return self.modality_embedding.dtype

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _prepare(
        self, name: str, x: Tensor | None, mask: Tensor | None, times: Tensor | None, batch: int
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Validate one modality's inputs; return ``(tokens (B,T,D), mask (B,T) bool, times or None)``."""
        dim = self.config.input_dims[name]
        if x is None:
            if mask is not None or times is not None:
                raise ValueError(f"{name}_mask or {name}_times was given without {name} features")
            # One padding token: the modality is masked out everywhere, never seen as zeros.
            tokens = torch.zeros(batch, 1, dim, device=self.device, dtype=self.dtype)
            return tokens, torch.zeros(batch, 1, dtype=torch.bool, device=self.device), None
        if not torch.is_tensor(x):
            raise TypeError(f"{name} features must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} features must be floating point, got {x.dtype}")
        if x.dim() == 2:  # the seed's one vector per modality
            x = x[:, None, :]
        if x.dim() != 3 or x.shape[-1] != dim:
            raise ValueError(
                f"{name} features must have shape (B, {dim}) or (B, T, {dim}), got {tuple(x.shape)}"
            )
        if x.shape[0] != batch:
            raise ValueError(f"{name} features have batch size {x.shape[0]}, other inputs have {batch}")
        n_tokens = x.shape[1]
        if mask is None:
            mask = torch.ones(batch, n_tokens, dtype=torch.bool, device=x.device)
        elif mask.dim() == 1 and n_tokens == 1:
            mask = mask[:, None]
        if tuple(mask.shape) != (batch, n_tokens):
            raise ValueError(f"{name}_mask must have shape {(batch, n_tokens)}, got {tuple(mask.shape)}")
        if mask.dtype != torch.bool:
            raise TypeError(f"{name}_mask must be a bool tensor (True = real token), got {mask.dtype}")
        if times is not None:
            if times.dim() == 1 and n_tokens == 1:
                times = times[:, None]
            if tuple(times.shape) != (batch, n_tokens):
                raise ValueError(f"{name}_times must have shape {(batch, n_tokens)}, got {tuple(times.shape)}")
            times = times.to(self.device)
        return x.to(self.device, self.dtype), mask.to(self.device), times

    def _drop_modalities(self, masks: dict[str, Tensor]) -> dict[str, Tensor]:
        """Modality dropout: mask each present modality of each sample with probability p, keeping one."""
        present = torch.stack([masks[m].any(dim=1) for m in MODALITIES], dim=1)  # (B, M)
        kept = present & (torch.rand(present.shape, device=present.device) >= self.config.modality_dropout)
        lost_all = present.any(dim=1) & ~kept.any(dim=1)
        # For samples that lost everything, keep one present modality chosen at random.
        scores = torch.rand(present.shape, device=present.device).masked_fill(~present, -1.0)
        rescue = F.one_hot(scores.argmax(dim=1), len(MODALITIES)).bool() & lost_all[:, None]
        kept = kept | rescue
        return {m: masks[m] & kept[:, i, None] for i, m in enumerate(MODALITIES)}

    def forward(
        self,
        image: Tensor | None = None,
        audio: Tensor | None = None,
        video: Tensor | None = None,
        *,
        image_mask: Tensor | None = None,
        audio_mask: Tensor | None = None,
        video_mask: Tensor | None = None,
        image_times: Tensor | None = None,
        audio_times: Tensor | None = None,
        video_times: Tensor | None = None,
    ) -> DetectorOutput:
        """Score a batch.

        Parameters
        ----------
        image : Tensor, optional
            float ``(B, Ti, image_dim)`` per-frame image tokens, or ``(B, image_dim)`` for ``Ti = 1``.
        audio : Tensor, optional
            float ``(B, Ta, audio_dim)`` audio tokens, or ``(B, audio_dim)``.
        video : Tensor, optional
            float ``(B, Tv, video_dim)`` video segment tokens, or ``(B, video_dim)``.
        image_mask, audio_mask, video_mask : Tensor, optional
            bool ``(B, T)``, ``True`` = real token (default: all real). A row may be all ``False``
            (that modality is missing for that sample). ``None`` features mean the modality is
            missing for the whole batch.
        image_times, audio_times, video_times : Tensor, optional
            float ``(B, T)`` token times in seconds within the window. When omitted, no time
            encoding is added to that modality; train and score with the same convention.

        Returns
        -------
        DetectorOutput
            Fused logits, per-modality logits and presence, all float32 / bool.

        Raises
        ------
        ValueError
            When every modality is ``None``, when a sample has no real token in any modality, or
            when a shape, batch size or mask does not fit.
        TypeError
            When features are not floating-point tensors or a mask is not boolean.
        """
        inputs = {
            "image": (image, image_mask, image_times),
            "audio": (audio, audio_mask, audio_times),
            "video": (video, video_mask, video_times),
        }
        given = [x for x, _, _ in inputs.values() if x is not None]
        if not given:
            raise ValueError("CrossModalDetector needs at least one of image, audio or video features")
        batch = given[0].shape[0]

        tokens, masks, times = {}, {}, {}
        for name, (x, mask, t) in inputs.items():
            tokens[name], masks[name], times[name] = self._prepare(name, x, mask, t, batch)
            if self.standardisers is not None:
                tokens[name] = self.standardisers[name](tokens[name])
        if self.training and self.config.modality_dropout > 0:
            masks = self._drop_modalities(masks)
        present = {m: masks[m].any(dim=1) for m in MODALITIES}
        empty = ~torch.stack(list(present.values()), dim=1).any(dim=1)
        if bool(empty.any()):
            rows = empty.nonzero().flatten().tolist()
            raise ValueError(f"samples {rows} have no real token in any modality (all masks False)")

        states = {}
        for i, m in enumerate(MODALITIES):
            h = self.projections[m](self.input_norms[m](tokens[m])) + self.modality_embedding[i]
            if times[m] is not None:
                h = h + self.time_encoding(times[m]).to(h.dtype)
            h = self.embed_dropout(h)
            for block in self.self_layers[m]:
                h = block(h, masks[m])
            states[m] = h

        modality_logits = {}
        for m in MODALITIES:
            normed = self.self_norms[m](states[m])
            pooled = masked_mean(normed, masks[m])
            if self.config.modality_stats_pooling:
                spread = (masked_mean(normed.float() ** 2, masks[m]) - pooled**2).clamp(min=0.0)
                pooled = torch.cat([pooled, (spread + 1e-6).sqrt()], dim=1)
            logits = self.modality_heads[m](pooled.to(self.dtype)).float()
            modality_logits[m] = torch.where(present[m][:, None], logits, torch.zeros_like(logits))

        fused = dict(states)
        for q, k in self.config.cross_pairs:
            fused[q] = self.cross_layers[f"{q}_{k}"](fused[q], states[k], masks[k])

        features = []
        for m in MODALITIES:
            flag = present[m].to(torch.float32)[:, None]
            features.append(masked_mean(self.final_norms[m](fused[m]), masks[m]) * flag)
            features.append(flag)
        if self.sync is not None:
            sync, sync_present = self.sync(tokens["image"], masks["image"], times["image"],
                                           tokens["audio"], masks["audio"], times["audio"])
            features += [sync, sync_present.to(torch.float32)[:, None]]
        logits = self.classifier(torch.cat(features, dim=1).to(self.dtype)).float()
        if self.config.fuse_modality_logits:
            evidence = sum(modality_logits[m][:, 1] - modality_logits[m][:, 0] for m in MODALITIES)
            logits = logits + torch.stack([torch.zeros_like(evidence), evidence], dim=1)
        return DetectorOutput(logits=logits, modality_logits=modality_logits, modality_present=present)
