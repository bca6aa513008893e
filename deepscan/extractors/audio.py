"""Audio encoder: wav2vec 2.0 hidden states, pooled to a fixed token rate, with token times.

wav2vec 2.0 (Baevski et al., "wav2vec 2.0: A Framework for Self-Supervised Learning of Speech
Representations", NeurIPS 2020, sec. 2) turns a 16 kHz waveform into frames with a 7-layer
convolutional feature encoder of total stride 320 samples (20 ms, ~50 Hz) and receptive field 400
samples (25 ms), followed by a Transformer. We take the last hidden states ``(F, 768)`` and average
every :data:`AUDIO_POOL_FRAMES` = 4 consecutive frames, giving tokens at
:data:`AUDIO_TOKEN_RATE` = 12.5 Hz (80 ms each). Why 12.5 Hz: a 4 s window then has 50 audio tokens
against 32 video frames at 8 fps, keeping cross-attention cheap, while 80 ms still resolves
phoneme-scale events (phones last ~50-200 ms) and audio-visual offsets of a couple of video frames.

The waveform is normalised to zero mean and unit variance first, as ``Wav2Vec2FeatureExtractor``
does with ``do_normalize=True`` (``(x - mean) / sqrt(var + 1e-7)``).

wav2vec2-base normalises its first convolution with a GroupNorm over the whole time axis, so
zero-padding a shorter waveform in a batch would change its features. Batches are therefore formed
only from waveforms of equal length (all full windows are), and a waveform's features never depend on
what it was batched with.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import AudioTooShortError
from ..media import MIN_AUDIO_SAMPLES, SAMPLE_RATE
from ..precision import autocast_context, prepare_model, weights_dtype

__all__ = [
    "AUDIO_POOL_FRAMES",
    "AUDIO_TOKEN_RATE",
    "AUDIO_BATCH_SIZE",
    "NORM_EPS",
    "AudioEncoder",
    "as_waveform",
    "pool_frames",
]

AUDIO_POOL_FRAMES = 4  # wav2vec2 frames (20 ms each) averaged into one token
AUDIO_TOKEN_RATE = 50.0 / AUDIO_POOL_FRAMES  # Hz, 12.5 tokens per second for wav2vec2-base
AUDIO_BATCH_SIZE = 8  # equal-length waveforms per forward pass
NORM_EPS = 1e-7  # as Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
INT8_KEEP_FP32 = ("feature_projection",)  # Linear layers left in fp32 at int8 (see deepscan.precision)


def as_waveform(waveform) -> torch.Tensor:
    """Check and convert a mono waveform to a float32 CPU tensor ``(S,)``.

    Parameters
    ----------
    waveform : np.ndarray or torch.Tensor
        Floating point mono samples ``(S,)`` at 16 kHz.

    Returns
    -------
    torch.Tensor
        float32 ``(S,)``.

    Raises
    ------
    TypeError
        If the input is not a numpy array or tensor of floating point samples.
    ValueError
        If it is not one-dimensional or holds NaN or infinite samples.
    """
    if isinstance(waveform, np.ndarray):
        if not np.issubdtype(waveform.dtype, np.floating):
            raise TypeError(f"waveform must hold floating point samples, got dtype {waveform.dtype}")
        waveform = torch.from_numpy(np.ascontiguousarray(waveform))
    elif not isinstance(waveform, torch.Tensor):
        raise TypeError(f"waveform must be a numpy array or torch tensor, got {type(waveform).__name__}")
    if not waveform.is_floating_point():
        raise TypeError(f"waveform must hold floating point samples, got dtype {waveform.dtype}")
    if waveform.ndim != 1:
        raise ValueError(f"waveform must be mono with shape (S,), got {tuple(waveform.shape)}")
    waveform = waveform.detach().cpu().float()
    if not torch.isfinite(waveform).all():
        raise ValueError("waveform holds NaN or infinite samples")
    return waveform


def pool_frames(frames: torch.Tensor, times_s: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average groups of ``size`` consecutive frames; a shorter last group is averaged as it is.

    Parameters
    ----------
    frames : torch.Tensor
        ``(F, D)``.
    times_s : torch.Tensor
        ``(F,)`` frame centres in seconds.
    size : int
        Frames per token.

    Returns
    -------
    tokens : torch.Tensor
        ``(ceil(F / size), D)``.
    token_times_s : torch.Tensor
        ``(ceil(F / size),)`` mean of the frame centres of each group, in seconds.
    """
    count = frames.shape[0]
    groups = -(-count // size)
    index = torch.arange(count) // size
    weight = torch.zeros(groups).index_add_(0, index, torch.ones(count)).unsqueeze(1)
    tokens = torch.zeros(groups, frames.shape[1]).index_add_(0, index, frames) / weight
    token_times = torch.zeros(groups, dtype=times_s.dtype).index_add_(0, index, times_s) / weight[:, 0]
    return tokens, token_times


class AudioEncoder:
    """Frozen wav2vec 2.0 encoder: float32 waveform ``(S,)`` at 16 kHz -> tokens ``(Ta, D)`` + times.

    Parameters
    ----------
    model : transformers.Wav2Vec2Model
        Frozen here: ``eval()``, ``requires_grad_(False)``, moved to ``device``.
    device : str or torch.device
        Where the model runs.
    dtype : torch.dtype
        Compute dtype (``torch.float32``; ``torch.bfloat16``, with the weights cast in place where
        the CPU has native bf16, else via autocast; or :data:`deepscan.precision.INT8`, which
        converts the model's Linear layers in place); outputs are float32.
    pool : int
        Frames averaged per token (:data:`AUDIO_POOL_FRAMES`).
    batch_size : int
        Equal-length waveforms per forward pass in :meth:`encode_batch`.

    Attributes
    ----------
    dim : int
        Token size ``D`` (``config.hidden_size``, 768 for wav2vec2-base).
    hop : int
        Samples between frames (product of ``config.conv_stride``, 320 = 20 ms).
    receptive_field : int
        Samples seen by one frame (400 = 25 ms for wav2vec2-base); shorter input is refused.
    """

    def __init__(
        self,
        model,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        pool: int = AUDIO_POOL_FRAMES,
        batch_size: int = AUDIO_BATCH_SIZE,
    ):
        if pool < 1 or batch_size < 1:
            raise ValueError(f"pool and batch_size must be >= 1, got {pool} and {batch_size}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.pool = int(pool)
        self.batch_size = int(batch_size)
        self.model = prepare_model(model.eval().requires_grad_(False).to(self.device), dtype, INT8_KEEP_FP32)
        self.weights_dtype = weights_dtype(self.model)  # bf16 where cast once (deepscan.precision)
        config = model.config
        self.dim = int(config.hidden_size)
        self.hop = int(np.prod(config.conv_stride))
        field, jump = 1, 1
        for kernel, stride in zip(config.conv_kernel, config.conv_stride):
            field += (kernel - 1) * jump
            jump *= stride
        self.receptive_field = field

    @property
    def frame_rate(self) -> float:
        """Native frame rate in Hz (``SAMPLE_RATE / hop``, 50 Hz for wav2vec2-base)."""
        return SAMPLE_RATE / self.hop

    @property
    def token_rate(self) -> float:
        """Token rate in Hz after pooling (12.5 Hz for wav2vec2-base)."""
        return self.frame_rate / self.pool

    @property
    def config(self) -> dict:
        """Preprocessing and pooling parameters that change the features (JSON-ready)."""
        return {
            "sample_rate": SAMPLE_RATE,
            "normalize": "zero-mean-unit-var",
            "frame_rate_hz": self.frame_rate,
            "receptive_field_samples": self.receptive_field,
            "pool_frames": self.pool,
            "token_rate_hz": self.token_rate,
            # the debug encoder names its own build, so its features are keyed apart from wav2vec2's
            "output": getattr(self.model, "deepscan_output", "last_hidden_state"),
        }

    def num_frames(self, samples: int) -> int:
        """Number of wav2vec2 frames for ``samples`` input samples (0 below the receptive field)."""
        return 0 if samples < self.receptive_field else (samples - self.receptive_field) // self.hop + 1

    def frame_times(self, count: int) -> torch.Tensor:
        """Centres of the first ``count`` frames in seconds: ``(i * hop + receptive_field / 2) / 16000``."""
        return (torch.arange(count, dtype=torch.float64) * self.hop + self.receptive_field / 2) / SAMPLE_RATE

    @staticmethod
    def normalize(waveforms: torch.Tensor) -> torch.Tensor:
        """Zero-mean, unit-variance normalisation per row, as ``Wav2Vec2FeatureExtractor``.

        Parameters
        ----------
        waveforms : torch.Tensor
            float32 ``(B, S)``.

        Returns
        -------
        torch.Tensor
            float32 ``(B, S)``.
        """
        mean = waveforms.mean(dim=1, keepdim=True)
        var = waveforms.var(dim=1, unbiased=False, keepdim=True)
        return (waveforms - mean) / torch.sqrt(var + NORM_EPS)

    def _check_length(self, samples: int) -> None:
        if 0 < samples < self.receptive_field:
            raise AudioTooShortError(
                f"audio of {samples} samples ({samples / SAMPLE_RATE * 1000:.1f} ms) is shorter than "
                f"the encoder's receptive field of {self.receptive_field} samples "
                f"({self.receptive_field / SAMPLE_RATE * 1000:.0f} ms at {SAMPLE_RATE} Hz)"
            )

    def _empty(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros((0, self.dim)), torch.zeros((0,), dtype=torch.float32)

    @torch.inference_mode()
    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        x = self.normalize(batch).to(self.device, self.weights_dtype)
        with autocast_context(self.dtype, self.device, self.weights_dtype):
            hidden = self.model(x).last_hidden_state
        return hidden.float().cpu()

    def __call__(self, waveform) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode one mono waveform.

        Parameters
        ----------
        waveform : np.ndarray or torch.Tensor
            float ``(S,)`` at 16 kHz. ``S = 0`` (no audio) gives zero tokens.

        Returns
        -------
        tokens : torch.Tensor
            float32 ``(Ta, D)``, ``Ta = ceil(F / pool)`` with ``F = (S - 400) // 320 + 1`` frames
            for wav2vec2-base (``Ta = 50`` for 4 s).
        times_s : torch.Tensor
            float32 ``(Ta,)`` token centres in seconds from the start of the waveform.

        Raises
        ------
        AudioTooShortError
            If ``0 < S < receptive_field`` (400 samples, 25 ms).
        TypeError, ValueError
            If the waveform is not a finite floating point ``(S,)`` array (see :func:`as_waveform`).
        """
        return self.encode_batch([waveform])[0]

    def encode_batch(self, waveforms) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Encode many waveforms, batching those of equal length; results keep the input order.

        Parameters
        ----------
        waveforms : sequence of np.ndarray or torch.Tensor
            Each float ``(S_i,)`` at 16 kHz, or a float ``(B, S)`` array of equal-length rows.

        Returns
        -------
        list of (torch.Tensor, torch.Tensor)
            ``(tokens (Ta_i, D), times_s (Ta_i,))`` per waveform, as :meth:`__call__`.

        Raises
        ------
        AudioTooShortError
            If any waveform has ``0 < S < receptive_field``.
        TypeError, ValueError
            If any waveform is not a finite floating point ``(S,)`` array.
        """
        waves = [as_waveform(w) for w in waveforms]
        for w in waves:
            self._check_length(w.shape[0])
        results: list = [None] * len(waves)
        by_length: dict[int, list[int]] = {}
        for i, w in enumerate(waves):
            if w.shape[0] == 0:
                results[i] = self._empty()
            else:
                by_length.setdefault(w.shape[0], []).append(i)
        for length, indices in by_length.items():
            times = self.frame_times(self.num_frames(length))
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                hidden = self._forward(torch.stack([waves[i] for i in chunk]))
                for row, i in enumerate(chunk):
                    frames = hidden[row, : times.shape[0]]
                    tokens, token_times = pool_frames(frames, times[: frames.shape[0]], self.pool)
                    results[i] = (tokens, token_times.float())
        return results
