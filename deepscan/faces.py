"""Find, follow and crop the main face of each frame into ``CROP_SIZE`` x ``CROP_SIZE`` crops.

The default detector is OpenCV's frontal-face Haar cascade (Viola & Jones, "Rapid Object Detection
using a Boosted Cascade of Simple Features", CVPR 2001; Lienhart & Maydt, ICIP 2002), shipped with
``opencv-python-headless`` and so available offline. A stronger detector, YuNet (Wu et al.,
"YuNet: A Tiny Millisecond-level Face Detector", Machine Intelligence Research 2023), runs through
``cv2.FaceDetectorYN`` when its ONNX file is given or fetched with :func:`download_yunet`.

A :class:`FaceTracker` (one per file, fed window after window) follows one face: it starts on the
largest face, then associates each frame's detections with the tracked box by IoU, smooths the box
centre and size with an exponential moving average, and holds the last box through gaps of up to
``max_gap`` frames before it declares "no face". Frames without a face fall back to the full frame
(centre square, resized) and say so in :attr:`FaceCrops.found`.

Crop geometry: the tracked face box is made square (side = the larger of its width and height),
grown by :data:`CROP_MARGIN` of its side on each side, and cut from the frame; parts of that square
outside the frame are padded with black (zeros) rather than replicated edges, so that no smeared
texture is invented. The square is resized to :data:`CROP_SIZE` (area interpolation when
shrinking, bicubic when enlarging).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deepscan.cache import file_sha256
from deepscan.errors import ChecksumMismatchError, DownloadError, ModelLoadingError
from deepscan.hub import is_offline

__all__ = [
    "CROP_SIZE",
    "CROP_MARGIN",
    "DETECT_MAX_SIDE",
    "YUNET_FILENAME",
    "YUNET_URL",
    "YUNET_SHA256",
    "Detection",
    "FaceDetectorConfig",
    "FaceCrops",
    "HaarDetector",
    "YuNetDetector",
    "FaceCropper",
    "FaceTracker",
    "build_detector",
    "crop_faces",
    "full_frame_crop",
    "download_yunet",
]

CROP_SIZE = 224  # px, side of a face crop (CLIP ViT-B/32 input size)
CROP_MARGIN = 0.25  # fraction of the face box side added on each side of the crop
# px, longest side of the copy the detector sees. 320 rather than 400 cut Haar from 110 to 77 ms per
# frame (33 ms with detect_every=2, as the scanner runs it) with a face still found on every frame
# of the sample and synthetic videos (measured side by side); faces in talking-head video are large.
DETECT_MAX_SIDE = 320
MIN_DETECT_SIDE = 24  # px, frames whose shorter side is below this are not searched (Haar window)

HAAR_CASCADE = "haarcascade_frontalface_default.xml"
HAAR_SCALE_FACTOR = 1.1  # image pyramid step of detectMultiScale
HAAR_MIN_NEIGHBORS = 5  # overlapping hits needed to accept a face (fewer: more false positives)
HAAR_MIN_FACE = 24  # px at detection scale, the cascade's own window size
# Smallest face searched, as a fraction of the shorter side of the searched copy: skipping the
# finest pyramid levels cut Haar's CPU time by about 40% with no face lost on the sample videos.
HAAR_MIN_FACE_FRACTION = 0.1

YUNET_FILENAME = "face_detection_yunet_2023mar.onnx"
YUNET_URL = (
    "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/" + YUNET_FILENAME
)
# SHA-256 of the 232,589-byte file in opencv_zoo (Git LFS object); a raw.githubusercontent.com URL
# serves the 131-byte LFS pointer instead, which this checksum rejects.
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
YUNET_SCORE_THRESHOLD = 0.9  # opencv_zoo demo default
YUNET_NMS_THRESHOLD = 0.3
DOWNLOAD_TIMEOUT_S = 30.0  # s, per network operation

IOU_MATCH = 0.3  # least IoU with the tracked box for a detection to continue the track
SMOOTHING = 0.5  # EMA weight of a new observation (1.0: no smoothing)
MAX_GAP = 4  # frames a track is held without a matching detection before "no face"
DETECT_EVERY = 1  # run the detector on every k-th frame, hold the track in between (the scanner uses 2)

Detection = tuple[float, float, float, float, float]
"""One face: ``(x, y, w, h, score)``; top-left corner and size in pixels of the frame given to
the detector, score in the detector's own units (higher is more confident)."""

Detector = Callable[[np.ndarray], Sequence[Detection]]
"""A callable ``frame -> detections``: ``frame`` uint8 RGB ``(H, W, 3)``."""


@dataclass(frozen=True)
class FaceDetectorConfig:
    """Which face detector to build, and how.

    Parameters
    ----------
    backend : str
        ``"haar"`` (default, ships with OpenCV, offline) or ``"yunet"`` (needs ``model_path``).
    model_path : str or os.PathLike, optional
        The YuNet ONNX file (see :func:`download_yunet`); ignored by ``"haar"``.
    max_side : int
        Longest side in pixels of the downscaled copy that the detector searches
        (:data:`DETECT_MAX_SIDE`); boxes are mapped back to full resolution.
    score_threshold : float
        YuNet's minimum face score in [0, 1].
    min_neighbors : int
        Haar's minimum number of overlapping hits for a face.
    """

    backend: str = "haar"
    model_path: str | os.PathLike | None = None
    max_side: int = DETECT_MAX_SIDE
    score_threshold: float = YUNET_SCORE_THRESHOLD
    min_neighbors: int = HAAR_MIN_NEIGHBORS


@dataclass
class FaceCrops:
    """Face crops of a run of frames, with the boxes they come from.

    Attributes
    ----------
    crops : np.ndarray
        uint8 RGB ``(T, CROP_SIZE, CROP_SIZE, 3)``; the full frame (centre square) where no face.
    boxes : np.ndarray
        float32 ``(T, 4)`` tracked face boxes ``(x0, y0, x1, y1)`` in pixels of the frame, square
        before clipping to the frame, without the crop margin; NaN where no face.
    found : np.ndarray
        bool ``(T,)``; True where the crop is of a face (detected or held through a short gap).
    detected : np.ndarray
        bool ``(T,)``; True where a detection on that very frame continued the track.
    n_faces_max : int
        Most faces the detector saw in one frame of this run.
    detector : str
        Name of the detector that produced the boxes.
    """

    crops: np.ndarray
    boxes: np.ndarray
    found: np.ndarray
    detected: np.ndarray
    n_faces_max: int
    detector: str

    def __len__(self) -> int:
        return int(self.found.shape[0])

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
    rotation must be settled before (``deepscan.media`` does). Cost: 55-110 ms of one CPU core per
    frame at ``max_side=400``, 77 ms at 320 on the sample videos (512-1920 px wide, busy 2-core machine).
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
            ``(x, y, w, h, score)`` in pixels of ``frame``.
        """
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        gray, scale = _downscale(gray, self.max_side)
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
            (x / scale, y / scale, w / scale, h / scale, float(s))
            for (x, y, w, h), s in zip(np.asarray(boxes).reshape(-1, 4), np.ravel(weights))
        ]


class YuNetDetector:
    """YuNet through ``cv2.FaceDetectorYN`` on a downscaled BGR copy.

    Parameters
    ----------
    model_path : str or os.PathLike
        The ``face_detection_yunet_2023mar.onnx`` file (see :func:`download_yunet`).
    max_side : int
        Longest side in pixels of the searched copy.
    score_threshold : float
        Minimum face score in [0, 1].

    Raises
    ------
    ModelLoadingError
        If the file is missing or OpenCV cannot load it as a YuNet model.

    Notes
    -----
    Wu, Peng & Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine Intelligence
    Research 20, 2023; model from https://github.com/opencv/opencv_zoo.
    """

    name = "opencv-yunet-2023mar"

    def __init__(
        self,
        model_path: str | os.PathLike,
        max_side: int = DETECT_MAX_SIDE,
        score_threshold: float = YUNET_SCORE_THRESHOLD,
    ):
        path = Path(model_path)
        if not path.is_file():
            raise ModelLoadingError(
                f"YuNet model file not found: {path}. Fetch it with "
                f"deepscan.faces.download_yunet(dest_dir) or use the default 'haar' backend."
            )
        try:
            self.net = cv2.FaceDetectorYN.create(
                str(path), "", (320, 320), float(score_threshold), YUNET_NMS_THRESHOLD
            )
        except cv2.error as exc:
            raise ModelLoadingError(
                f"OpenCV could not load {path} as a YuNet model: {exc}"
            ) from exc
        self.max_side = int(max_side)
        self._size: tuple[int, int] | None = None

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        """Detect faces in one frame.

        Parameters
        ----------
        frame : np.ndarray
            uint8 RGB ``(H, W, 3)``.

        Returns
        -------
        list of Detection
            ``(x, y, w, h, score)`` in pixels of ``frame``, score in [0, 1].
        """
        small, scale = _downscale(frame, self.max_side)
        if min(small.shape[:2]) < MIN_DETECT_SIDE:
            return []
        size = (small.shape[1], small.shape[0])
        if size != self._size:
            self.net.setInputSize(size)
            self._size = size
        _, faces = self.net.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        if faces is None:
            return []
        return [
            (f[0] / scale, f[1] / scale, f[2] / scale, f[3] / scale, float(f[14])) for f in faces
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
        A callable ``frame (H, W, 3) uint8 RGB -> list of (x, y, w, h, score)`` with a ``name``.

    Raises
    ------
    ValueError
        If the backend is unknown.
    ModelLoadingError
        If ``"yunet"`` has no usable ``model_path``, or the cascade cannot be loaded.
    """
    config = config or FaceDetectorConfig()
    if config.backend == "haar":
        return HaarDetector(max_side=config.max_side, min_neighbors=config.min_neighbors)
    if config.backend == "yunet":
        if config.model_path is None:
            raise ModelLoadingError(
                "backend 'yunet' needs model_path; fetch the model with "
                "deepscan.faces.download_yunet(dest_dir)"
            )
        return YuNetDetector(config.model_path, config.max_side, config.score_threshold)
    raise ValueError(f"unknown face detector backend {config.backend!r}; use 'haar' or 'yunet'")


class FaceCropper:
    """Detector plus tracking and cropping parameters; makes one :class:`FaceTracker` per file.

    Parameters
    ----------
    config : FaceDetectorConfig, optional
        Which detector to build (ignored when ``detector`` is given).
    detector : callable, optional
        ``frame (H, W, 3) uint8 RGB -> sequence of (x, y, w, h, score)``; its ``name`` attribute,
        if any, is reported in :attr:`FaceCrops.detector`.
    crop_size : int
        Side of the output crops in pixels.
    margin : float
        Fraction of the face side added on each side of the crop.
    smoothing : float
        EMA weight in (0, 1] of a new observation of the box centre and side (1: no smoothing).
    max_gap : int
        Detector runs without a matching detection through which a face is held before
        "no face" (``max_gap * detect_every`` frames).
    detect_every : int
        Run the detector on every k-th frame of the file and hold the box in between; 2 halves
        the detection cost.
    iou_match : float
        Minimum IoU of a detection with the tracked box to continue the track.

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
    ):
        if crop_size < 1:
            raise ValueError(f"crop_size must be at least 1 px, got {crop_size}")
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
    and side are updated by an exponential moving average. An unmatched frame adds one to the gap;
    beyond ``max_gap`` the track is dropped, and the largest detection, if any, starts a new one.
    A second, smaller face that appears next to the tracked one is thus ignored.
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
            ``T`` crops with boxes and found-mask; full-frame crops where no face.

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
        boxes = np.full((t, 4), np.nan, np.float32)
        found = np.zeros(t, bool)
        detected = np.zeros(t, bool)
        n_faces_max = 0
        for i in range(t):
            frame = frames[i]
            h, w = frame.shape[:2]
            if self._track is not None and self._track.frame_shape != (h, w):
                self._track = None
            if self._frame_index % c.detect_every == 0:
                dets = _clean(c.detector(frame), w, h)
                n_faces_max = max(n_faces_max, len(dets))
                detected[i] = self._update(dets, (h, w))
            self._frame_index += 1
            if self._track is None:
                crops[i] = full_frame_crop(frame, c.crop_size)
                continue
            box = self._track.box()
            found[i] = True
            boxes[i] = np.clip(box, 0, [w, h, w, h])
            crops[i] = _square_crop(frame, box, c.margin, c.crop_size)
        return FaceCrops(crops, boxes, found, detected, n_faces_max, c.detector_name)

    def _update(self, dets: np.ndarray, shape: tuple[int, int]) -> bool:
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
            self._track = _Track(*_centre_side(dets[j]), frame_shape=shape)
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


def download_yunet(
    dest_dir: str | os.PathLike,
    url: str = YUNET_URL,
    sha256: str = YUNET_SHA256,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Fetch the YuNet face detector and verify its SHA-256.

    Parameters
    ----------
    dest_dir : str or os.PathLike
        Folder to store :data:`YUNET_FILENAME` in (created if missing).
    url : str
        Where to fetch from (a ``file://`` URL works for a local mirror).
    sha256 : str
        Expected hex SHA-256 of the file (:data:`YUNET_SHA256`).
    timeout_s : float
        Network timeout in seconds.

    Returns
    -------
    Path
        The verified model file. A file already there with the right checksum is reused without
        touching the network.

    Raises
    ------
    DownloadError
        If the file cannot be fetched (offline, HTTP error), or if ``HF_HUB_OFFLINE`` or
        ``DEEPSCAN_OFFLINE`` is set and the URL is not local.
    ChecksumMismatchError
        If the fetched bytes do not have the expected SHA-256; nothing is kept.
    """
    dest_dir = Path(dest_dir)
    target = dest_dir / YUNET_FILENAME
    sha256 = sha256.lower()
    if target.is_file() and file_sha256(target) == sha256:
        return target
    if not url.startswith("file:") and is_offline():
        raise DownloadError(
            f"offline (HF_HUB_OFFLINE/DEEPSCAN_OFFLINE set): not fetching {url}; unset it, or "
            f"place {YUNET_FILENAME} in {dest_dir} yourself"
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=YUNET_FILENAME, suffix=".part", dir=dest_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "deepscan"})
                with urllib.request.urlopen(request, timeout=timeout_s) as response:
                    while block := response.read(1 << 16):
                        digest.update(block)
                        out.write(block)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise DownloadError(
                    f"could not download {url}: {exc}. Check the network, or fetch the file "
                    f"elsewhere and place it at {target}"
                ) from exc
        if digest.hexdigest() != sha256:
            raise ChecksumMismatchError(
                f"SHA-256 of {url} is {digest.hexdigest()}, expected {sha256}; file discarded"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


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


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink so that the longest side is at most ``max_side``; return the image and the scale."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        scale = image.shape[1] / w
    return image, scale


def _clean(dets: Sequence[Detection], w: int, h: int) -> np.ndarray:
    """Detections as float64 ``(N, 5)`` ``x0, y0, x1, y1, score``, clipped, empty boxes dropped."""
    arr = np.asarray(list(dets), np.float64).reshape(-1, 5)
    arr = arr[np.isfinite(arr).all(axis=1)]
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
    return out[(out[:, 2] - out[:, 0] >= 1) & (out[:, 3] - out[:, 1] >= 1)]


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
