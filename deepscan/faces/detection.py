"""Face detectors: a box, a score and five landmarks per face, from YuNet or OpenCV's Haar cascade.

YuNet (Wu, Peng & Yu, Machine Intelligence Research 2023) is our own onnxruntime port
(:mod:`deepscan.faces.yunet`); the Haar cascade (Viola & Jones, CVPR 2001; Lienhart & Maydt, ICIP
2002) ships with ``opencv-python-headless`` and needs no model file, but gives no landmarks: they
are estimated from the box (:func:`estimate_landmarks`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from deepscan.errors import ModelLoadingError
from deepscan.faces.boxes import Detection, Detector, downscale

__all__ = [
    "DETECT_MAX_SIDE",
    "HAAR_LANDMARK_RATIOS",
    "Detection",
    "Detector",
    "FaceDetectorConfig",
    "HaarDetector",
    "build_detector",
    "downscale",
    "estimate_landmarks",
]

# px, longest side of the copy the detector sees. 320 rather than 400 cut Haar from 110 to 77 ms per
# frame (33 ms with detect_every=2, as the scanner runs it) with a face still found on every frame
# of the sample and synthetic videos (measured side by side); faces in talking-head video are large.
# Haar's default; YuNet has its own (deepscan.faces.yunet.YUNET_MAX_SIDE, 640 px): it finds the
# face of every sampled frame of the shared videos even at 160 px, but its landmarks, which place
# the aligned Meso-4 crop, are coarser on a small copy (Meso-4's mean P(real) on the face-swap film:
# 0.32 at full resolution, 0.39 at 640, 0.40 at 320), and at 640 it still costs a fraction of Haar.
DETECT_MAX_SIDE = 320
MIN_DETECT_SIDE = 24  # px, frames whose shorter side is below this are not searched (Haar window)

HAAR_CASCADE = "haarcascade_frontalface_default.xml"
HAAR_SCALE_FACTOR = 1.1  # image pyramid step of detectMultiScale
HAAR_MIN_NEIGHBORS = 5  # overlapping hits needed to accept a face (fewer: more false positives)
HAAR_MIN_FACE = 24  # px at detection scale, the cascade's own window size
# Smallest face searched, as a fraction of the shorter side of the searched copy: skipping the
# finest pyramid levels cut Haar's CPU time by about 40% with no face lost on the sample videos.
HAAR_MIN_FACE_FRACTION = 0.1
# Where YuNet's five landmarks lie in a Haar box, as fractions (x of width, y of height) of the box
# from its top-left corner: right eye, left eye, nose tip, right mouth corner, left mouth corner.
# Median over 120 faces found by both detectors (every other frame of the shared sample portraits
# and videos, and the shared real-world images; interquartile range 0.02-0.05), made left-right
# symmetric.
HAAR_LANDMARK_RATIOS = np.array(
    [[0.32, 0.39], [0.68, 0.39], [0.50, 0.61], [0.34, 0.78], [0.66, 0.78]], np.float64
)

YUNET_SCORE_THRESHOLD = 0.6  # deepscan.faces.yunet.SCORE_THRESHOLD (measured there)
YUNET_NMS_THRESHOLD = 0.3


@dataclass(frozen=True)
class FaceDetectorConfig:
    """Which face detector to build, and how.

    Parameters
    ----------
    backend : str
        ``"haar"`` (default, ships with OpenCV, offline, no landmarks) or ``"yunet"`` (needs
        ``model_path``; box, score and five landmarks).
    model_path : str or os.PathLike, optional
        The YuNet ONNX file ``face_detection_yunet_2026may.onnx``; ignored by ``"haar"``.
    max_side : int, optional
        Longest side in pixels of the downscaled copy that the detector searches; boxes and
        landmarks are mapped back to full resolution. ``None``: the detector's own default,
        :data:`DETECT_MAX_SIDE` (320) for Haar, ``deepscan.faces.yunet.YUNET_MAX_SIDE`` (640)
        for YuNet.
    score_threshold : float
        YuNet's minimum face score in [0, 1].
    min_neighbors : int
        Haar's minimum number of overlapping hits for a face.
    """

    backend: str = "haar"
    model_path: str | os.PathLike | None = None
    max_side: int | None = None
    score_threshold: float = YUNET_SCORE_THRESHOLD
    min_neighbors: int = HAAR_MIN_NEIGHBORS


class HaarDetector:
    """OpenCV's frontal-face Haar cascade on a downscaled, histogram-equalised grayscale copy.

    Parameters
    ----------
    max_side : int
        Longest side in pixels of the searched copy (frames are never upscaled).
    min_neighbors : int
        Minimum overlapping hits for a face.
    scale_factor : float
        Pyramid step.

    Raises
    ------
    ModelLoadingError
        If the cascade file shipped with OpenCV cannot be loaded.

    Notes
    -----
    Viola & Jones, CVPR 2001; the cascade is Lienhart's ``haarcascade_frontalface_default.xml``.
    The score of a detection is the cascade's level weight (unbounded, higher is better). Faces
    smaller than :data:`HAAR_MIN_FACE_FRACTION` of the searched copy's shorter side (at least
    :data:`HAAR_MIN_FACE` px there) are not searched. Only upright frontal faces are found, so
    rotation must be settled before (``deepscan.media`` does). No landmarks (``landmarks=None``):
    the tracker estimates them from the box (:func:`estimate_landmarks`). Cost: 55-110 ms of one
    CPU core per frame at ``max_side=400``, 77 ms at 320 on the sample videos (512-1920 px wide,
    busy 2-core machine).
    """

    name = "opencv-haar-frontalface-default"

    def __init__(
        self,
        max_side: int = DETECT_MAX_SIDE,
        min_neighbors: int = HAAR_MIN_NEIGHBORS,
        scale_factor: float = HAAR_SCALE_FACTOR,
    ):
        path = os.path.join(cv2.data.haarcascades, HAAR_CASCADE)
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise ModelLoadingError(f"OpenCV's Haar cascade could not be loaded from {path}")
        self.max_side = int(max_side)
        self.min_neighbors = int(min_neighbors)
        self.scale_factor = float(scale_factor)

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        """Detect faces in one frame.

        Parameters
        ----------
        frame : np.ndarray
            uint8 RGB ``(H, W, 3)``.

        Returns
        -------
        list of Detection
            ``(x, y, w, h, score, None)`` in pixels of ``frame``.
        """
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        gray, scale = downscale(gray, self.max_side)
        if min(gray.shape) < MIN_DETECT_SIDE:
            return []
        gray = cv2.equalizeHist(gray)
        min_face = max(HAAR_MIN_FACE, int(HAAR_MIN_FACE_FRACTION * min(gray.shape)))
        boxes, _, weights = self.cascade.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_face, min_face),
            outputRejectLevels=True,
        )
        return [
            Detection(x / scale, y / scale, w / scale, h / scale, float(s))
            for (x, y, w, h), s in zip(np.asarray(boxes).reshape(-1, 4), np.ravel(weights))
        ]


def build_detector(config: FaceDetectorConfig | None = None) -> Detector:
    """Build the detector a config names.

    Parameters
    ----------
    config : FaceDetectorConfig, optional
        Defaults to the Haar cascade.

    Returns
    -------
    Detector
        A callable ``frame (H, W, 3) uint8 RGB -> list of Detection`` with a ``name``:
        :class:`HaarDetector` or :class:`deepscan.faces.yunet.YuNet` (also reachable as
        ``deepscan.faces.YuNetDetector``), one onnxruntime thread.

    Raises
    ------
    ValueError
        If the backend is unknown.
    ModelLoadingError
        If ``"yunet"`` has no usable ``model_path``, or the cascade cannot be loaded.
    """
    config = config or FaceDetectorConfig()
    if config.backend == "haar":
        max_side = DETECT_MAX_SIDE if config.max_side is None else config.max_side
        return HaarDetector(max_side=max_side, min_neighbors=config.min_neighbors)
    if config.backend == "yunet":
        if config.model_path is None:
            raise ModelLoadingError(
                "backend 'yunet' needs model_path: the file face_detection_yunet_2026may.onnx "
                "(see 'deepscan models download'), or use the default 'haar' backend"
            )
        from deepscan.faces.yunet import YUNET_MAX_SIDE, YuNet

        return YuNet(
            config.model_path,
            score_threshold=config.score_threshold,
            max_side=YUNET_MAX_SIDE if config.max_side is None else config.max_side,
        )
    raise ValueError(f"unknown face detector backend {config.backend!r}; use 'haar' or 'yunet'")

def estimate_landmarks(box: Sequence[float]) -> np.ndarray:
    """Five landmarks guessed from a face box with fixed ratios (for detectors without landmarks).

    Parameters
    ----------
    box : sequence of float
        ``(x, y, w, h)`` in pixels: top-left corner and size of a Haar-style frontal face box.

    Returns
    -------
    np.ndarray
        float64 ``(5, 2)`` ``(x, y)`` in pixels: right eye, left eye, nose tip, right mouth
        corner, left mouth corner, at :data:`HAAR_LANDMARK_RATIOS` of the box.

    Notes
    -----
    An estimate, not a measurement: it assumes an upright frontal face (as Haar finds) and knows
    nothing of head roll or yaw. :attr:`FaceCrops.landmarks_estimated` marks frames where it was
    used.
    """
    x, y, w, h = (float(v) for v in box[:4])
    return np.array([x, y]) + HAAR_LANDMARK_RATIOS * np.array([w, h])
