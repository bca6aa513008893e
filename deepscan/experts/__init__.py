"""Experts: published detectors with real weights and training-free measurements.

Each expert module ports one published method from its paper (our own code, never the upstream
repository's) and gives, per window, tokens for the cross-modal detector and its own score, reported
as a named **cue** with the expert's name, weights hash and training domain. A cue that does not
apply (no face, no speech, no audio stream) is absent with its reason, never a 0.5.
"""

from __future__ import annotations

import math

import numpy as np

from deepscan.media import check_rgb_frame  # noqa: F401  (re-exported: the image experts check frames with it)

__all__ = ["mono_waveform", "tile_to", "check_rgb_frame"]


def mono_waveform(waveform) -> np.ndarray:
    """Refuse anything but a non-empty 1-D waveform, as the audio experts take; float32.

    Parameters
    ----------
    waveform : array-like
        ``(S,)`` mono samples.

    Returns
    -------
    np.ndarray
        float32 ``(S,)`` (the input itself when it already is).

    Raises
    ------
    ValueError
        ``waveform`` is not 1-D or is empty.
    """
    wave = np.asarray(waveform, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"expected a non-empty 1-D waveform, got shape {wave.shape}")
    return wave


def tile_to(waveform: np.ndarray, length: int) -> np.ndarray:
    """Fit audio to a fixed length: repeated from its start when shorter, cut when longer.

    The input rule of AASIST (ASVspoof evaluation) and of the learned speech expert's windows.

    Parameters
    ----------
    waveform : np.ndarray
        ``(S,)`` mono samples, ``S >= 1``.
    length : int
        Samples wanted.

    Returns
    -------
    np.ndarray
        float32 ``(length,)``.

    Raises
    ------
    ValueError
        ``waveform`` is not 1-D or is empty.
    """
    wave = mono_waveform(waveform)
    if wave.size >= length:
        return wave[:length].copy()
    return np.tile(wave, math.ceil(length / wave.size))[:length]
