"""Speech presence per window with Silero VAD, run as ONNX through onnxruntime.

Silero VAD (Silero Team, "Silero VAD: pre-trained enterprise-grade Voice Activity Detector",
https://github.com/snakers4/silero-vad, MIT licence) is a small recurrent network that gives, for
each 32 ms chunk of 16 kHz audio (512 samples), the probability that it holds speech. The model
file ``silero_vad.onnx`` ships inside the ``silero-vad`` wheel; this module finds it on disk without
importing the ``silero_vad`` package (whose import loads torch and sets torch's thread count
for the whole process) and runs it with onnxruntime only: no TorchScript, no unpickling, no
network.

The ONNX graph takes ``input`` float32 ``(1, 64 + 512)`` (the last 64 samples of the previous chunk
as context, then the chunk), ``state`` float32 ``(2, 1, 128)`` and ``sr`` int64 ``16000``, and returns
``output`` ``(1, 1)``, the speech probability, and ``stateN``, the next state. Each call of
:meth:`SpeechDetector.speech_probabilities` starts from a zero state and zero context, so windows
are judged independently.

Measured (tests/test_speech.py; 2-core CPU, one onnxruntime thread): every 4 s window of the shared
LJSpeech sample holds speech; silence, white noise and a 440 Hz tone hold none; about 20-25 ms of
CPU per 4 s window.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import math
import os
from pathlib import Path

import numpy as np

from deepscan.errors import ModelLoadingError
from deepscan.media import SAMPLE_RATE

__all__ = [
    "CHUNK_SAMPLES",
    "CONTEXT_SAMPLES",
    "CHUNK_SECONDS",
    "SPEECH_THRESHOLD",
    "MIN_SPEECH_FRACTION",
    "MODEL_FILENAME",
    "silero_model_path",
    "SpeechDetector",
]

CHUNK_SAMPLES = 512  # samples per VAD step at 16 kHz (32 ms), fixed by the model
CONTEXT_SAMPLES = 64  # samples of the previous chunk prepended to each chunk, fixed by the model
CHUNK_SECONDS = CHUNK_SAMPLES / SAMPLE_RATE  # 0.032 s
STATE_SHAPE = (2, 1, 128)  # recurrent state of the model
SPEECH_THRESHOLD = 0.5  # chunk speech probability counted as speech (Silero's own default)
MIN_SPEECH_FRACTION = 0.1  # a window with fewer speech chunks than this fraction has "no speech"
MODEL_FILENAME = "silero_vad.onnx"  # the opset-16 model in silero_vad/data of the wheel
PACKAGE = "silero-vad"


def silero_model_path() -> Path:
    """Where the installed ``silero-vad`` wheel keeps its ONNX model, found without importing it.

    Returns
    -------
    Path
        ``.../site-packages/silero_vad/data/silero_vad.onnx``.

    Raises
    ------
    ModelLoadingError
        If the package is not installed or the file is missing.
    """
    # find_spec of a top-level name locates the package without running its __init__
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadingError(
            "the silero-vad package is not installed (pip install 'silero-vad>=5.1'); "
            "it ships the speech-presence model"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data" / MODEL_FILENAME
        if path.is_file():
            return path
    raise ModelLoadingError(f"the silero-vad package has no data/{MODEL_FILENAME}; reinstall silero-vad")


class SpeechDetector:
    """Speech probability per 32 ms chunk and speech fraction per window (Silero VAD, ONNX).

    Parameters
    ----------
    model_path : str or os.PathLike, optional
        The ONNX model; default the one packaged in the ``silero-vad`` wheel
        (:func:`silero_model_path`).
    threads : int
        onnxruntime intra-op threads (default 1: the model is tiny and the scanner has its own
        thread budget).

    Attributes
    ----------
    name : str
        ``"silero-vad-<version>"`` of the installed package (``"silero-vad"`` for a custom path).
    model_path : Path
        The ONNX file in use.
    sha256 : str
        SHA-256 of the ONNX file (provenance of the cue).

    Raises
    ------
    ModelLoadingError
        If the model file is missing or onnxruntime cannot load it.
    ValueError
        If ``threads`` is below 1.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, threads: int = 1) -> None:
        if int(threads) < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        path = Path(model_path) if model_path is not None else silero_model_path()
        if not path.is_file():
            raise ModelLoadingError(f"Silero VAD model not found: {path}")
        try:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types
            raise ModelLoadingError(f"cannot load the Silero VAD model {path}: {error}") from error
        names = {i.name for i in self._session.get_inputs()}
        if names != {"input", "state", "sr"}:
            raise ModelLoadingError(
                f"{path} is not the Silero VAD streaming model (inputs {sorted(names)}, expected "
                "input, state, sr)"
            )
        self.model_path = path
        self.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        version = None
        if model_path is None:
            try:
                version = importlib.metadata.version(PACKAGE)
            except importlib.metadata.PackageNotFoundError:
                version = None
        self.name = f"silero-vad-{version}" if version else "silero-vad"
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)

    def speech_probabilities(self, waveform: np.ndarray) -> np.ndarray:
        """Speech probability of each 32 ms chunk.

        Parameters
        ----------
        waveform : np.ndarray
            float ``(S,)`` mono at 16 kHz (:data:`deepscan.media.SAMPLE_RATE`) in [-1, 1], e.g.
            :attr:`deepscan.media.Window.waveform`. The last partial chunk is zero-padded.

        Returns
        -------
        np.ndarray
            float32 ``(N,)`` in [0, 1], ``N = ceil(S / 512)``; chunk ``k`` covers samples
            ``[512 k, 512 (k + 1))``, i.e. ``[0.032 k, 0.032 (k + 1))`` seconds. Empty for
            ``S = 0``.

        Raises
        ------
        ValueError
            If ``waveform`` is not 1-D or holds NaN or infinite values.
        """
        wave = np.asarray(waveform, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"waveform must be mono (S,) at {SAMPLE_RATE} Hz, got shape {wave.shape}")
        if not np.isfinite(wave).all():
            raise ValueError("waveform holds NaN or infinite samples")
        n = math.ceil(wave.size / CHUNK_SAMPLES)
        probs = np.zeros(n, np.float32)
        if n == 0:
            return probs
        padded = np.zeros(n * CHUNK_SAMPLES + CONTEXT_SAMPLES, np.float32)
        padded[CONTEXT_SAMPLES : CONTEXT_SAMPLES + wave.size] = wave
        state = np.zeros(STATE_SHAPE, np.float32)
        run = self._session.run
        for k in range(n):
            start = k * CHUNK_SAMPLES  # the chunk with its context: padded[start : start + 576]
            chunk = padded[None, start : start + CONTEXT_SAMPLES + CHUNK_SAMPLES]
            out, state = run(None, {"input": chunk, "state": state, "sr": self._sr})
            probs[k] = out.reshape(-1)[0]
        return probs

    def speech_fraction(self, waveform: np.ndarray) -> float:
        """Fraction of 32 ms chunks whose speech probability is at least :data:`SPEECH_THRESHOLD`.

        Parameters
        ----------
        waveform : np.ndarray
            float ``(S,)`` mono at 16 kHz.

        Returns
        -------
        float
            In [0, 1]; 0.0 for an empty waveform. Below :data:`MIN_SPEECH_FRACTION` the window
            counts as "no speech" (:meth:`has_speech`).

        Raises
        ------
        ValueError
            As :meth:`speech_probabilities`.
        """
        probs = self.speech_probabilities(waveform)
        return float(np.mean(probs >= SPEECH_THRESHOLD)) if probs.size else 0.0

    def has_speech(self, waveform: np.ndarray) -> bool:
        """Whether a window holds speech: :meth:`speech_fraction` >= :data:`MIN_SPEECH_FRACTION`.

        Parameters
        ----------
        waveform : np.ndarray
            float ``(S,)`` mono at 16 kHz.

        Returns
        -------
        bool

        Raises
        ------
        ValueError
            As :meth:`speech_probabilities`.
        """
        return self.speech_fraction(waveform) >= MIN_SPEECH_FRACTION
