"""YuNet face detector with five landmarks, run through onnxruntime (our own decode).

Wu, Peng & Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine Intelligence Research 20,
2023. YuNet is an anchor-free detector: a light backbone and a tiny feature pyramid predict, for
every cell of three grids (strides 8, 16 and 32), a classification score, an objectness score, a
box and five landmarks. This module feeds the published ONNX file
(``face_detection_yunet_2026may.onnx``, opset 11, dynamic input size) and decodes its 12 outputs
itself, so OpenCV's ``FaceDetectorYN`` (which is not guaranteed to load this file) is not needed.

Input contract, as measured on the file: ``input`` float32 NCHW, **BGR, 0-255, not normalised**,
height and width multiples of 32 (frames are zero-padded at the bottom and right, so pixel
coordinates need no offset). Outputs ``cls_s (1, N, 1)``, ``obj_s (1, N, 1)``, ``bbox_s (1, N, 4)``
and ``kps_s (1, N, 10)`` for ``s`` in (8, 16, 32), ``N = (H/s) * (W/s)`` cells in row-major
order. Decode of cell ``(row, col)`` at stride ``s``::

    score = sqrt(cls * obj)
    cx, cy = (col + b0) * s, (row + b1) * s        w, h = exp(b2) * s, exp(b3) * s
    landmark j = ((col + k[2j]) * s, (row + k[2j+1]) * s)

then greedy non-maximum suppression at IoU :data:`NMS_IOU`. On the shared FFHQ portrait this gives
box ``[120, 81, 284, 408]`` and score 0.935 at full resolution, as ``cv2.FaceDetectorYN`` does.

Landmark order: right eye, left eye, nose tip, right mouth corner, left mouth corner (the
subject's right and left: the right eye appears on the image's left in a frontal face).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from deepscan.errors import ModelLoadingError
from deepscan.faces.boxes import Detection, downscale
from deepscan.media import check_rgb_frame

__all__ = [
    "YUNET_FILENAME",
    "YUNET_NAME",
    "YUNET_MAX_SIDE",
    "SCORE_THRESHOLD",
    "NMS_IOU",
    "STRIDES",
    "LANDMARK_NAMES",
    "YuNet",
    "decode",
    "nms",
]

YUNET_FILENAME = "face_detection_yunet_2026may.onnx"
YUNET_NAME = "yunet-2026may"
STRIDES = (8, 16, 32)
PAD_MULTIPLE = 32  # px, input height and width must be multiples of the coarsest stride
NMS_IOU = 0.3  # IoU above which a lower-scored box is suppressed
# Least face score (sqrt(cls * obj), in [0, 1]) kept; the low end of the usual 0.6-0.9. Measured
# on the shared data: the main face of every sampled frame of the sample videos and portraits
# scores 0.90-0.95 at max_side 320 (0.83 at 160 px); frames without a face (the no-face, rotated
# and variable-frame-rate test videos, blurred noise) give no candidate even at 0.3, and what
# scores 0.3-0.9 are real but small faces (the thumbnails of the face-swap animation). So 0.6
# loses no face that a face swap's blending may have made less typical, at no cost in false
# faces seen so far.
SCORE_THRESHOLD = 0.6
# px, longest side of the copy YuNet searches (area-downscaled; detections mapped back). Measured
# on the shared sample videos (2-core machine under load, one thread): the main face is found in
# every sampled frame at 640, 320 and even 160 px, but the landmarks that place the Meso-4 crop are
# coarser on a small copy: Meso-4's mean P(real) on the face-swap film is 0.32 at full resolution,
# 0.39 at 640 and 0.40 at 320, on the variable-frame-rate talking face 0.95, 0.95 and 0.91. At 640
# YuNet costs 8-21 ms per frame (320: 2-6 ms) against Haar's 29-86 ms at 320.
YUNET_MAX_SIDE = 640
TOP_K = 5000  # candidates kept (best scores) before NMS
LANDMARK_NAMES = ("right_eye", "left_eye", "nose_tip", "right_mouth_corner", "left_mouth_corner")
_OUTPUTS = tuple(f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES)


class YuNet:
    """The YuNet face detector (ONNX through onnxruntime, CPU), with our own decode and NMS.

    Parameters
    ----------
    model_path : str or os.PathLike
        ``face_detection_yunet_2026may.onnx`` (SHA-256 ``ebafce4e...f0f0``).
    score_threshold : float
        Least face score in [0, 1] kept (:data:`SCORE_THRESHOLD`).
    nms_iou : float
        IoU in [0, 1] above which a lower-scored overlapping box is suppressed (:data:`NMS_IOU`).
    max_side : int or None
        Longest side in pixels of the downscaled copy searched (area interpolation); boxes and
        landmarks are mapped back to the frame's pixels. ``None``: full resolution.
    threads : int
        onnxruntime intra-op threads (1: the scanner parallelises across files instead).

    Attributes
    ----------
    name : str
        ``"yunet-2026may"``, reported as the detector that ran.
    model_path : Path
        The ONNX file.

    Raises
    ------
    ModelLoadingError
        If the file is missing, is not an ONNX model onnxruntime can load, or lacks YuNet's
        ``input`` and ``cls/obj/bbox/kps_{8,16,32}`` tensors; the message names the file.
    ValueError
        If a parameter is out of range.

    Notes
    -----
    Wu, Peng & Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine Intelligence Research
    20, 2023. Cost on one CPU core: 8-21 ms per frame at ``max_side=640``, 2-6 ms at 320 (the
    shared sample videos, 432-1920 px wide), against 29-86 ms for the Haar cascade at 320.
    """

    name = YUNET_NAME

    def __init__(
        self,
        model_path: str | os.PathLike,
        score_threshold: float = SCORE_THRESHOLD,
        nms_iou: float = NMS_IOU,
        max_side: int | None = YUNET_MAX_SIDE,
        threads: int = 1,
    ):
        if not 0 <= score_threshold <= 1:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if not 0 <= nms_iou <= 1:
            raise ValueError(f"nms_iou must be in [0, 1], got {nms_iou}")
        if max_side is not None and max_side < PAD_MULTIPLE:
            raise ValueError(f"max_side must be None or at least {PAD_MULTIPLE} px, got {max_side}")
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.model_path = Path(model_path)
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.max_side = None if max_side is None else int(max_side)
        self.session = _load_session(self.model_path, int(threads))

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        """Detect faces in one frame.

        Parameters
        ----------
        frame : np.ndarray
            uint8 RGB ``(H, W, 3)``, any size from 1x1.

        Returns
        -------
        list of Detection
            Best score first. ``(x, y, w, h)`` top-left corner and size in pixels of ``frame``
            (float, may reach slightly outside it), ``score`` in [0, 1], ``landmarks`` float32
            ``(5, 2)`` ``(x, y)`` in pixels of ``frame``, in :data:`LANDMARK_NAMES` order.

        Raises
        ------
        TypeError
            If ``frame`` is not a uint8 array.
        ValueError
            If ``frame`` is not ``(H, W, 3)`` with ``H, W >= 1``.
        """
        check_rgb_frame(frame)
        if self.max_side is None:
            small, scale = frame, 1.0
        else:
            small, scale = downscale(frame, self.max_side)
        raw = self.detect_raw(small)
        return [
            Detection(
                float(r[0]) / scale,
                float(r[1]) / scale,
                float(r[2]) / scale,
                float(r[3]) / scale,
                float(r[4]),
                (r[5:15].reshape(5, 2) / scale).astype(np.float32),
            )
            for r in raw
        ]

    def detect_raw(self, image: np.ndarray) -> np.ndarray:
        """Run the network on one RGB image at its own resolution and decode.

        Parameters
        ----------
        image : np.ndarray
            uint8 RGB ``(H, W, 3)``; not resized, only padded to multiples of 32.

        Returns
        -------
        np.ndarray
            float32 ``(N, 15)``, best score first: ``x, y, w, h`` (pixels of ``image``),
            ``score``, then landmarks ``x0, y0, ..., x4, y4``.
        """
        h, w = image.shape[:2]
        hp = -(-h // PAD_MULTIPLE) * PAD_MULTIPLE
        wp = -(-w // PAD_MULTIPLE) * PAD_MULTIPLE
        blob = np.zeros((1, 3, hp, wp), np.float32)
        blob[0, :, :h, :w] = image[..., ::-1].transpose(2, 0, 1)  # RGB -> BGR, HWC -> CHW, 0-255
        outputs = dict(zip(_OUTPUTS, self.session.run(list(_OUTPUTS), {"input": blob})))
        return decode(outputs, hp, wp, self.score_threshold, self.nms_iou)


def decode(
    outputs: dict[str, np.ndarray],
    height: int,
    width: int,
    score_threshold: float = SCORE_THRESHOLD,
    nms_iou: float = NMS_IOU,
) -> np.ndarray:
    """Turn YuNet's per-cell outputs into scored boxes with landmarks (the README's decode).

    Parameters
    ----------
    outputs : dict of str to np.ndarray
        ``cls_s``, ``obj_s`` ``(1, N, 1)``, ``bbox_s`` ``(1, N, 4)``, ``kps_s`` ``(1, N, 10)`` for
        ``s`` in :data:`STRIDES`, ``N = (height/s) * (width/s)``, row-major over the grid.
    height, width : int
        Padded input size in pixels (multiples of 32).
    score_threshold : float
        Least ``sqrt(cls * obj)`` kept.
    nms_iou : float
        NMS IoU threshold.

    Returns
    -------
    np.ndarray
        float32 ``(N, 15)`` ``x, y, w, h, score, x0, y0, ..., x4, y4`` in input pixels, best
        score first.

    Raises
    ------
    ValueError
        If an output's cell count does not match the grid of its stride.
    """
    rows = []
    for s in STRIDES:
        gh, gw = height // s, width // s
        cls = outputs[f"cls_{s}"].reshape(-1)
        obj = outputs[f"obj_{s}"].reshape(-1)
        if cls.shape[0] != gh * gw:
            raise ValueError(f"cls_{s} has {cls.shape[0]} cells, expected {gh} x {gw} for {height}x{width}")
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        keep = np.flatnonzero(score >= score_threshold)
        if keep.size == 0:
            continue
        bbox = outputs[f"bbox_{s}"].reshape(-1, 4)[keep].astype(np.float64)
        kps = outputs[f"kps_{s}"].reshape(-1, 10)[keep].astype(np.float64)
        row, col = np.divmod(keep, gw)
        cx, cy = (col + bbox[:, 0]) * s, (row + bbox[:, 1]) * s
        bw, bh = np.exp(bbox[:, 2]) * s, np.exp(bbox[:, 3]) * s
        lx = (col[:, None] + kps[:, 0::2]) * s
        ly = (row[:, None] + kps[:, 1::2]) * s
        lm = np.stack([lx, ly], axis=2).reshape(-1, 10)
        rows.append(np.column_stack([cx - bw / 2, cy - bh / 2, bw, bh, score[keep], lm]))
    if not rows:
        return np.zeros((0, 15), np.float32)
    dets = np.concatenate(rows)
    dets = dets[np.argsort(-dets[:, 4], kind="stable")[:TOP_K]]
    keep = nms(dets[:, :4], dets[:, 4], nms_iou)
    return dets[keep].astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Parameters
    ----------
    boxes : np.ndarray
        ``(N, 4)`` ``x, y, w, h`` in pixels.
    scores : np.ndarray
        ``(N,)``, higher is better.
    iou_threshold : float
        A box whose IoU with a kept, better-scored box exceeds this is dropped.

    Returns
    -------
    np.ndarray
        int64 indices of the kept boxes, best score first.
    """
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    areas = np.clip(boxes[:, 2], 0, None) * np.clip(boxes[:, 3], 0, None)
    order = np.argsort(-scores, kind="stable")
    kept = []
    while order.size:
        i, rest = order[0], order[1:]
        kept.append(i)
        iw = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        ih = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = iw * ih
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(kept, np.int64)


def _load_session(path: Path, threads: int):
    """An onnxruntime CPU session for YuNet, or ModelLoadingError naming the file."""
    if not path.is_file():
        raise ModelLoadingError(
            f"YuNet model file not found: {path}. Get {YUNET_FILENAME} with "
            f"'deepscan models download' or use the default 'haar' face detector.",
            path=path,
        )
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
        raise ModelLoadingError(f"onnxruntime is needed to run YuNet: {exc}", path=path) from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... classes
        raise ModelLoadingError(
            f"onnxruntime could not load this file as a YuNet ONNX model: {exc}", path=path
        ) from exc
    inputs = {i.name for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    missing = ({"input"} - inputs) | (set(_OUTPUTS) - outputs)
    if missing:
        raise ModelLoadingError(
            f"not a YuNet model: tensors {sorted(missing)} are missing", path=path
        )
    return session

