"""What a face detector returns (:class:`Detection`) and the downscaled copy it searches (:func:`downscale`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import cv2
import numpy as np

__all__ = ["Detection", "Detector", "downscale"]


class Detection(NamedTuple):
    """One face found by a detector, in pixels of the frame given to it.

    A plain tuple ``(x, y, w, h, score)`` is accepted wherever a Detection is (landmarks then
    ``None``).

    Attributes
    ----------
    x, y : float
        Top-left corner of the box in pixels.
    w, h : float
        Box width and height in pixels.
    score : float
        Confidence in the detector's own units (higher is more confident; YuNet: [0, 1]).
    landmarks : np.ndarray or None
        float32 ``(5, 2)`` ``(x, y)`` in pixels: right eye, left eye, nose tip, right mouth corner,
        left mouth corner (the subject's right and left); ``None`` when the detector gives none
        (Haar), in which case :func:`estimate_landmarks` is used downstream.
    """

    x: float
    y: float
    w: float
    h: float
    score: float
    landmarks: np.ndarray | None = None


Detector = Callable[[np.ndarray], Sequence[Detection]]
"""A callable ``frame -> detections``: ``frame`` uint8 RGB ``(H, W, 3)``; a ``name`` attribute
says which detector it is."""


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink an image so that its longest side is at most ``max_side`` (never enlarge).

    Parameters
    ----------
    image : np.ndarray
        ``(H, W)`` or ``(H, W, C)`` uint8.
    max_side : int
        Longest side in pixels of the result.

    Returns
    -------
    image : np.ndarray
        The shrunk copy (area interpolation), or ``image`` itself when already small enough.
    scale : float
        Result width over input width (<= 1); divide coordinates found in the copy by it to map
        them back.
    """
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        scale = image.shape[1] / w
    return image, scale
