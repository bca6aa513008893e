"""Find, follow and crop the main face of each frame, with five landmarks and aligned crops.

Two detectors: YuNet (Wu, Peng & Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine
Intelligence Research 2023), our own port run through onnxruntime (:mod:`deepscan.experts.yunet`),
which gives a box, a score and five landmarks per face; and, as the fallback that needs no model
file, OpenCV's frontal-face Haar cascade (Viola & Jones, "Rapid Object Detection using a Boosted
Cascade of Simple Features", CVPR 2001; Lienhart & Maydt, ICIP 2002), shipped with
``opencv-python-headless``. Haar gives no landmarks: they are then *estimated* from the box with
fixed ratios (:func:`estimate_landmarks`), and :attr:`FaceCrops.landmarks_estimated` says so.

A :class:`FaceTracker` (one per file, fed window after window) follows one face: it starts on the
largest face, then associates each frame's detections with the tracked box by IoU, smooths the box
centre and size and the five landmarks with an exponential moving average, and holds the last box
through gaps of up to ``max_gap`` detector runs before it declares "no face". Frames without a
face fall back to the full frame (centre square, resized) and say so in :attr:`FaceCrops.found`.

Three crops are cut from each decoded frame (one decode, same frame):

* ``crops`` (CLIP, :data:`CROP_SIZE`): the tracked face box made square (side = the larger of its
  width and height), grown by :data:`CROP_MARGIN` of its side on each side, cut from the frame.
* ``meso_crops`` (Meso-4, :data:`MESO_CROP_SIZE`): :func:`meso_crop`, a square centred on the nose,
  side ``2.2 * 1.3 * max(eye distance, eye-midpoint-to-mouth-midpoint distance)``, rotated so that
  the eye -> mouth axis is vertical (the crop rule of the Meso-4 weights' README).
* ``mouth_crops`` (:data:`MOUTH_CROP_SIZE`, grayscale): :func:`mouth_region`, a square centred on
  the mouth, sized from the mouth corners and the nose, rotated so that the mouth is level.

Parts of a crop outside the frame are padded with black (zeros) rather than replicated edges, so
that no smeared texture is invented; shrinking uses area interpolation, enlarging bicubic.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from deepscan.errors import ModelLoadingError

__all__ = [
    "CROP_SIZE",
    "CROP_MARGIN",
    "MESO_CROP_SIZE",
    "MESO_CROP_SCALE",
    "MOUTH_CROP_SIZE",
    "DETECT_MAX_SIDE",
    "HAAR_LANDMARK_RATIOS",
    "Detection",
    "FaceDetectorConfig",
    "FaceCrops",
    "HaarDetector",
    "FaceCropper",
    "FaceTracker",
    "build_detector",
    "crop_faces",
    "full_frame_crop",
    "downscale",
    "estimate_landmarks",
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
# px, longest side of the copy the detector sees. 320 rather than 400 cut Haar from 110 to 77 ms per
# frame (33 ms with detect_every=2, as the scanner runs it) with a face still found on every frame
# of the sample and synthetic videos (measured side by side); faces in talking-head video are large.
# Haar's default; YuNet has its own (deepscan.experts.yunet.YUNET_MAX_SIDE, 640 px): it finds the
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

YUNET_SCORE_THRESHOLD = 0.6  # deepscan.experts.yunet.SCORE_THRESHOLD (measured there)
YUNET_NMS_THRESHOLD = 0.3

IOU_MATCH = 0.3  # least IoU with the tracked box for a detection to continue the track
SMOOTHING = 0.5  # EMA weight of a new observation (1.0: no smoothing)
MAX_GAP = 4  # frames a track is held without a matching detection before "no face"
DETECT_EVERY = 1  # run the detector on every k-th frame, hold the track in between (the scanner uses 2)


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
        :data:`DETECT_MAX_SIDE` (320) for Haar, ``deepscan.experts.yunet.YUNET_MAX_SIDE`` (640)
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


@dataclass
class FaceCrops:
    """Face crops of a run of frames, with the boxes and landmarks they come from.

    All per-frame arrays are cut from the same decoded frames, frame ``i`` of each from frame
    ``i`` of the input.

    Attributes
    ----------
    crops : np.ndarray
        uint8 RGB ``(T, CROP_SIZE, CROP_SIZE, 3)`` (CLIP crops, square box plus margin); the full
        frame (centre square) where no face.
    boxes : np.ndarray
        float32 ``(T, 4)`` tracked face boxes ``(x0, y0, x1, y1)`` in pixels of the frame, square
        before clipping to the frame, without the crop margin; NaN where no face.
    found : np.ndarray
        bool ``(T,)``; True where the crop is of a face (detected or held through a short gap).
    detected : np.ndarray
        bool ``(T,)``; True where a detection on that very frame continued the track.
    n_faces_max : int
        Most faces the detector saw in one frame of this run.
    detector_name : str
        Name of the detector that produced the boxes (e.g. ``"yunet-2026may"``,
        ``"opencv-haar-frontalface-default"``).
    landmarks : np.ndarray
        float32 ``(T, 5, 2)`` tracked (smoothed) landmarks ``(x, y)`` in pixels of the frame:
        right eye, left eye, nose tip, right mouth corner, left mouth corner; NaN where no face.
    landmarks_estimated : np.ndarray
        bool ``(T,)``; True where the landmarks were estimated from the box with fixed ratios
        (:func:`estimate_landmarks`, detectors without landmarks such as Haar) rather than
        detected.
    meso_crops : np.ndarray
        uint8 RGB ``(T, MESO_CROP_SIZE, MESO_CROP_SIZE, 3)`` aligned crops (:func:`meso_crop`);
        where no face, the full frame's centre square.
    mouth_crops : np.ndarray
        uint8 grayscale ``(T, MOUTH_CROP_SIZE, MOUTH_CROP_SIZE)`` mouth regions
        (:func:`mouth_region`); zeros where no face.
    """

    crops: np.ndarray
    boxes: np.ndarray
    found: np.ndarray
    detected: np.ndarray
    n_faces_max: int
    detector_name: str
    landmarks: np.ndarray | None = None
    landmarks_estimated: np.ndarray | None = None
    meso_crops: np.ndarray | None = None
    mouth_crops: np.ndarray | None = None

    def __post_init__(self) -> None:
        t = int(self.found.shape[0])
        if self.landmarks is None:
            self.landmarks = np.full((t, 5, 2), np.nan, np.float32)
        if self.landmarks_estimated is None:
            self.landmarks_estimated = np.zeros(t, bool)
        if self.meso_crops is None:
            self.meso_crops = np.zeros((t, MESO_CROP_SIZE, MESO_CROP_SIZE, 3), np.uint8)
        if self.mouth_crops is None:
            self.mouth_crops = np.zeros((t, MOUTH_CROP_SIZE, MOUTH_CROP_SIZE), np.uint8)

    def __len__(self) -> int:
        return int(self.found.shape[0])

    @property
    def detector(self) -> str:
        """Deprecated alias of :attr:`detector_name`."""
        return self.detector_name

    @property
    def frames_with_face(self) -> int:
        """Number of frames whose crop is of a face."""
        return int(self.found.sum())

    @property
    def any_face(self) -> bool:
        """True when at least one frame has a face; False means "no face" in this run."""
        return bool(self.found.any())


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


def __getattr__(name: str):
    # YuNetDetector is the onnxruntime port deepscan.experts.yunet.YuNet, imported on first use
    # so that importing deepscan.faces (Haar only) does not load onnxruntime.
    if name == "YuNetDetector":
        from deepscan.experts.yunet import YuNet

        return YuNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        :class:`HaarDetector` or :class:`deepscan.experts.yunet.YuNet` (also reachable as
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
        from deepscan.experts.yunet import YUNET_MAX_SIDE, YuNet

        return YuNet(
            config.model_path,
            score_threshold=config.score_threshold,
            max_side=YUNET_MAX_SIDE if config.max_side is None else config.max_side,
        )
    raise ValueError(f"unknown face detector backend {config.backend!r}; use 'haar' or 'yunet'")


class FaceCropper:
    """Detector plus tracking and cropping parameters; makes one :class:`FaceTracker` per file.

    Parameters
    ----------
    config : FaceDetectorConfig, optional
        Which detector to build (ignored when ``detector`` is given).
    detector : callable, optional
        ``frame (H, W, 3) uint8 RGB -> sequence of Detection`` (or plain ``(x, y, w, h, score)``
        tuples); its ``name`` attribute, if any, is reported in :attr:`FaceCrops.detector_name`.
    crop_size : int
        Side of the output CLIP crops in pixels.
    margin : float
        Fraction of the face side added on each side of the CLIP crop.
    smoothing : float
        EMA weight in (0, 1] of a new observation of the box centre and side and of the
        landmarks (1: no smoothing).
    max_gap : int
        Detector runs without a matching detection through which a face is held before
        "no face" (``max_gap * detect_every`` frames).
    detect_every : int
        Run the detector on every k-th frame of the file and hold the box in between; 2 halves
        the detection cost.
    iou_match : float
        Minimum IoU of a detection with the tracked box to continue the track.
    meso_size : int
        Side of the Meso-4 crops in pixels (:data:`MESO_CROP_SIZE`).
    mouth_size : int
        Side of the grayscale mouth crops in pixels (:data:`MOUTH_CROP_SIZE`).

    Attributes
    ----------
    detector_name : str
        The detector's ``name``.

    Raises
    ------
    ValueError
        If a parameter is out of range.
    ModelLoadingError
        If the configured detector cannot be built.
    """

    def __init__(
        self,
        config: FaceDetectorConfig | None = None,
        detector: Detector | None = None,
        crop_size: int = CROP_SIZE,
        margin: float = CROP_MARGIN,
        smoothing: float = SMOOTHING,
        max_gap: int = MAX_GAP,
        detect_every: int = DETECT_EVERY,
        iou_match: float = IOU_MATCH,
        meso_size: int = MESO_CROP_SIZE,
        mouth_size: int = MOUTH_CROP_SIZE,
    ):
        if crop_size < 1:
            raise ValueError(f"crop_size must be at least 1 px, got {crop_size}")
        if meso_size < 1 or mouth_size < 1:
            raise ValueError(f"meso_size and mouth_size must be at least 1 px, got {meso_size}, {mouth_size}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
        if max_gap < 0:
            raise ValueError(f"max_gap must be >= 0, got {max_gap}")
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        if not 0 <= iou_match <= 1:
            raise ValueError(f"iou_match must be in [0, 1], got {iou_match}")
        self.detector = detector if detector is not None else build_detector(config)
        self.detector_name = str(
            getattr(self.detector, "name", getattr(self.detector, "__name__", "custom"))
        )
        self.crop_size = int(crop_size)
        self.margin = float(margin)
        self.smoothing = float(smoothing)
        self.max_gap = int(max_gap)
        self.detect_every = int(detect_every)
        self.iou_match = float(iou_match)
        self.meso_size = int(meso_size)
        self.mouth_size = int(mouth_size)

    def new_tracker(self) -> FaceTracker:
        """Return a fresh tracker for one file."""
        return FaceTracker(self)

    def crop(self, frames: np.ndarray) -> FaceCrops:
        """Crop faces from one clip with a fresh tracker (:meth:`FaceTracker.crop`)."""
        return self.new_tracker().crop(frames)


@dataclass
class _Track:
    cx: float
    cy: float
    side: float
    landmarks: np.ndarray  # float64 (5, 2)
    estimated: bool = False
    gap: int = 0
    frame_shape: tuple[int, int] = (0, 0)

    def box(self) -> np.ndarray:
        h = self.side / 2
        return np.array([self.cx - h, self.cy - h, self.cx + h, self.cy + h], np.float64)


class FaceTracker:
    """Follows the main face across the frames of one file, window after window.

    Parameters
    ----------
    cropper : FaceCropper
        Detector and parameters.

    Notes
    -----
    Per frame on which the detector runs: with no track, the largest detection starts one; with a
    track, the detection of highest IoU with the tracked box continues it if the IoU reaches
    ``iou_match`` (or, failing that, if its centre lies inside the tracked box), and the box centre
    and side and the five landmarks are updated by an exponential moving average. An unmatched
    frame adds one to the gap; beyond ``max_gap`` the track is dropped, and the largest detection,
    if any, starts a new one. A second, smaller face that appears next to the tracked one is thus
    ignored. Landmarks of detections without any (Haar) are estimated from their box.
    """

    def __init__(self, cropper: FaceCropper):
        self.cropper = cropper
        self._track: _Track | None = None
        self._frame_index = 0

    def reset(self) -> None:
        """Forget the tracked face (e.g. at a scene cut)."""
        self._track = None
        self._frame_index = 0

    def crop(self, frames: np.ndarray) -> FaceCrops:
        """Detect, track and crop the main face in each frame.

        Parameters
        ----------
        frames : np.ndarray
            uint8 RGB ``(T, H, W, 3)`` as :attr:`deepscan.media.Window.frames`; ``T = 0`` is fine.

        Returns
        -------
        FaceCrops
            ``T`` CLIP crops, Meso-4 crops and mouth crops with boxes, landmarks and found-mask;
            full-frame crops (zeros for the mouth) where no face.

        Raises
        ------
        TypeError
            If ``frames`` is not a uint8 array.
        ValueError
            If ``frames`` is not ``(T, H, W, 3)``.
        """
        frames = _check_frames(frames)
        c = self.cropper
        t = frames.shape[0]
        crops = np.zeros((t, c.crop_size, c.crop_size, 3), np.uint8)
        meso = np.zeros((t, c.meso_size, c.meso_size, 3), np.uint8)
        mouth = np.zeros((t, c.mouth_size, c.mouth_size), np.uint8)
        boxes = np.full((t, 4), np.nan, np.float32)
        landmarks = np.full((t, 5, 2), np.nan, np.float32)
        estimated = np.zeros(t, bool)
        found = np.zeros(t, bool)
        detected = np.zeros(t, bool)
        n_faces_max = 0
        for i in range(t):
            frame = frames[i]
            h, w = frame.shape[:2]
            if self._track is not None and self._track.frame_shape != (h, w):
                self._track = None
            if self._frame_index % c.detect_every == 0:
                dets, lms, est = _clean(c.detector(frame), w, h)
                n_faces_max = max(n_faces_max, len(dets))
                detected[i] = self._update(dets, lms, est, (h, w))
            self._frame_index += 1
            if self._track is None:
                crops[i] = full_frame_crop(frame, c.crop_size)
                meso[i] = full_frame_crop(frame, c.meso_size)
                continue
            tr = self._track
            box = tr.box()
            found[i] = True
            boxes[i] = np.clip(box, 0, [w, h, w, h])
            landmarks[i] = tr.landmarks
            estimated[i] = tr.estimated
            crops[i] = _square_crop(frame, box, c.margin, c.crop_size)
            meso[i] = meso_crop(frame, tr.landmarks, c.meso_size)
            mouth[i] = mouth_region(frame, tr.landmarks, c.mouth_size)
        return FaceCrops(
            crops, boxes, found, detected, n_faces_max, c.detector_name,
            landmarks, estimated, meso, mouth,
        )  # fmt: skip

    def _update(
        self, dets: np.ndarray, lms: np.ndarray, est: np.ndarray, shape: tuple[int, int]
    ) -> bool:
        """Advance the track by one detector frame; return whether a detection continued it."""
        c = self.cropper
        tr = self._track
        if tr is not None and len(dets):
            ious = _iou(tr.box(), dets[:, :4])
            j = int(np.argmax(ious))
            if ious[j] < c.iou_match:
                x0, y0, x1, y1 = tr.box()
                cx = (dets[:, 0] + dets[:, 2]) / 2
                cy = (dets[:, 1] + dets[:, 3]) / 2
                inside = (cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)
                j = int(np.argmax(np.where(inside, ious, -1))) if inside.any() else -1
            if j >= 0:
                cx, cy, side = _centre_side(dets[j])
                a = c.smoothing
                tr.cx += a * (cx - tr.cx)
                tr.cy += a * (cy - tr.cy)
                tr.side += a * (side - tr.side)
                tr.landmarks += a * (lms[j] - tr.landmarks)
                tr.estimated = bool(est[j])
                tr.gap = 0
                return True
        if tr is not None:
            tr.gap += 1
            if tr.gap <= c.max_gap:
                return False
            self._track = None
        if len(dets):
            areas = (dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])
            j = int(np.lexsort((dets[:, 4], areas))[-1])
            self._track = _Track(
                *_centre_side(dets[j]), lms[j].copy(), bool(est[j]), frame_shape=shape
            )
            return True
        return False


def crop_faces(
    frames: np.ndarray,
    config: FaceDetectorConfig | None = None,
    detector: Detector | None = None,
    **kwargs,
) -> FaceCrops:
    """Crop the main face of each frame of one clip, in one call.

    Parameters
    ----------
    frames : np.ndarray
        uint8 RGB ``(T, H, W, 3)``.
    config : FaceDetectorConfig, optional
        Detector to build (default Haar).
    detector : callable, optional
        Ready detector, instead of ``config``.
    **kwargs
        Further :class:`FaceCropper` parameters (``margin``, ``smoothing``, ``max_gap``, ...).

    Returns
    -------
    FaceCrops

    Raises
    ------
    TypeError, ValueError, ModelLoadingError
        As :class:`FaceCropper` and :meth:`FaceTracker.crop`.
    """
    return FaceCropper(config, detector, **kwargs).crop(frames)


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


def _check_frames(frames: np.ndarray) -> np.ndarray:
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (T, H, W, 3), got {frames.shape}")
    if frames.shape[0] and (frames.shape[1] < 1 or frames.shape[2] < 1):
        raise ValueError(f"frames have an empty height or width: {frames.shape}")
    return np.ascontiguousarray(frames)


def _clean(dets: Sequence[Detection], w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sanitise detections.

    Returns float64 ``(N, 5)`` ``x0, y0, x1, y1, score`` (clipped, empty or non-finite boxes
    dropped), float64 ``(N, 5, 2)`` landmarks (estimated from the unclipped box where the detector
    gave none or non-finite ones) and bool ``(N,)`` "estimated".
    """
    rows, lms, est = [], [], []
    for d in dets:
        box = np.asarray([float(v) for v in d[:5]], np.float64)
        if box.shape != (5,) or not np.isfinite(box).all():
            continue
        lm = d[5] if len(d) > 5 else None
        lm = None if lm is None else np.asarray(lm, np.float64).reshape(5, 2)
        guessed = lm is None or not np.isfinite(lm).all()
        rows.append(box)
        lms.append(estimate_landmarks(box[:4]) if guessed else lm)
        est.append(guessed)
    arr = np.asarray(rows, np.float64).reshape(-1, 5)
    lms = np.asarray(lms, np.float64).reshape(-1, 5, 2)
    est = np.asarray(est, bool)
    out = np.stack(
        [
            np.clip(arr[:, 0], 0, w),
            np.clip(arr[:, 1], 0, h),
            np.clip(arr[:, 0] + arr[:, 2], 0, w),
            np.clip(arr[:, 1] + arr[:, 3], 0, h),
            arr[:, 4],
        ],
        axis=1,
    )
    keep = (out[:, 2] - out[:, 0] >= 1) & (out[:, 3] - out[:, 1] >= 1)
    return out[keep], lms[keep], est[keep]


def _centre_side(det: np.ndarray) -> tuple[float, float, float]:
    return (
        float(det[0] + det[2]) / 2,
        float(det[1] + det[3]) / 2,
        float(max(det[2] - det[0], det[3] - det[1])),
    )


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with ``(N, 4)`` xyxy boxes."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


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
