"""Audio-visual synchrony features: learned mouth and voice channels, correlated over a lag search.

SyncNet (Chung & Zisserman, "Out of time: automated lip sync in the wild", ACCV Workshops 2016,
sec. 3-4) judges lip sync by comparing audio and mouth features over a range of offsets: in sync,
the match is best at offset 0. :class:`SyncCorrelation` is that inductive bias in a few parameters:

1. each window's image tokens (one per frame) and audio tokens are centred over time (what stays
   constant in a window, the identity, carries no timing) and projected to ``C`` learned channels;
2. the audio channels are resampled onto the frame times shifted by each lag ``l`` (triangular
   interpolation over the audio token times, a kernel of half-width ``kernel_s``);
3. per channel and lag, the Pearson correlation over the frames where both are defined.

The output ``(B, C * L)`` correlations in [-1, 1] go to the detector's fused head, which can compare
the lag-0 correlation with the others. Times are seconds within the window, so a variable frame rate
or a different audio token rate changes nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["MIN_SYNC_FRAMES", "SyncCorrelation", "sync_lags"]

MIN_SYNC_FRAMES = 4  # frames with both streams defined below which a correlation is not computed
EPS = 1e-6


def sync_lags(max_lag_s: float, step_s: float) -> Tensor:
    """Lags searched, in seconds: ``-max_lag_s .. max_lag_s`` in steps of ``step_s`` (0 included).

    Parameters
    ----------
    max_lag_s : float
        Largest lag in seconds (> 0).
    step_s : float
        Lag step in seconds (> 0).

    Returns
    -------
    Tensor
        float32 ``(L,)`` with ``L = 2 * floor(max_lag_s / step_s) + 1``.
    """
    n = int(max_lag_s / step_s + 1e-9)
    return torch.arange(-n, n + 1, dtype=torch.float32) * float(step_s)


def _centre(x: Tensor, mask: Tensor) -> Tensor:
    w = mask.to(x.dtype)[..., None]
    mean = (x * w).sum(dim=1, keepdim=True) / w.sum(dim=1, keepdim=True).clamp(min=1.0)
    return (x - mean) * w


class SyncCorrelation(nn.Module):
    """Correlation of learned image and audio channels at several lags (see the module docstring).

    Parameters
    ----------
    image_dim, audio_dim : int
        Input token widths.
    channels : int
        Learned channels ``C`` per stream.
    max_lag_s, lag_step_s : float
        Lag search in seconds (:func:`sync_lags`).
    kernel_s : float
        Half-width in seconds of the triangular kernel that resamples audio tokens onto frame times.

    Attributes
    ----------
    out_dim : int
        ``C * L``.
    """

    def __init__(self, image_dim: int, audio_dim: int, channels: int, max_lag_s: float, lag_step_s: float,
                 kernel_s: float):
        super().__init__()
        self.image_norm = nn.LayerNorm(image_dim)
        self.audio_norm = nn.LayerNorm(audio_dim)
        self.image_proj = nn.Linear(image_dim, channels, bias=False)
        self.audio_proj = nn.Linear(audio_dim, channels, bias=False)
        self.kernel_s = float(kernel_s)
        # Not persistent: rebuilt from the config.
        self.register_buffer("lags", sync_lags(max_lag_s, lag_step_s), persistent=False)
        self.channels = int(channels)
        self.out_dim = self.channels * self.lags.numel()

    def forward(self, image: Tensor, image_mask: Tensor, image_times: Tensor | None, audio: Tensor,
                audio_mask: Tensor, audio_times: Tensor | None) -> tuple[Tensor, Tensor]:
        """Correlate.

        Parameters
        ----------
        image : Tensor
            float ``(B, Ti, image_dim)`` per-frame tokens.
        image_mask : Tensor
            bool ``(B, Ti)``, True = real token.
        image_times : Tensor or None
            float ``(B, Ti)`` seconds; None gives no sync for the batch.
        audio : Tensor
            float ``(B, Ta, audio_dim)``.
        audio_mask : Tensor
            bool ``(B, Ta)``.
        audio_times : Tensor or None
            float ``(B, Ta)`` seconds.

        Returns
        -------
        features : Tensor
            float32 ``(B, C * L)`` correlations (channel-major), 0 where not defined.
        present : Tensor
            bool ``(B,)``: both streams present with at least :data:`MIN_SYNC_FRAMES` frames that
            have audio around them at lag 0.
        """
        batch = image.shape[0]
        if image_times is None or audio_times is None:
            return (torch.zeros(batch, self.out_dim, device=image.device),
                    torch.zeros(batch, dtype=torch.bool, device=image.device))
        zi = self.image_proj(_centre(self.image_norm(image.float()), image_mask))  # (B, Ti, C)
        za = self.audio_proj(_centre(self.audio_norm(audio.float()), audio_mask))  # (B, Ta, C)
        target = image_times.float()[:, None, :] + self.lags[None, :, None]  # (B, L, Ti)
        distance = (target[..., None] - audio_times.float()[:, None, None, :]).abs()  # (B, L, Ti, Ta)
        weight = torch.relu(1.0 - distance / self.kernel_s) * audio_mask[:, None, None, :].float()
        total = weight.sum(dim=-1)
        valid = (total > EPS) & image_mask[:, None, :]  # (B, L, Ti)
        resampled = weight @ za[:, None] / total.clamp(min=EPS)[..., None]  # (B, L, Ti, C)
        v = valid.float()[..., None]
        count = v.sum(dim=2).clamp(min=1.0)  # (B, L, 1)
        x = zi[:, None] * v
        y = resampled * v
        x = (x - x.sum(dim=2, keepdim=True) / count[..., None]) * v
        y = (y - y.sum(dim=2, keepdim=True) / count[..., None]) * v
        corr = (x * y).sum(dim=2) / torch.sqrt((x * x).sum(dim=2) * (y * y).sum(dim=2) + EPS)  # (B, L, C)
        enough = valid.sum(dim=2) >= MIN_SYNC_FRAMES  # (B, L)
        corr = corr * enough[..., None].float()
        present = enough[:, self.lags.numel() // 2] & image_mask.any(dim=1) & audio_mask.any(dim=1)
        features = corr.transpose(1, 2).reshape(batch, -1) * present[:, None].float()
        return features, present
