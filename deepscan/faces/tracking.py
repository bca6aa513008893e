"""Follow one face through a file and cut its crops frame by frame (:class:`FaceTracker`, :class:`FaceCropper`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deepscan.faces.alignment import (
    CROP_MARGIN, CROP_SIZE, MESO_CROP_SIZE, MOUTH_CROP_SIZE, _square_crop, full_frame_crop, meso_crop, mouth_region,
)
from deepscan.faces.boxes import Detection, Detector
from deepscan.faces.detection import FaceDetectorConfig, build_detector, estimate_landmarks

__all__ = [
    "FaceCrops",
    "FaceCropper",
    "FaceTracker",
    "crop_faces",
]

IOU_MATCH = 0.3  # least IoU with the tracked box for a detection to continue the track
SMOOTHING = 0.5  # EMA weight of a new observation (1.0: no smoothing)
MAX_GAP = 4  # frames a track is held without a matching detection before "no face"
DETECT_EVERY = 1  # run the detector on every k-th frame, hold the track in between (the scanner uses 2)


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
