"""Experts: published detectors with real weights and training-free measurements.

Each expert module ports one published method from its paper (our own code, never the upstream
repository's) and gives, per window, tokens for the cross-modal detector and its own score, reported
as a named **cue** with the expert's name, weights hash and training domain. A cue that does not
apply (no face, no speech, no audio stream) is absent with its reason, never a 0.5.
"""

from __future__ import annotations

import math

import numpy as np

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


def check_rgb_frame(frame) -> np.ndarray:
    """Refuse anything but a uint8 ``(H, W, 3)`` frame with ``H, W >= 1``, as the image experts take.

    Parameters
    ----------
    frame : object
        What the caller was given.

    Returns
    -------
    np.ndarray
        ``frame`` itself.

    Raises
    ------
    TypeError
        If ``frame`` is not a uint8 numpy array.
    ValueError
        If it is not ``(H, W, 3)`` with ``H, W >= 1``.
    """
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise TypeError(f"frame must be a uint8 RGB numpy array, got {getattr(frame, 'dtype', type(frame))}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"frame must have shape (H, W, 3), got {frame.shape}")
    return frame
