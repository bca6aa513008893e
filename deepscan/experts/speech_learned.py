"""Learned spoofed-speech expert (cue ``synthetic_speech``), trained on the harvest.

A small head learned on ../shared/harvest/audio (real recordings beside the output of about 80
TTS, zero-shot TTS, voice-conversion, vocoder and codec systems; :mod:`deepscan.training.expert_speech`
trains it) over per-window features of one 4 s scanner window of 16 kHz mono audio:

``lfcc-stats`` (200 values, no weights needed)
    Linear-frequency cepstral coefficients (LFCC; Sahidullah, Kinnunen & Hanilci, "A comparison
    of features for synthetic speech detection", Interspeech 2015; the ASVspoof 2019/2021 baseline
    front end, Todisco et al., Interspeech 2019): 40 triangular filters spaced linearly over
    0-8 kHz on a 512-point FFT of 20 ms Hamming frames every 10 ms, log energies, orthonormal
    DCT-II, 40 coefficients. Summarised over the window: per-coefficient mean, standard
    deviation and standard deviation of the frame-to-frame difference (3 x 40), and the
    long-term log filterbank spectrum of the louder half of the frames with its mean over bands
    removed (gain-free spectral tilt, 40) and the standard deviation of those frames (40).
``aasist`` (161 values, needs ``AASIST.pth``)
    The 160-d embedding of the released AASIST (:mod:`deepscan.experts.aasist`, Jung et al.,
    ICASSP 2022) on the window tiled to 64,600 samples, and its spoof-minus-bona-fide logit.

The head: standardisation with the training set's mean and scale, then ``Linear -> tanh ->
Linear`` (a hidden layer of ``hidden`` units), or a plain logistic regression when
``hidden == 0``. The output logit is log-odds of "fake". Which features the shipped model uses,
its training files (by SHA-256, with licences), augmentations, seed and leave-generator-out
metrics are in the safetensors metadata (:func:`load_speech_expert` returns them as
:attr:`SpeechExpert.metadata`).

Tokens for the cross-modal detector: the head's penultimate activations (the hidden layer; the
standardised features for a logistic head) and the logit, one token per window.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ModelLoadingError
from . import tile_to

__all__ = [
    "CUE",
    "SAMPLE_RATE",
    "WINDOW_SAMPLES",
    "DEFAULT_WEIGHTS",
    "FEATURE_DIMS",
    "SpeechExpertConfig",
    "linear_filterbank",
    "dct_matrix",
    "LFCC",
    "lfcc_stats",
    "SpeechHead",
    "SpeechExpert",
    "window_of",
    "windows_of",
    "save_speech_expert",
    "load_speech_expert",
]

CUE = "synthetic_speech"
SAMPLE_RATE = 16_000  # Hz, the scanner's decoding rate
WINDOW_SAMPLES = 64_000  # one 4 s scanner window; shorter windows are tiled to this length
MIN_SAMPLES = 400  # 25 ms: less than this cannot be scored
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / f"{CUE}.safetensors"
METADATA_KEY = "deepscan"  # safetensors metadata entry holding the JSON config and provenance
FORMAT = "deepscan-synthetic-speech/1"

LFCC_FILTERS = 40
LFCC_COEFS = 40
FEATURE_DIMS = {"lfcc-stats": 5 * LFCC_FILTERS, "aasist": 161}


@dataclass(frozen=True)
class SpeechExpertConfig:
    """Architecture of a :class:`SpeechExpert` (stored in the weights' metadata).

    Attributes
    ----------
    features : tuple of str
        Feature blocks, concatenated in this order: ``"lfcc-stats"`` and/or ``"aasist"``.
    hidden : int
        Width of the head's hidden layer; 0 = logistic regression on the standardised features.
    """

    features: tuple[str, ...] = ("lfcc-stats",)
    hidden: int = 32

    def __post_init__(self):
        unknown = [f for f in self.features if f not in FEATURE_DIMS]
        if unknown or not self.features:
            raise ValueError(f"unknown or no feature blocks {list(self.features)}; known: {sorted(FEATURE_DIMS)}")
        if self.hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {self.hidden}")

    @property
    def input_dim(self) -> int:
        """int: length of the concatenated feature vector."""
        return sum(FEATURE_DIMS[f] for f in self.features)

    @property
    def needs_aasist(self) -> bool:
        """bool: whether AASIST's weights are needed at run time."""
        return "aasist" in self.features

    @property
    def token_dim(self) -> int:
        """int: width of one token, the penultimate activations plus the logit."""
        return (self.hidden or self.input_dim) + 1

    def as_dict(self) -> dict:
        """JSON-able form."""
        d = asdict(self)
        d["features"] = list(self.features)
        return d


# --------------------------------------------------------------------------------------------------
# LFCC front end
# --------------------------------------------------------------------------------------------------


def linear_filterbank(n_filters: int = LFCC_FILTERS, n_fft: int = 512, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular filters with edges spaced linearly from 0 Hz to the Nyquist frequency.

    Filter ``i`` rises from edge ``i`` to a peak of 1 at edge ``i + 1`` and falls to 0 at edge
    ``i + 2`` (``n_filters + 2`` equally spaced edges), the LFCC filterbank of Sahidullah et al.
    (Interspeech 2015).

    Parameters
    ----------
    n_filters : int
        Number of filters (>= 1).
    n_fft : int
        FFT size; the filters are laid on its ``n_fft // 2 + 1`` bins.
    sample_rate : int
        Hz.

    Returns
    -------
    np.ndarray
        float32 ``(n_filters, n_fft // 2 + 1)``.

    Raises
    ------
    ValueError
        ``n_filters`` < 1.
    """
    if n_filters < 1:
        raise ValueError(f"n_filters must be >= 1, got {n_filters}")
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = np.linspace(0.0, sample_rate / 2, n_filters + 2)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0.0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
    return fb.astype(np.float32)


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II matrix.

    Parameters
    ----------
    n_out : int
        Coefficients kept (rows), ``<= n_in``.
    n_in : int
        Input length.

    Returns
    -------
    np.ndarray
        float32 ``(n_out, n_in)``; ``m @ x`` is the DCT-II of ``x`` (``norm="ortho"``).
    """
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    m[0] /= math.sqrt(2.0)
    return m.astype(np.float32)


class LFCC(nn.Module):
    """Log linear-filterbank energies and LFCCs of 16 kHz audio (fixed, nothing learned).

    Frames of 20 ms (320 samples, Hamming window) every 10 ms (160 samples), centred (reflect
    padding), 512-point FFT, power spectrum, :func:`linear_filterbank`, natural log with a floor
    of 1e-8, DCT-II (orthonormal) keeping ``n_coefs`` coefficients.

    Parameters
    ----------
    n_filters : int
        Linear triangular filters over 0-8 kHz.
    n_coefs : int
        Cepstral coefficients kept (c0 included), ``<= n_filters``.
    """

    N_FFT, WIN, HOP, FLOOR = 512, 320, 160, 1e-8

    def __init__(self, n_filters: int = LFCC_FILTERS, n_coefs: int = LFCC_COEFS):
        super().__init__()
        self.register_buffer("fb", torch.from_numpy(linear_filterbank(n_filters, self.N_FFT)), persistent=False)
        self.register_buffer("window", torch.hamming_window(self.WIN, periodic=False), persistent=False)
        self.register_buffer("dct", torch.from_numpy(dct_matrix(n_coefs, n_filters)), persistent=False)

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute the features.

        Parameters
        ----------
        waveform : torch.Tensor
            float32 ``(B, S)`` at 16 kHz, ``S`` > 160.

        Returns
        -------
        log_fbank : torch.Tensor
            float32 ``(B, n_filters, 1 + S // 160)``, natural-log filterbank energies.
        lfcc : torch.Tensor
            float32 ``(B, n_coefs, 1 + S // 160)``.
        """
        spec = torch.stft(waveform.float(), self.N_FFT, self.HOP, self.WIN, self.window, center=True,
                          return_complex=True)
        power = spec.real.square() + spec.imag.square()  # (B, 257, T)
        log_fbank = torch.log(self.fb @ power + self.FLOOR)
        return log_fbank, self.dct @ log_fbank


_LFCC_CACHE: dict = {}


def lfcc_stats(windows: np.ndarray) -> np.ndarray:
    """The ``lfcc-stats`` feature vector of each window.

    Parameters
    ----------
    windows : np.ndarray
        float32 ``(N, S)`` at 16 kHz (``S`` = :data:`WINDOW_SAMPLES` as trained, see :func:`window_of`).

    Returns
    -------
    np.ndarray
        float32 ``(N, 200)``: LFCC mean (40), LFCC standard deviation (40), standard deviation of
        the LFCC frame differences (40), mean log filterbank energy over the louder half of the
        frames minus its mean over the 40 bands (40), and the standard deviation of those frames'
        log energies (40).
    """
    if "lfcc" not in _LFCC_CACHE:
        _LFCC_CACHE["lfcc"] = LFCC()
    with torch.inference_mode():
        log_fbank, c = _LFCC_CACHE["lfcc"](torch.as_tensor(np.asarray(windows, np.float32)))
    log_fbank, c = log_fbank.double(), c.double()
    energy = log_fbank.mean(dim=1)  # (N, T)
    loud = energy >= energy.quantile(0.5, dim=1, keepdim=True)  # louder half of the frames
    w = loud.unsqueeze(1).double()
    n = w.sum(dim=2)
    lt_mean = (log_fbank * w).sum(dim=2) / n
    lt_std = (((log_fbank - lt_mean.unsqueeze(2)) ** 2 * w).sum(dim=2) / n).sqrt()
    out = torch.cat(
        [c.mean(dim=2), c.std(dim=2), c.diff(dim=2).std(dim=2), lt_mean - lt_mean.mean(dim=1, keepdim=True), lt_std],
        dim=1,
    )
    return out.float().numpy()


# --------------------------------------------------------------------------------------------------
# Head and expert
# --------------------------------------------------------------------------------------------------


class SpeechHead(nn.Module):
    """Standardisation, then ``Linear -> tanh -> Linear`` (or logistic regression).

    Parameters
    ----------
    input_dim : int
        Feature vector length.
    hidden : int
        Hidden units; 0 = logistic regression.

    Notes
    -----
    ``mean`` and ``scale`` are buffers set from the training features (saved with the weights).
    """

    def __init__(self, input_dim: int, hidden: int = 32):
        super().__init__()
        self.register_buffer("mean", torch.zeros(input_dim))
        self.register_buffer("scale", torch.ones(input_dim))
        self.hidden = nn.Linear(input_dim, hidden) if hidden else None
        self.out = nn.Linear(hidden or input_dim, 1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score feature vectors.

        Parameters
        ----------
        features : torch.Tensor
            float32 ``(B, input_dim)``.

        Returns
        -------
        logit : torch.Tensor
            float32 ``(B,)``, log-odds of fake.
        penultimate : torch.Tensor
            float32 ``(B, hidden)`` (``(B, input_dim)``, the standardised features, without a
            hidden layer).
        """
        z = (features - self.mean) / self.scale
        if self.hidden is not None:
            z = torch.tanh(self.hidden(z))
        return self.out(z).squeeze(-1), z


def window_of(waveform: np.ndarray, length: int = WINDOW_SAMPLES) -> np.ndarray:
    """One window of this expert: :func:`deepscan.experts.tile_to` at :data:`WINDOW_SAMPLES`.

    ``(S,)`` mono 16 kHz samples in, float32 ``(length,)`` out; ``ValueError`` for a waveform that
    is not 1-D or is empty.
    """
    return tile_to(waveform, length)


def windows_of(waveform: np.ndarray) -> list[np.ndarray]:
    """Cut a file's audio into the scanner's 4 s windows, as a file is scored.

    Consecutive windows of :data:`WINDOW_SAMPLES`; a last partial window is kept when it holds
    at least 2 s or is the only one (audio shorter than 4 s), else dropped.

    Parameters
    ----------
    waveform : np.ndarray
        float32 ``(S,)`` mono 16 kHz, ``S >= 1``.

    Returns
    -------
    list of np.ndarray
        float32 ``(<= 64000,)`` each, at least one.
    """
    wave = np.asarray(waveform, dtype=np.float32)
    full = wave.size // WINDOW_SAMPLES
    out = [wave[i * WINDOW_SAMPLES:(i + 1) * WINDOW_SAMPLES] for i in range(full)]
    tail = wave[full * WINDOW_SAMPLES:]
    if tail.size and (tail.size >= WINDOW_SAMPLES // 2 or full == 0):
        out.append(tail)
    return out


class SpeechExpert(nn.Module):
    """The learned speech expert: window features and a :class:`SpeechHead`.

    Parameters
    ----------
    config : SpeechExpertConfig
        Feature blocks and head width.
    aasist : deepscan.experts.aasist.AASIST, optional
        The released AASIST in eval mode; required when ``config.needs_aasist``.
    metadata : dict, optional
        Provenance and metrics (what :func:`load_speech_expert` read).

    Raises
    ------
    ValueError
        The config needs AASIST and none is given.
    """

    def __init__(self, config: SpeechExpertConfig = SpeechExpertConfig(), aasist=None, metadata: dict | None = None):
        super().__init__()
        if config.needs_aasist and aasist is None:
            raise ValueError("this speech expert uses AASIST features: pass the loaded AASIST model")
        self.config = config
        self.aasist = aasist
        self.head = SpeechHead(config.input_dim, config.hidden)
        self.metadata = dict(metadata or {})

    @torch.inference_mode()
    def features(self, windows: np.ndarray) -> np.ndarray:
        """Feature vectors of full-length windows.

        Parameters
        ----------
        windows : np.ndarray
            float32 ``(N, WINDOW_SAMPLES)`` at 16 kHz, raw amplitude (not normalised).

        Returns
        -------
        np.ndarray
            float32 ``(N, config.input_dim)``.
        """
        windows = np.asarray(windows, np.float32)
        parts = []
        for name in self.config.features:
            if name == "lfcc-stats":
                parts.append(lfcc_stats(windows))
            else:
                from .aasist import window_input

                x = torch.from_numpy(np.stack([window_input(w) for w in windows]))
                logits, emb = self.aasist(x)
                parts.append(torch.cat([emb, (logits[:, 0] - logits[:, 1])[:, None]], dim=1).float().numpy())
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)

    @torch.inference_mode()
    def score_features(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Head output for precomputed feature vectors.

        Parameters
        ----------
        features : np.ndarray
            float32 ``(N, config.input_dim)``.

        Returns
        -------
        logit : np.ndarray
            float32 ``(N,)``, log-odds of fake.
        tokens : np.ndarray
            float32 ``(N, config.token_dim)``: penultimate activations, then the logit.
        """
        logit, z = self.head(torch.as_tensor(np.asarray(features, np.float32)))
        return logit.numpy(), torch.cat([z, logit[:, None]], dim=1).numpy()

    def score(self, waveform: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Score one scanner window.

        Parameters
        ----------
        waveform : np.ndarray
            float32 ``(S,)`` mono at 16 kHz, raw amplitude in [-1, 1] as
            :func:`deepscan.media.load_waveform` decodes it, normally one 4 s window
            (``S`` = 64,000); shorter audio is tiled to 4 s, longer audio is cut to its first 4 s
            (:func:`window_of`). Not normalised, silence not trimmed.

        Returns
        -------
        p_fake : float
            Probability in [0, 1] that the speech is synthetic (the head's sigmoid; calibrated only
            on the harvest's training folds, not on real-world data).
        tokens : np.ndarray
            float32 ``(1, config.token_dim)``: the head's penultimate activations and its logit.
        times : np.ndarray
            float32 ``(1,)``: the token's time in seconds from the window start (its middle).

        Raises
        ------
        ValueError
            ``waveform`` is not 1-D, or has fewer than 400 samples (25 ms), or is not finite.
        """
        wave = np.asarray(waveform, dtype=np.float32)
        if wave.ndim != 1 or wave.size < MIN_SAMPLES:
            raise ValueError(f"expected a 1-D 16 kHz waveform of >= {MIN_SAMPLES} samples, got shape {wave.shape}")
        if not np.isfinite(wave).all():
            raise ValueError("waveform holds NaN or infinite samples")
        logit, tokens = self.score_features(self.features(window_of(wave)[None]))
        p_fake = float(1.0 / (1.0 + math.exp(-float(logit[0]))))
        duration = min(wave.size, WINDOW_SAMPLES) / SAMPLE_RATE
        return p_fake, tokens.astype(np.float32), np.array([duration / 2], dtype=np.float32)

    def score_file(self, waveform: np.ndarray) -> float:
        """Mean P(fake) over a file's 4 s windows (:func:`windows_of`), as the evaluation scores files.

        Parameters
        ----------
        waveform : np.ndarray
            float32 ``(S,)`` mono 16 kHz, ``S >= 400``.

        Returns
        -------
        float
            In [0, 1].
        """
        feats = self.features(np.stack([window_of(w) for w in windows_of(waveform)]))
        logit, _ = self.score_features(feats)
        return float(np.mean(1.0 / (1.0 + np.exp(-logit.astype(np.float64)))))


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def save_speech_expert(expert: SpeechExpert, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write the head's tensors and a JSON metadata entry to a safetensors file.

    Parameters
    ----------
    expert : SpeechExpert
        The trained expert (only its head is written; AASIST's weights never are).
    path : str or os.PathLike
        Output file.
    metadata : dict, optional
        JSON-able provenance merged over ``expert.metadata`` (config and format are added).

    Returns
    -------
    Path
        The file written.
    """
    from safetensors.torch import save_file

    meta = {**expert.metadata, **(metadata or {}), "format": FORMAT, "cue": CUE, "config": expert.config.as_dict()}
    tensors = {k: v.detach().float().contiguous() for k, v in expert.head.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})
    return path


def load_speech_expert(path: str | os.PathLike | None = None, aasist_path: str | os.PathLike | None = None) -> SpeechExpert:
    """Load a trained speech expert.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A safetensors file written by :func:`save_speech_expert`; default :data:`DEFAULT_WEIGHTS`,
        the file shipped inside the package.
    aasist_path : str or os.PathLike, optional
        ``AASIST.pth``, needed only when the model's features include ``"aasist"`` (the scanner
        resolves it with ``deepscan.weights.model_path("aasist")``).

    Returns
    -------
    SpeechExpert
        In eval mode on the CPU; ``.metadata`` holds the config and provenance.

    Raises
    ------
    ModelLoadingError
        The file is missing, not a safetensors file, not a speech expert, or its tensors do not
        match its config; or it needs AASIST and ``aasist_path`` is not given or does not load.
    """
    from deepscan.weights import read_weights

    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    metadata, tensors = read_weights(path, "speech expert")
    raw = metadata.get(METADATA_KEY)
    try:
        meta = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise ModelLoadingError("speech expert metadata is not JSON", path) from exc
    if meta.get("format") != FORMAT:
        raise ModelLoadingError(f"not a {CUE} expert file (format {meta.get('format')!r}, expected {FORMAT!r})", path)
    try:
        cfg = meta["config"]
        config = SpeechExpertConfig(tuple(cfg["features"]), int(cfg["hidden"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadingError(f"speech expert config unreadable: {exc}", path) from exc
    aasist = None
    if config.needs_aasist:
        if aasist_path is None:
            raise ModelLoadingError("this speech expert uses AASIST features: AASIST.pth is needed (aasist_path)", path)
        from .aasist import load_aasist

        aasist = load_aasist(aasist_path, "AASIST")
    expert = SpeechExpert(config, aasist, meta)
    try:
        expert.head.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ModelLoadingError(f"speech expert tensors do not match its config: {str(exc).splitlines()[0]}", path) from exc
    return expert.eval()
