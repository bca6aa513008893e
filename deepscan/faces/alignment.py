"""Aligned crops of a face from its box and five landmarks: the CLIP crop, the Meso-4 crop, the mouth.

Parts of a crop outside the frame are padded with black (zeros) rather than replicated edges, so
that no smeared texture is invented; shrinking uses area interpolation, enlarging bicubic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "CROP_SIZE",
    "CROP_MARGIN",
    "MESO_CROP_SIZE",
    "MESO_CROP_SCALE",
    "MOUTH_CROP_SIZE",
    "full_frame_crop",
    "aligned_crop",
    "meso_crop",
    "mouth_region",
]

CROP_SIZE = 224  # px, side of a face crop (CLIP ViT-B/32 input size)
CROP_MARGIN = 0.25  # fraction of the face box side added on each side of the crop
MESO_CROP_SIZE = 256  # px, side of a Meso-4 crop (deepscan.experts.meso.MESO_INPUT_SIZE)
# Side of the Meso-4 crop in units of max(eye distance, eye-to-mouth distance): the README of the
# shared Meso-4 weights gives 2.2 x 1.3 (a face box of 2.2 such units, grown by 30 %).
MESO_CROP_SCALE = 2.2 * 1.3
MOUTH_CROP_SIZE = 48  # px, side of a grayscale mouth crop
# Side of the mouth crop: the larger of MOUTH_WIDTH_SCALE x the mouth-corner distance and
# MOUTH_NOSE_SCALE x the nose-to-mouth-midpoint distance, so that an open mouth (corners closer,
# lips further from the nose) still fits with the chin's top and the upper lip's philtrum.
MOUTH_WIDTH_SCALE = 1.5
MOUTH_NOSE_SCALE = 2.0


def full_frame_crop(frame: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The no-face fallback: the centre square of a frame, resized.

    Parameters
    ----------
    frame : np.ndarray
        uint8 RGB ``(H, W, 3)``, any size from 1x1.
    size : int
        Output side in pixels.

    Returns
    -------
    np.ndarray
        uint8 RGB ``(size, size, 3)``.

    Notes
    -----
    Centre-cropping (rather than letterboxing) matches CLIP's own preprocessing (resize shortest
    side, centre crop; Radford et al., ICML 2021).
    """
    h, w = frame.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return _resize(frame[y0 : y0 + s, x0 : x0 + s], size)


def aligned_crop(
    frame: np.ndarray,
    centre: Sequence[float],
    side: float,
    down: Sequence[float],
    size: int,
) -> np.ndarray:
    """Cut a rotated square from a frame and resize it, black outside the frame.

    Parameters
    ----------
    frame : np.ndarray
        uint8 ``(H, W, 3)`` or ``(H, W)``.
    centre : sequence of float
        ``(x, y)`` centre of the square in pixels of the frame.
    side : float
        Side of the square in pixels of the frame (> 0).
    down : sequence of float
        ``(dx, dy)`` direction in the frame that becomes the crop's downward axis (need not be
        unit length; ``(0, 1)`` is an upright crop).
    size : int
        Output side in pixels.

    Returns
    -------
    np.ndarray
        uint8 ``(size, size, 3)`` or ``(size, size)``. Pixel ``(u, v)`` of the output samples the
        frame at ``centre + k * ((u - (size-1)/2) * right + (v - (size-1)/2) * down_unit)`` with
        ``k = side / size`` and ``right`` = ``down_unit`` turned 90 degrees counter-clockwise
        on screen.

    Raises
    ------
    ValueError
        If ``side`` is not positive and finite or ``down`` is zero or not finite.

    Notes
    -----
    When the square is larger than ``size`` it is first rotated out at the frame's resolution
    (bilinear) and then shrunk with area interpolation, so that shrinking averages pixels instead
    of aliasing; otherwise it is sampled directly with bicubic interpolation.
    """
    dx, dy = float(down[0]), float(down[1])
    norm = math.hypot(dx, dy)
    if not (math.isfinite(side) and side > 0) or not (math.isfinite(norm) and norm > 0):
        raise ValueError(f"aligned_crop needs a positive side and a non-zero direction, got {side}, {down}")
    ey = np.array([dx, dy]) / norm  # crop's down axis in the frame
    ex = np.array([ey[1], -ey[0]])  # crop's right axis in the frame
    shrink = side > size
    out = max(1, int(round(side))) if shrink else int(size)
    k = side / out
    c = np.array([float(centre[0]), float(centre[1])]) - k * (out - 1) / 2 * (ex + ey)
    # inverse map: frame point = M @ (u, v, 1)
    m = np.array([[k * ex[0], k * ey[0], c[0]], [k * ex[1], k * ey[1], c[1]]], np.float64)
    flags = (cv2.INTER_LINEAR if shrink else cv2.INTER_CUBIC) | cv2.WARP_INVERSE_MAP
    patch = cv2.warpAffine(
        np.ascontiguousarray(frame), m, (out, out), flags=flags,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )  # fmt: skip
    if shrink:
        patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return patch


def meso_crop(frame: np.ndarray, landmarks: np.ndarray, size: int = MESO_CROP_SIZE) -> np.ndarray:
    """The aligned face crop that Meso-4 expects.

    Parameters
    ----------
    frame : np.ndarray
        uint8 RGB ``(H, W, 3)``.
    landmarks : np.ndarray
        ``(5, 2)`` ``(x, y)`` pixels: right eye, left eye, nose tip, right mouth corner, left
        mouth corner (YuNet's order).
    size : int
        Output side in pixels (Meso-4: 256).

    Returns
    -------
    np.ndarray
        uint8 RGB ``(size, size, 3)``: a square centred on the nose tip, side
        :data:`MESO_CROP_SCALE` ``x max(eye-to-eye distance, eye-midpoint-to-mouth-midpoint
        distance)``, rotated so that the eye -> mouth axis points straight down; black outside
        the frame. With non-finite or coincident landmarks, the frame's centre square.

    Notes
    -----
    The crop rule of the Meso-4 weights (Afchar et al., "MesoNet: a Compact Facial Video Forgery
    Detection Network", WIFS 2018, arXiv:1809.00888), as stated in the shared models README.
    """
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    eyes = (lm[0] + lm[1]) / 2
    mouth = (lm[3] + lm[4]) / 2
    axis = mouth - eyes
    unit = max(float(np.hypot(*(lm[1] - lm[0]))), float(np.hypot(*axis)))
    if not np.isfinite(lm).all() or unit < 1e-6:
        return full_frame_crop(frame, size)
    return aligned_crop(frame, lm[2], MESO_CROP_SCALE * unit, axis, size)


def mouth_region(
    frame: np.ndarray, landmarks: np.ndarray, size: int = MOUTH_CROP_SIZE
) -> np.ndarray:
    """A grayscale square around the mouth, level with the mouth corners.

    Parameters
    ----------
    frame : np.ndarray
        uint8 RGB ``(H, W, 3)``.
    landmarks : np.ndarray
        ``(5, 2)`` ``(x, y)`` pixels in YuNet's order (the eyes are not used).
    size : int
        Output side in pixels.

    Returns
    -------
    np.ndarray
        uint8 grayscale ``(size, size)``: centred on the midpoint of the mouth corners, side
        ``max(MOUTH_WIDTH_SCALE x mouth width, MOUTH_NOSE_SCALE x nose-to-mouth distance)``,
        rotated so that the line from the right to the left mouth corner is horizontal (the
        crop's down axis is perpendicular to it, on the side away from the nose); black outside
        the frame. Zeros when the landmarks are not finite or coincide.
    """
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    mouth = (lm[3] + lm[4]) / 2
    across = lm[4] - lm[3]  # right corner -> left corner: image left -> right in a frontal face
    width = float(np.hypot(*across))
    to_mouth = mouth - lm[2]
    nose_dist = float(np.hypot(*to_mouth))
    if not np.isfinite(lm[2:]).all() or max(width, nose_dist) < 1e-6:
        return np.zeros((size, size), np.uint8)
    if width > 1e-6:
        down = np.array([-across[1], across[0]])  # across turned 90 degrees clockwise on screen
        if np.dot(down, to_mouth) < 0:
            down = -down
    else:
        down = to_mouth
    side = max(MOUTH_WIDTH_SCALE * width, MOUTH_NOSE_SCALE * nose_dist)
    # cut in colour, then convert the small crop (cheaper than converting the whole frame)
    return cv2.cvtColor(aligned_crop(frame, mouth, side, down, size), cv2.COLOR_RGB2GRAY)


def _square_crop(frame: np.ndarray, box: np.ndarray, margin: float, size: int) -> np.ndarray:
    """Cut the square ``box`` grown by ``margin`` from ``frame``, black outside, resized."""
    h, w = frame.shape[:2]
    side = (box[2] - box[0]) * (1 + 2 * margin)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    s = max(1, int(round(side)))
    x0, y0 = int(round(cx - s / 2)), int(round(cy - s / 2))
    x1, y1 = x0 + s, y0 + s
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if ix1 <= ix0 or iy1 <= iy0:
        return full_frame_crop(frame, size)
    patch = frame[iy0:iy1, ix0:ix1]
    if (ix0, iy0, ix1, iy1) != (x0, y0, x1, y1):
        patch = cv2.copyMakeBorder(
            patch, iy0 - y0, y1 - iy1, ix0 - x0, x1 - ix1, cv2.BORDER_CONSTANT, value=(0, 0, 0)
        )
    return _resize(patch, size)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return np.ascontiguousarray(image)
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=interp)
