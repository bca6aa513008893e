"""Face detection, tracking and crops: deepscan.faces."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from deepscan.errors import ModelLoadingError
from deepscan.faces import (
    CROP_SIZE,
    HAAR_LANDMARK_RATIOS,
    MESO_CROP_SCALE,
    MESO_CROP_SIZE,
    MOUTH_CROP_SIZE,
    Detection,
    FaceCropper,
    FaceCrops,
    FaceDetectorConfig,
    HaarDetector,
    aligned_crop,
    build_detector,
    crop_faces,
    estimate_landmarks,
    full_frame_crop,
    meso_crop,
    mouth_region,
)


def draw_face(img: np.ndarray, cx: int, cy: int, r: int) -> np.ndarray:
    """Draw a cartoon face (hair, skin, eye sockets, eyes, brows, nose, mouth) that Haar finds.

    ``r`` is half the face width in pixels; the face spans about ``2r`` wide and ``2.6r`` high.
    """
    s = r / 100.0

    def p(x, y):
        return int(round(cx + x * s)), int(round(cy + y * s))

    def n(v):
        return max(1, int(round(v * s)))

    cv2.ellipse(img, p(0, -40), (n(108), n(120)), 0, 180, 360, (40, 30, 25), -1)
    cv2.ellipse(img, p(0, 0), (n(100), n(130)), 0, 0, 360, (205, 165, 135), -1)
    for sx in (-1, 1):
        cv2.ellipse(img, p(sx * 40, -30), (n(28), n(16)), 0, 0, 360, (120, 90, 75), -1)
        cv2.ellipse(img, p(sx * 40, -28), (n(17), n(8)), 0, 0, 360, (30, 20, 20), -1)
        cv2.line(img, p(sx * 18, -58), p(sx * 65, -55), (50, 35, 30), n(9))
    cv2.ellipse(img, p(0, 35), (n(14), n(8)), 0, 0, 360, (140, 100, 85), -1)
    cv2.ellipse(img, p(0, 72), (n(38), n(10)), 0, 0, 360, (110, 45, 45), -1)
    return cv2.GaussianBlur(img, (0, 0), max(0.8, r / 40))


def face_frame(h: int, w: int, cx: int, cy: int, r: int, bg: int = 90) -> np.ndarray:
    return draw_face(np.full((h, w, 3), bg, np.uint8), cx, cy, r)


class ScriptedDetector:
    """Fake detector: returns ``script[k]`` on its k-th call (empty past the end)."""

    name = "scripted"

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    def __call__(self, frame):
        assert frame.dtype == np.uint8 and frame.ndim == 3
        out = self.script[self.calls] if self.calls < len(self.script) else []
        self.calls += 1
        return out


def blank(t: int, h: int = 480, w: int = 640) -> np.ndarray:
    return np.full((t, h, w, 3), 128, np.uint8)


def centres(boxes: np.ndarray) -> np.ndarray:
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)


# --- input handling -----------------------------------------------------------------------------


def test_empty_input_gives_empty_outputs():
    res = crop_faces(np.zeros((0, 0, 0, 3), np.uint8))
    assert res.crops.shape == (0, CROP_SIZE, CROP_SIZE, 3) and res.crops.dtype == np.uint8
    assert res.boxes.shape == (0, 4) and res.boxes.dtype == np.float32
    assert res.found.shape == (0,) and res.found.dtype == bool
    assert res.n_faces_max == 0 and res.frames_with_face == 0 and not res.any_face
    assert res.detector_name == HaarDetector.name == res.detector
    assert res.landmarks.shape == (0, 5, 2) and res.landmarks.dtype == np.float32
    assert res.landmarks_estimated.shape == (0,) and res.landmarks_estimated.dtype == bool
    assert res.meso_crops.shape == (0, MESO_CROP_SIZE, MESO_CROP_SIZE, 3)
    assert res.meso_crops.dtype == np.uint8
    assert res.mouth_crops.shape == (0, MOUTH_CROP_SIZE, MOUTH_CROP_SIZE)
    assert res.mouth_crops.dtype == np.uint8


@pytest.mark.parametrize("shape", [(1, 1), (2, 5), (23, 40), (7, 300)])
def test_tiny_frames_fall_back_to_full_frame(shape):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    res = crop_faces(frames)
    assert res.crops.shape == (2, CROP_SIZE, CROP_SIZE, 3)
    assert not res.found.any() and np.isnan(res.boxes).all()
    np.testing.assert_array_equal(res.crops[1], full_frame_crop(frames[1]))
    # no face: landmarks NaN, the Meso-4 crop is the centre square too, the mouth crop is zeros
    assert np.isnan(res.landmarks).all() and not res.landmarks_estimated.any()
    np.testing.assert_array_equal(res.meso_crops[1], full_frame_crop(frames[1], MESO_CROP_SIZE))
    assert res.mouth_crops.shape == (2, MOUTH_CROP_SIZE, MOUTH_CROP_SIZE)
    assert not res.mouth_crops.any()


def test_one_pixel_crop_is_that_colour():
    frames = np.array([[[[10, 200, 30]]]], np.uint8)
    crop = crop_faces(frames).crops[0]
    assert (crop == [10, 200, 30]).all()


@pytest.mark.parametrize(
    "frames, error",
    [
        (np.zeros((1, 8, 8, 3), np.float32), TypeError),
        ([[[[0, 0, 0]]]], TypeError),
        (np.zeros((8, 8, 3), np.uint8), ValueError),
        (np.zeros((1, 8, 8, 4), np.uint8), ValueError),
        (np.zeros((1, 0, 8, 3), np.uint8), ValueError),
    ],
)
def test_bad_frames_raise_typed_errors(frames, error):
    with pytest.raises(error, match="frames"):
        crop_faces(frames)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"margin": -0.1},
        {"smoothing": 0.0},
        {"max_gap": -1},
        {"detect_every": 0},
        {"meso_size": 0},
        {"mouth_size": 0},
    ],
)
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        FaceCropper(detector=ScriptedDetector([]), **kwargs)


# --- Haar on drawn faces ------------------------------------------------------------------------


@pytest.mark.parametrize("h, w, cx, cy, r", [(360, 480, 240, 180, 60), (720, 1280, 900, 300, 110)])
def test_haar_finds_drawn_face_and_crop_is_centred_on_it(h, w, cx, cy, r):
    frame = face_frame(h, w, cx, cy, r)
    res = crop_faces(frame[None])
    assert res.found[0] and res.detected[0] and res.n_faces_max == 1
    (bcx, bcy), side = centres(res.boxes)[0], res.boxes[0, 2] - res.boxes[0, 0]
    # Haar's box covers eyes to mouth: centred on the face within a fraction of its size
    assert abs(bcx - cx) < 0.15 * r and abs(bcy - cy) < 0.35 * r
    assert 1.0 * r < side < 3.0 * r
    # the crop's centre is the face (skin/eyes), not the grey background
    centre = res.crops[0, 80:144, 80:144].astype(float)
    assert abs(centre.mean() - 90) > 15
    assert np.abs(centre[..., 0] - centre[..., 2]).mean() > 20  # skin is reddish, background grey
    # Haar gives no landmarks: they are estimated from its box, and marked as such
    assert res.landmarks_estimated[0]
    lm = res.landmarks[0]
    assert np.isfinite(lm).all()
    x0, y0, x1, y1 = res.boxes[0]
    assert ((lm >= [x0, y0]) & (lm <= [x1, y1])).all()
    # the drawn eyes are at (cx -+ 0.4 r, cy - 0.28 r), the mouth at cy + 0.72 r
    assert abs(lm[0, 0] - (cx - 0.4 * r)) < 0.25 * r and abs(lm[1, 0] - (cx + 0.4 * r)) < 0.25 * r
    assert lm[0, 1] < lm[2, 1] < lm[3, 1]
    assert res.meso_crops[0].shape == (MESO_CROP_SIZE, MESO_CROP_SIZE, 3)


def test_haar_sees_no_face_in_noise_and_falls_back():
    rng = np.random.default_rng(1)
    frames = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (0, 0), 2)[None]
    res = crop_faces(frames)
    assert not res.found[0] and np.isnan(res.boxes[0]).all()
    np.testing.assert_array_equal(res.crops[0], full_frame_crop(frames[0]))


def test_full_frame_crop_is_centre_square():
    frame = np.zeros((100, 300, 3), np.uint8)
    frame[:, :100] = 255  # left third white, the rest black
    frame[:, 200:] = 255  # right third white
    crop = full_frame_crop(frame, 50)
    assert crop.shape == (50, 50, 3) and crop.max() == 0


# --- tracking, smoothing, gaps with a scripted detector -----------------------------------------


def test_starts_on_largest_face_and_keeps_it_when_another_appears():
    small_a = (100, 100, 80, 80, 1.0)
    big_b = (400, 150, 160, 160, 1.0)
    # frame 0: A only; frames 1-5: A and a bigger B -> A kept
    script = [[small_a]] + [[big_b, small_a]] * 5
    res = crop_faces(blank(6), detector=ScriptedDetector(script))
    assert res.found.all() and res.detected.all() and res.n_faces_max == 2
    np.testing.assert_allclose(centres(res.boxes), [[140, 140]] * 6, atol=1e-3)
    # with both present from the first frame, the largest starts the track
    res = crop_faces(blank(3), detector=ScriptedDetector([[small_a, big_b]] * 3))
    np.testing.assert_allclose(centres(res.boxes), [[480, 230]] * 3, atol=1e-3)


def test_moving_face_is_followed_by_iou():
    script = [[(100 + 10 * i, 100, 100, 100, 1.0), (500, 300, 60, 60, 1.0)] for i in range(10)]
    res = crop_faces(blank(10), detector=ScriptedDetector(script), smoothing=1.0)
    np.testing.assert_allclose(centres(res.boxes)[:, 0], 150 + 10 * np.arange(10), atol=1e-3)


def test_smoothing_reduces_jitter():
    rng = np.random.default_rng(2)
    jitter = rng.normal(0, 6, (40, 2))
    script = [[(200 + dx, 150 + dy, 120, 120, 1.0)] for dx, dy in jitter]
    raw = crop_faces(blank(40), detector=ScriptedDetector(script), smoothing=1.0)
    smooth = crop_faces(blank(40), detector=ScriptedDetector(script), smoothing=0.3)
    np.testing.assert_allclose(centres(raw.boxes), [260, 210] + jitter, atol=1e-3)
    raw_std = centres(raw.boxes).std(axis=0)
    smooth_std = centres(smooth.boxes).std(axis=0)
    assert (smooth_std < 0.7 * raw_std).all()


def test_short_gap_is_held_long_gap_is_no_face():
    face = [(200, 100, 100, 100, 1.0)]
    script = [face] * 3 + [[]] * 7
    res = crop_faces(blank(10), detector=ScriptedDetector(script), max_gap=4)
    assert res.found.tolist() == [True] * 7 + [False] * 3
    assert res.detected.tolist() == [True] * 3 + [False] * 7
    np.testing.assert_allclose(res.boxes[3:7], np.repeat(res.boxes[2:3], 4, axis=0))
    assert np.isnan(res.boxes[7:]).all()
    # the crops of held frames are face crops, the later ones full-frame fallbacks
    frames = blank(10)
    frames[:, 100:200, 200:300] = (255, 0, 0)
    res = crop_faces(frames, detector=ScriptedDetector(script), max_gap=4)
    assert (res.crops[5, 112, 112] == (255, 0, 0)).all()
    np.testing.assert_array_equal(res.crops[9], full_frame_crop(frames[9]))


def test_track_switches_to_new_face_after_gap():
    a, b = (50, 50, 80, 80, 1.0), (400, 300, 80, 80, 1.0)
    script = [[a]] * 2 + [[b]] * 6
    res = crop_faces(blank(8), detector=ScriptedDetector(script), max_gap=2)
    # frames 2-3 hold A (gap 1, 2); at frame 4 the gap exceeds max_gap and B takes over
    np.testing.assert_allclose(centres(res.boxes)[:4], [[90, 90]] * 4, atol=1e-3)
    np.testing.assert_allclose(centres(res.boxes)[4:], [[440, 340]] * 4, atol=1e-3)
    assert res.detected.tolist() == [True, True, False, False] + [True] * 4
    assert res.found.all()


def test_tracker_state_carries_across_windows():
    a, big = (100, 100, 80, 80, 1.0), (300, 200, 200, 200, 1.0)
    cropper = FaceCropper(detector=ScriptedDetector([[a]] * 4 + [[big, a]] * 4))
    tracker = cropper.new_tracker()
    first, second = tracker.crop(blank(4)), tracker.crop(blank(4))
    assert first.found.all() and second.found.all()
    np.testing.assert_allclose(centres(second.boxes), [[140, 140]] * 4, atol=1e-3)
    # a fresh tracker on the second window starts on the largest face instead
    fresh = FaceCropper(detector=ScriptedDetector([[big, a]] * 4)).crop(blank(4))
    np.testing.assert_allclose(centres(fresh.boxes), [[400, 300]] * 4, atol=1e-3)


def test_detect_every_k_frames_across_windows():
    det = ScriptedDetector([[(100, 100, 80, 80, 1.0)]] * 10)
    tracker = FaceCropper(detector=det, detect_every=3).new_tracker()
    a, b = tracker.crop(blank(5)), tracker.crop(blank(5))
    assert det.calls == 4  # frames 0, 3, 6, 9 of the file
    assert a.found.all() and b.found.all()
    assert a.detected.tolist() == [True, False, False, True, False]
    assert b.detected.tolist() == [False, True, False, False, True]


def test_frame_size_change_resets_track():
    det = ScriptedDetector([[(100, 100, 80, 80, 1.0)], []])
    tracker = FaceCropper(detector=det).new_tracker()
    assert tracker.crop(blank(1)).found[0]
    assert not tracker.crop(blank(1, 240, 320)).found[0]


def test_crop_contains_face_with_margin_and_black_padding_at_border():
    frame = np.full((1, 300, 400, 3), 255, np.uint8)
    frame[0, 100:200, 150:250] = (0, 0, 255)  # a 100 px "face"
    det = ScriptedDetector([[(150, 100, 100, 100, 1.0)]])
    res = crop_faces(frame, detector=det, margin=0.25)
    crop = res.crops[0]
    np.testing.assert_allclose(res.boxes[0], [150, 100, 250, 200])
    # the face fills the central 1/1.5 of the crop, white margin around it
    k = CROP_SIZE / 1.5
    lo, hi = int((CROP_SIZE - k) / 2) + 3, int((CROP_SIZE + k) / 2) - 3
    assert (crop[lo:hi, lo:hi] == (0, 0, 255)).all()
    assert (crop[:lo - 6] == 255).all() and (crop[:, hi + 6 :] == 255).all()
    # a face at the corner: the part of the square outside the frame is black
    det = ScriptedDetector([[(0, 0, 60, 60, 1.0)]])
    crop = crop_faces(np.full((1, 300, 400, 3), 255, np.uint8), detector=det).crops[0]
    assert (crop[:20, :20] == 0).all() and (crop[-20:, -20:] == 255).all()


def test_non_square_face_box_keeps_aspect():
    frame = np.zeros((1, 400, 400, 3), np.uint8)
    det = ScriptedDetector([[(150, 100, 80, 160, 1.0)]])  # tall box, as YuNet gives
    box = crop_faces(frame, detector=det).boxes[0]
    assert box[2] - box[0] == pytest.approx(160) and box[3] - box[1] == pytest.approx(160)
    assert centres(box[None])[0] == pytest.approx([190, 180])


def test_detector_output_is_sanitised():
    det = ScriptedDetector([[(-50, -50, 40, 40, 1.0), (10, 10, 0, 0, 1.0), (np.nan, 1, 2, 3, 1.0)]])
    res = crop_faces(blank(1, 100, 100), detector=det)
    assert res.n_faces_max == 0 and not res.found[0]


# --- detectors (downloads belong to deepscan.weights) --------------------------------------------


def test_yunet_needs_a_loadable_model(tmp_path):
    with pytest.raises(ModelLoadingError, match="model_path"):
        build_detector(FaceDetectorConfig(backend="yunet"))
    with pytest.raises(ModelLoadingError, match="not found"):
        build_detector(FaceDetectorConfig(backend="yunet", model_path=tmp_path / "nope.onnx"))
    junk = tmp_path / "face_detection_yunet_2026may.onnx"
    junk.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")  # an LFS pointer, not ONNX
    with pytest.raises(ModelLoadingError, match="YuNet") as info:
        build_detector(FaceDetectorConfig(backend="yunet", model_path=junk))
    assert str(junk) in str(info.value)
    with pytest.raises(ValueError, match="backend"):
        build_detector(FaceDetectorConfig(backend="mtcnn"))


def test_haar_is_the_default_detector_and_uses_its_own_max_side():
    det = build_detector()
    assert isinstance(det, HaarDetector) and det.max_side == 320
    assert build_detector(FaceDetectorConfig(max_side=200)).max_side == 200


# --- landmarks, aligned crops -------------------------------------------------------------------


def upright_landmarks(cx: float, cy: float, d: float) -> np.ndarray:
    """Five landmarks of an upright frontal face: eyes 2d apart, mouth 2d below the eyes."""
    return np.array(
        [[cx - d, cy - d], [cx + d, cy - d], [cx, cy], [cx - 0.8 * d, cy + d], [cx + 0.8 * d, cy + d]],
        np.float32,
    )


def test_estimated_landmarks_follow_the_fixed_ratios():
    lm = estimate_landmarks((100, 50, 200, 300))
    np.testing.assert_allclose(lm, [100, 50] + HAAR_LANDMARK_RATIOS * [200, 300])
    assert lm[0, 0] < lm[2, 0] < lm[1, 0]  # right eye on the image's left
    assert lm[0, 1] == lm[1, 1] < lm[2, 1] < lm[3, 1] == lm[4, 1]


def test_detector_landmarks_are_used_and_smoothed_like_the_box():
    rng = np.random.default_rng(3)
    jitter = rng.normal(0, 4, (30, 2))
    script = [
        [Detection(200 + dx, 150 + dy, 120, 120, 0.9, upright_landmarks(260 + dx, 215 + dy, 25))]
        for dx, dy in jitter
    ]
    raw = crop_faces(blank(30), detector=ScriptedDetector(script), smoothing=1.0)
    smooth = crop_faces(blank(30), detector=ScriptedDetector(script), smoothing=0.3)
    assert not raw.landmarks_estimated.any() and raw.landmarks.dtype == np.float32
    expected = np.stack([upright_landmarks(260 + dx, 215 + dy, 25) for dx, dy in jitter])
    np.testing.assert_allclose(raw.landmarks, expected, atol=1e-3)
    noses = smooth.landmarks[:, 2]
    assert (noses.std(axis=0) < 0.7 * raw.landmarks[:, 2].std(axis=0)).all()
    # smoothed landmarks and smoothed box move together
    np.testing.assert_allclose(noses - centres(smooth.boxes), [[0, 5]] * 30, atol=1e-3)


def test_landmarks_are_held_through_a_gap_and_nan_after():
    face = [Detection(200, 100, 100, 100, 0.9, upright_landmarks(250, 160, 20))]
    res = crop_faces(blank(8), detector=ScriptedDetector([face] * 2 + [[]] * 6), max_gap=3)
    assert res.found.tolist() == [True] * 5 + [False] * 3
    np.testing.assert_allclose(res.landmarks[2:5], np.repeat(res.landmarks[1:2], 3, axis=0))
    assert np.isnan(res.landmarks[5:]).all()
    assert (res.mouth_crops[:5].reshape(5, -1).max(axis=1) > 0).all()
    assert not res.mouth_crops[5:].any()


def test_plain_tuples_and_bad_landmarks_fall_back_to_estimates():
    lm_bad = np.full((5, 2), np.nan)
    script = [[(100, 100, 80, 80, 1.0)], [Detection(100, 100, 80, 80, 1.0, lm_bad)]]
    res = crop_faces(blank(2), detector=ScriptedDetector(script), smoothing=1.0)
    assert res.landmarks_estimated.all()
    np.testing.assert_allclose(res.landmarks[1], estimate_landmarks((100, 100, 80, 80)), atol=1e-4)


def test_faces_crops_cut_from_the_same_frame():
    frames = blank(3)
    for i in range(3):
        frames[i, 200:260, 300:340] = (40 * i, 255, 0)  # a per-frame colour at the nose
    face = [Detection(270, 170, 100, 100, 0.9, upright_landmarks(320, 230, 20))]
    res = crop_faces(frames, detector=ScriptedDetector([face] * 3))
    c = MESO_CROP_SIZE // 2
    for i in range(3):
        assert (res.meso_crops[i, c, c] == (40 * i, 255, 0)).all()
        assert (res.crops[i, CROP_SIZE // 2, CROP_SIZE // 2] == (40 * i, 255, 0)).all()


def test_meso_crop_is_centred_on_the_nose_with_the_readme_side():
    frame = np.zeros((600, 600, 3), np.uint8)
    d = 20.0  # eye distance 40, eye-to-mouth distance 40 -> side 2.86 * 40 = 114.4 px
    side = MESO_CROP_SCALE * 2 * d
    x0, x1 = int(round(300 - side / 2)), int(round(300 + side / 2))
    frame[x0:x1, x0:x1] = 255  # a white square exactly the crop's size, centred on the nose
    crop = meso_crop(frame, upright_landmarks(300, 300, d))
    assert crop.shape == (MESO_CROP_SIZE, MESO_CROP_SIZE, 3) and crop.dtype == np.uint8
    assert crop[4:-4, 4:-4].min() == 255  # all white inside ...
    bigger = meso_crop(frame, upright_landmarks(300, 300, 1.2 * d))
    assert bigger[:8].max() == 0 and bigger[:, :8].max() == 0  # ... and black around a bigger crop


def test_meso_crop_turns_the_eye_mouth_axis_upright():
    rng = np.random.default_rng(4)
    frame = cv2.resize(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), (400, 400))
    lm = upright_landmarks(200, 210, 30)
    upright = meso_crop(frame, lm)
    # the same face turned 90 degrees clockwise on screen: (x, y) -> (H - 1 - y, x)
    turned = np.ascontiguousarray(np.rot90(frame, k=-1))
    lm_turned = np.stack([399 - lm[:, 1], lm[:, 0]], axis=1)
    again = meso_crop(turned, lm_turned)
    assert np.abs(again.astype(int) - upright.astype(int)).mean() < 3


def test_meso_crop_pads_black_and_averages_when_shrinking():
    frame = np.full((100, 100, 3), 200, np.uint8)
    crop = meso_crop(frame, upright_landmarks(5, 5, 10))  # nose at the corner
    assert (crop[:40, :40] == 0).all() and (crop[-40:, -40:] == 200).all()
    checker = (np.indices((1000, 1000)).sum(axis=0) % 2 * 255).astype(np.uint8)
    checker = np.repeat(checker[..., None], 3, axis=2)
    crop = meso_crop(checker, upright_landmarks(500, 500, 100))  # 572 px -> 256 px
    assert abs(crop.mean() - 127.5) < 3 and crop.std() < 15  # averaged, not aliased


def test_meso_crop_of_degenerate_landmarks_is_the_centre_square():
    frame = np.random.default_rng(5).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        meso_crop(frame, np.full((5, 2), np.nan)), full_frame_crop(frame, MESO_CROP_SIZE)
    )
    np.testing.assert_array_equal(
        meso_crop(frame, np.zeros((5, 2))), full_frame_crop(frame, MESO_CROP_SIZE)
    )


def test_mouth_region_is_a_level_grayscale_square_on_the_mouth():
    frame = np.full((400, 400, 3), 220, np.uint8)
    lm = upright_landmarks(200, 200, 30)  # mouth corners (176, 230) and (224, 230)
    cv2.ellipse(frame, (200, 230), (22, 6), 0, 0, 360, (20, 20, 20), -1)  # dark lips
    crop = mouth_region(frame, lm)
    assert crop.shape == (MOUTH_CROP_SIZE, MOUTH_CROP_SIZE) and crop.dtype == np.uint8
    c = MOUTH_CROP_SIZE // 2
    assert crop[c - 1 : c + 1, c - 3 : c + 3].max() < 60  # the mouth is in the middle
    assert crop[:4].min() > 200 and crop[-4:].min() > 200  # skin above and below
    # the lips are a horizontal bar: wide in the crop, thin
    dark = crop < 120
    rows, cols = np.nonzero(dark)
    assert np.ptp(cols) > 2 * np.ptp(rows)
    # turned 90 degrees on screen, the crop is the same
    turned = np.ascontiguousarray(np.rot90(frame, k=-1))
    lm_turned = np.stack([399 - lm[:, 1], lm[:, 0]], axis=1)
    assert np.abs(mouth_region(turned, lm_turned).astype(int) - crop.astype(int)).mean() < 3
    assert not mouth_region(frame, np.full((5, 2), np.nan)).any()


def test_aligned_crop_rejects_degenerate_geometry():
    frame = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError):
        aligned_crop(frame, (5, 5), 0.0, (0, 1), 8)
    with pytest.raises(ValueError):
        aligned_crop(frame, (5, 5), 4.0, (0, 0), 8)
    assert aligned_crop(frame[..., 0], (5, 5), 4.0, (0, 1), 8).shape == (8, 8)


def test_face_crops_fill_missing_fields():
    res = FaceCrops(
        np.zeros((2, 4, 4, 3), np.uint8), np.full((2, 4), np.nan, np.float32),
        np.zeros(2, bool), np.zeros(2, bool), 0, "custom",
    )  # fmt: skip
    assert res.landmarks.shape == (2, 5, 2) and np.isnan(res.landmarks).all()
    assert res.meso_crops.shape == (2, MESO_CROP_SIZE, MESO_CROP_SIZE, 3)
    assert res.mouth_crops.shape == (2, MOUTH_CROP_SIZE, MOUTH_CROP_SIZE)


# --- real photos and videos from ../shared (skipped when absent) --------------------------------


@pytest.mark.parametrize(
    "name", ["real_face_ffhq.png", "fake_face_sd15.png", "fake_face_stylegan2.png"]
)
def test_haar_finds_face_in_sample_portraits(samples_dir, name):
    image = np.asarray(Image.open(samples_dir / name).convert("RGB"))
    res = crop_faces(image[None])
    assert res.found[0] and res.detected[0]
    h, w = image.shape[:2]
    cx, cy = centres(res.boxes)[0]
    side = res.boxes[0, 2] - res.boxes[0, 0]
    assert 0.2 * w < cx < 0.8 * w and 0.2 * h < cy < 0.8 * h and side > 0.3 * min(h, w)


def test_haar_follows_talking_face_video(samples_dir):
    with av.open(str(samples_dir / "real_talking_face_mp4v_aac16k_stereo.mp4")) as container:
        decoded = zip(range(48), container.decode(video=0))
        frames = [f.to_ndarray(format="rgb24") for _, f in decoded]
    frames = np.stack(frames[::3])  # ~8 fps
    tracker = FaceCropper().new_tracker()
    first, second = tracker.crop(frames[:8]), tracker.crop(frames[8:])
    assert first.found.all() and second.found.all()
    c = centres(np.concatenate([first.boxes, second.boxes]))
    assert np.abs(np.diff(c, axis=0)).max() < 0.1 * frames.shape[2]  # no jumps to other boxes


@pytest.mark.parametrize("name", ["exif_orientation_6.jpg", "one_pixel.png", "grayscale.png"])
def test_shared_cases_do_not_crash(cases_dir, name):
    image = np.asarray(ImageOps.exif_transpose(Image.open(cases_dir / name)).convert("RGB"))
    res = crop_faces(image[None])
    assert res.crops.shape == (1, CROP_SIZE, CROP_SIZE, 3)
    assert res.found[0] == np.isfinite(res.boxes[0]).all()


def test_exif_rotated_face_is_found_once_upright(tmp_path):
    upright = face_frame(240, 320, 160, 120, 55)
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the stored pixels lie on their side
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1))).save(path, exif=exif, quality=95)
    stored = np.asarray(Image.open(path).convert("RGB"))
    shown = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert shown.shape == upright.shape
    assert crop_faces(shown[None]).found[0]
    assert not crop_faces(stored[None]).found[0]  # frontal Haar needs upright faces


def test_haar_follows_synthetic_talking_face():
    synth = pytest.importorskip("deepscan.synth")
    clip = synth.make_clip(duration_s=2.0, fps=8, seed=0)
    res = crop_faces(clip.frames)
    assert res.found.all() and res.detected.mean() >= 0.75
    for box, truth in zip(res.boxes, clip.boxes):
        iw = min(box[2], truth[2]) - max(box[0], truth[0])
        ih = min(box[3], truth[3]) - max(box[1], truth[1])
        inter = max(iw, 0) * max(ih, 0)
        union = np.prod(box[2:] - box[:2]) + np.prod(truth[2:] - truth[:2]) - inter
        assert inter / union > 0.5
