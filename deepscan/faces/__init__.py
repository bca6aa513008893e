"""Find, follow and crop the main face of each frame, with five landmarks and aligned crops.

Two detectors: YuNet (Wu, Peng & Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine
Intelligence Research 2023), our own port run through onnxruntime (:mod:`deepscan.faces.yunet`),
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

from deepscan.faces.alignment import (
    CROP_MARGIN, CROP_SIZE, MESO_CROP_SCALE, MESO_CROP_SIZE, MOUTH_CROP_SIZE, aligned_crop, full_frame_crop,
    meso_crop, mouth_region,
)
from deepscan.faces.boxes import Detection, Detector, downscale
from deepscan.faces.detection import (
    DETECT_MAX_SIDE, HAAR_LANDMARK_RATIOS, FaceDetectorConfig, HaarDetector, build_detector, estimate_landmarks,
)
from deepscan.faces.tracking import FaceCropper, FaceCrops, FaceTracker, crop_faces

__all__ = [
    "CROP_SIZE",
    "CROP_MARGIN",
    "MESO_CROP_SIZE",
    "MESO_CROP_SCALE",
    "MOUTH_CROP_SIZE",
    "DETECT_MAX_SIDE",
    "HAAR_LANDMARK_RATIOS",
    "Detection",
    "Detector",
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


def __getattr__(name: str):
    # YuNetDetector is the onnxruntime port deepscan.faces.yunet.YuNet, imported on first use
    # so that importing deepscan.faces (Haar only) does not load onnxruntime.
    if name == "YuNetDetector":
        from deepscan.faces.yunet import YuNet

        return YuNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
