"""YuNet port: deepscan.faces.yunet (the model and samples come from ../shared; decode runs anywhere)."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
from PIL import Image

import deepscan.faces
from deepscan.errors import ModelLoadingError
from deepscan.faces.yunet import (
    NMS_IOU,
    SCORE_THRESHOLD,
    STRIDES,
    YUNET_FILENAME,
    YUNET_MAX_SIDE,
    YuNet,
    decode,
    nms,
)
from deepscan.faces import FaceCropper, FaceDetectorConfig, build_detector
from deepscan.media import iter_windows

FACE_IMAGES = ["real_face_ffhq.png", "fake_face_sd15.png", "fake_face_stylegan2.png"]
FACE_VIDEOS = [
    "real_talking_face_mp4v_aac16k_stereo.mp4",
    "real_talking_face_vfr_aac_stereo.mp4",
    "real_film_face_noaudio.mp4",
    "fake_faceswap_film_noaudio.mp4",
    "fake_faceswap_gif_named_as.webp",
]
NO_FACE_CASES = ["no_face_with_audio.mp4", "variable_frame_rate.mp4", "rotated_90_display_matrix.mp4"]


@functools.lru_cache(maxsize=4)
def cached_yunet(path, max_side=YUNET_MAX_SIDE) -> YuNet:
    return YuNet(path, max_side=max_side)


@pytest.fixture
def yunet_path(models_dir):
    return models_dir / YUNET_FILENAME


def load_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def landmarks_inside(det, tol: float = 0.0) -> bool:
    lm = det.landmarks
    return bool(
        ((lm[:, 0] >= det.x - tol) & (lm[:, 0] <= det.x + det.w + tol)).all()
        and ((lm[:, 1] >= det.y - tol) & (lm[:, 1] <= det.y + det.h + tol)).all()
    )


# --- decode and NMS on made-up outputs (no model needed) -----------------------------------------


def fake_outputs(height: int, width: int, cells: dict) -> dict:
    """All-zero YuNet outputs except ``cells[(stride, row, col)] = (cls, obj, bbox4, kps10)``."""
    out = {}
    for s in STRIDES:
        n = (height // s) * (width // s)
        out[f"cls_{s}"] = np.zeros((1, n, 1), np.float32)
        out[f"obj_{s}"] = np.zeros((1, n, 1), np.float32)
        out[f"bbox_{s}"] = np.zeros((1, n, 4), np.float32)
        out[f"kps_{s}"] = np.zeros((1, n, 10), np.float32)
    for (s, row, col), (cls, obj, bbox, kps) in cells.items():
        i = row * (width // s) + col
        out[f"cls_{s}"][0, i, 0], out[f"obj_{s}"][0, i, 0] = cls, obj
        out[f"bbox_{s}"][0, i], out[f"kps_{s}"][0, i] = bbox, kps
    return out


def test_decode_follows_the_readme_formulas():
    kps = np.arange(10, dtype=np.float32) / 10
    cells = {(16, 2, 3): (0.81, 1.0, [0.5, 0.25, np.log(4), np.log(2)], kps)}
    dets = decode(fake_outputs(64, 96, cells), 64, 96, score_threshold=0.5)
    assert dets.shape == (1, 15) and dets.dtype == np.float32
    cx, cy, w, h = (3 + 0.5) * 16, (2 + 0.25) * 16, 4 * 16, 2 * 16
    np.testing.assert_allclose(dets[0, :4], [cx - w / 2, cy - h / 2, w, h], rtol=1e-5)
    assert dets[0, 4] == pytest.approx(0.9)  # sqrt(0.81 * 1.0)
    expected = [((3 + kps[2 * j]) * 16, (2 + kps[2 * j + 1]) * 16) for j in range(5)]
    np.testing.assert_allclose(dets[0, 5:].reshape(5, 2), expected, rtol=1e-5)


def test_decode_thresholds_and_suppresses_overlaps():
    box = [0.5, 0.5, np.log(4), np.log(4)]
    cells = {
        (8, 4, 4): (0.9, 0.9, box, np.zeros(10)),  # score 0.9
        (8, 4, 5): (0.8, 0.8, box, np.zeros(10)),  # score 0.8, shifted by 8 px: IoU 0.6 -> dropped
        (8, 0, 0): (0.7, 0.7, box, np.zeros(10)),  # score 0.7, far away -> kept
        (32, 1, 1): (0.5, 0.5, box, np.zeros(10)),  # score 0.5 < threshold
    }
    dets = decode(fake_outputs(96, 96, cells), 96, 96, score_threshold=0.6, nms_iou=NMS_IOU)
    np.testing.assert_allclose(dets[:, 4], [0.9, 0.7], rtol=1e-5)
    assert decode(fake_outputs(96, 96, {}), 96, 96).shape == (0, 15)
    with pytest.raises(ValueError, match="cells"):
        decode(fake_outputs(96, 96, {}), 64, 96)


def test_nms_keeps_best_of_each_cluster():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10], [0, 0, 10, 10]], float)
    scores = np.array([0.8, 0.9, 0.5, 0.1])
    assert nms(boxes, scores, 0.3).tolist() == [1, 2]
    assert nms(boxes, scores, 1.0).tolist() == [1, 0, 2, 3]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.3).tolist() == []


def test_missing_or_junk_model_is_a_model_loading_error(tmp_path):
    with pytest.raises(ModelLoadingError, match="not found") as info:
        YuNet(tmp_path / YUNET_FILENAME)
    assert YUNET_FILENAME in str(info.value)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07 not a protobuf")
    with pytest.raises(ModelLoadingError, match="YuNet") as info:
        YuNet(junk)
    assert str(junk) in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"score_threshold": 1.5}, {"nms_iou": -0.1}, {"max_side": 16}, {"threads": 0}],
)
def test_bad_parameters_raise_before_loading(tmp_path, kwargs):
    with pytest.raises(ValueError):
        YuNet(tmp_path / "never-read.onnx", **kwargs)


# --- the published model (../shared) -------------------------------------------------------------


def test_ffhq_box_and_score_match_opencv(yunet_path, samples_dir):
    # the shared models README: cv2.FaceDetectorYN gives box [120, 81, 284, 408], score 0.935
    net = cached_yunet(yunet_path, None)
    dets = net(load_rgb(samples_dir / "real_face_ffhq.png"))
    assert len(dets) == 1
    d = dets[0]
    np.testing.assert_allclose([d.x, d.y, d.w, d.h], [120, 81, 284, 408], atol=1.0)
    assert d.score == pytest.approx(0.935, abs=0.001)
    lm = d.landmarks
    assert lm.shape == (5, 2) and lm.dtype == np.float32
    # right eye (subject's right) on the image's left; eyes above the nose above the mouth
    assert lm[0, 0] < lm[2, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]
    assert max(lm[0, 1], lm[1, 1]) < lm[2, 1] < min(lm[3, 1], lm[4, 1])
    assert landmarks_inside(d)


def test_downscaled_detection_is_mapped_back_to_the_frame(yunet_path, samples_dir):
    image = load_rgb(samples_dir / "real_face_ffhq.png")
    full = cached_yunet(yunet_path, None)(image)[0]
    big = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)  # area-shrinking it gives image back
    mapped = cached_yunet(yunet_path, 512)(big)[0]  # searched at 512 px, reported at 1024
    np.testing.assert_allclose(
        [mapped.x, mapped.y, mapped.w, mapped.h], [2 * full.x, 2 * full.y, 2 * full.w, 2 * full.h], atol=0.01
    )
    np.testing.assert_allclose(mapped.landmarks, 2 * full.landmarks, atol=0.01)
    assert mapped.score == pytest.approx(full.score, abs=1e-6)
    # an input that is not a multiple of 32 is padded, not resized: same face, same place
    part = np.ascontiguousarray(image[:470, :500])
    d = cached_yunet(yunet_path, None)(part)[0]
    np.testing.assert_allclose([d.x, d.y, d.w, d.h], [full.x, full.y, full.w, full.h], atol=3)


@pytest.mark.parametrize("name", FACE_IMAGES)
def test_finds_the_face_in_sample_portraits(yunet_path, samples_dir, name):
    dets = cached_yunet(yunet_path)(load_rgb(samples_dir / name))
    assert len(dets) == 1 and dets[0].score >= 0.9
    assert landmarks_inside(dets[0])


@pytest.mark.parametrize("name", FACE_VIDEOS)
def test_finds_a_face_in_every_sampled_video_frame(yunet_path, samples_dir, name):
    net = cached_yunet(yunet_path)
    n = 0
    for window in iter_windows(samples_dir / name):
        for frame in window.frames:
            dets = net(frame)
            assert dets, f"no face in frame {n} of {name}"
            best = dets[0]  # best score first
            assert best.score >= 0.85 and landmarks_inside(best)
            assert all(d.score >= SCORE_THRESHOLD for d in dets)
            n += 1
    assert n >= 30


@pytest.mark.parametrize("name", NO_FACE_CASES)
def test_no_face_where_there_is_none(yunet_path, cases_dir, name):
    net = cached_yunet(yunet_path)
    frames = [f for w in iter_windows(cases_dir / name) for f in w.frames]
    assert frames and all(net(f) == [] for f in frames)
    noise = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (240, 320, 3), np.uint8), (0, 0), 2)
    assert net(noise) == [] and net(np.zeros((1, 1, 3), np.uint8)) == []


def test_rejects_frames_that_are_not_uint8_rgb(yunet_path):
    net = cached_yunet(yunet_path)
    with pytest.raises(TypeError):
        net(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError):
        net(np.zeros((32, 32), np.uint8))


def test_build_detector_and_face_cropper_use_the_port(yunet_path, samples_dir):
    det = build_detector(FaceDetectorConfig(backend="yunet", model_path=yunet_path))
    assert isinstance(det, YuNet) and deepscan.faces.YuNetDetector is YuNet
    assert det.name == "yunet-2026may" and det.max_side == YUNET_MAX_SIDE
    assert det.score_threshold == SCORE_THRESHOLD
    assert det.session.get_session_options().intra_op_num_threads == 1
    cropper = FaceCropper(detector=det)
    tracker = cropper.new_tracker()
    for window in iter_windows(samples_dir / "real_talking_face_vfr_aac_stereo.mp4"):
        res = tracker.crop(window.frames)
        assert res.detector_name == "yunet-2026may"
        assert res.found.all() and not res.landmarks_estimated.any()
        lm, boxes = res.landmarks, res.boxes
        assert np.isfinite(lm).all()
        assert ((lm >= boxes[:, None, :2]) & (lm <= boxes[:, None, 2:])).all()
        # a face, not the background: the meso crop's centre differs from its corners
        centre = res.meso_crops[:, 96:160, 96:160].astype(float).mean(axis=(1, 2, 3))
        assert res.meso_crops.shape[1:] == (256, 256, 3) and (centre > 40).all()
        assert (res.mouth_crops.reshape(len(res), -1).std(axis=1) > 5).all()
