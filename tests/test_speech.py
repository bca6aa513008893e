"""Speech presence with Silero VAD through onnxruntime: deepscan.experts.speech."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import numpy as np
import pytest

from deepscan import synth
from deepscan.errors import ModelLoadingError
from deepscan.experts.speech import (
    CHUNK_SAMPLES,
    MIN_SPEECH_FRACTION,
    SpeechDetector,
    silero_model_path,
)
from deepscan.media import SAMPLE_RATE, WINDOW_SECONDS, load_waveform
from tests.conftest import REPO_ROOT

WINDOW = int(WINDOW_SECONDS * SAMPLE_RATE)


@pytest.fixture(scope="module")
def detector() -> SpeechDetector:
    return SpeechDetector()


def windows(wave: np.ndarray) -> list[np.ndarray]:
    """4 s windows as deepscan.media cuts them (a last one under 0.5 s merged into the one before)."""
    parts = [wave[i : i + WINDOW] for i in range(0, wave.size, WINDOW)]
    if len(parts) > 1 and parts[-1].size < 0.5 * SAMPLE_RATE:
        parts[-2] = np.concatenate([parts[-2], parts.pop()])
    return parts


def test_real_speech_has_speech_in_every_window(detector, samples_dir):
    """LJSpeech read speech (22 kHz WAV, decoded to 16 kHz): every window holds speech.

    Measured fractions of speech chunks per window: 0.90, 0.88, 0.98.
    """
    path = samples_dir / "real_speech_22k_mono.wav"
    if not path.is_file():
        pytest.skip("real_speech_22k_mono.wav is not in ../shared/samples")
    wave = load_waveform(path)
    fractions = [detector.speech_fraction(w) for w in windows(wave)]
    print("speech fractions per window:", [round(f, 3) for f in fractions])
    assert len(fractions) == 3
    assert all(f >= 0.5 for f in fractions)
    assert all(detector.has_speech(w) for w in windows(wave))


def test_synthetic_voice_counts_as_speech(detector):
    """deepscan.synth's source-filter voice (used by the sync tests) is speech to the VAD too."""
    wave, _ = synth.speech_like(8.0, seed=0)
    fractions = [detector.speech_fraction(w) for w in windows(wave)]
    print("synthetic voice fractions:", [round(f, 3) for f in fractions])  # measured 0.47, 0.66
    assert all(f >= MIN_SPEECH_FRACTION for f in fractions)


def non_speech() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(WINDOW) / SAMPLE_RATE
    return {
        "silence": np.zeros(WINDOW, np.float32),
        "white noise 0.1": (0.1 * rng.standard_normal(WINDOW)).astype(np.float32),
        "white noise 0.5": np.clip(0.5 * rng.standard_normal(WINDOW), -1, 1).astype(np.float32),
        "tone 440 Hz": (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        "tone 200 Hz": (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32),
    }


@pytest.mark.parametrize("name", list(non_speech()))
def test_silence_noise_and_tones_have_no_speech(detector, name):
    """Measured: fraction 0.0 for each; highest chunk probability 0.01-0.22 (the 200 Hz tone)."""
    wave = non_speech()[name]
    fraction = detector.speech_fraction(wave)
    assert fraction < MIN_SPEECH_FRACTION
    assert not detector.has_speech(wave)


def test_probabilities_shape_and_range(detector):
    wave, _ = synth.speech_like(1.0, seed=1)
    for n in (1, 511, 512, 513, wave.size):
        probs = detector.speech_probabilities(wave[:n])
        assert probs.dtype == np.float32 and probs.shape == (math.ceil(n / CHUNK_SAMPLES),)
        assert ((probs >= 0) & (probs <= 1)).all()
    assert detector.speech_probabilities(np.zeros(0, np.float32)).shape == (0,)
    assert detector.speech_fraction(np.zeros(0, np.float32)) == 0.0
    # windows are judged independently: the same audio gives the same probabilities
    np.testing.assert_array_equal(detector.speech_probabilities(wave), detector.speech_probabilities(wave))


def test_bad_input_and_missing_model(detector, tmp_path):
    with pytest.raises(ValueError):
        detector.speech_probabilities(np.zeros((2, 512), np.float32))
    with pytest.raises(ValueError):
        detector.speech_probabilities(np.array([0.0, np.nan], np.float32))
    with pytest.raises(ModelLoadingError):
        SpeechDetector(tmp_path / "missing.onnx")
    with pytest.raises(ValueError):
        SpeechDetector(threads=0)


def test_provenance(detector):
    """The packaged ONNX file, its hash and the package version name the cue."""
    assert detector.model_path == silero_model_path()
    assert detector.model_path.suffix == ".onnx"
    assert len(detector.sha256) == 64
    assert detector.name.startswith("silero-vad")


def test_loads_onnx_only_without_importing_the_package():
    """Only onnxruntime runs the model: the silero_vad package (which imports torch, sets its
    thread count and offers a TorchScript loader) is never imported; nor is torch."""
    code = (
        "import sys, numpy as np\n"
        "from deepscan.experts.speech import SpeechDetector\n"
        "d = SpeechDetector(); d.speech_fraction(np.zeros(16000, np.float32))\n"
        "print('silero_vad' in sys.modules, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cpu_cost_per_window(detector):
    """One 4 s window: 125 chunks of 32 ms (measured about 13-25 ms on 2 cores; loosely bounded)."""
    wave, _ = synth.speech_like(WINDOW_SECONDS, seed=2)
    detector.speech_fraction(wave)  # warm-up
    start = time.perf_counter()
    for _ in range(5):
        detector.speech_fraction(wave)
    per_window_ms = (time.perf_counter() - start) / 5 * 1000
    print(f"speech: {per_window_ms:.1f} ms per 4 s window")
    assert per_window_ms < 1000
