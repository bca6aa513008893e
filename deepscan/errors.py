"""Typed errors with reasons a person understands.

Every error deepscan raises on purpose derives from :class:`DeepscanError`. Each class carries a
short, stable ``reason`` (what a result's ``reason`` field shows, e.g. ``"empty file"``) and a
message that says what happened to which file and, where there is one, what to do about it.

Per-file failures during a scan become results with ``status="error"`` and this ``reason``; the
batch goes on.
"""

from __future__ import annotations

import os

__all__ = [
    "DeepscanError",
    "MediaError",
    "MediaDecodeError",
    "DecoderCrashedError",
    "EmptyFileError",
    "NotMediaError",
    "CorruptMediaError",
    "NoDecodableStreamError",
    "UnsupportedCodecError",
    "AudioTooShortError",
    "LimitExceededError",
    "UnreadableFileError",
    "ModelLoadingError",
    "CheckpointError",
    "CheckpointMismatchError",
    "DetectorNotConfiguredError",
    "DownloadError",
    "ChecksumMismatchError",
    "ModelsDirNotFoundError",
    "DetectorNotFoundError",
    "OutputWriteError",
]


class DeepscanError(Exception):
    """Base class of deepscan's own errors.

    Parameters
    ----------
    message : str
        What happened, in a sentence a person understands.
    path : str or os.PathLike, optional
        The file the error is about, when there is one.

    Attributes
    ----------
    reason : str
        Short, stable label of the error kind (class attribute), shown in results.
    path : str or None
        The file the error is about.
    """

    reason = "error"

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = os.fspath(path) if path is not None else None
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class MediaError(DeepscanError):
    """A media file could not be read or judged (base class of per-file media errors)."""

    reason = "media error"


class MediaDecodeError(MediaError):
    """Decoding failed for a reason no more specific class describes."""

    reason = "decode error"


class DecoderCrashedError(MediaDecodeError):
    """The decoding worker process died while decoding the file (out of memory, or a decoder bug)."""

    reason = "decoder crashed"


class EmptyFileError(MediaError):
    """The file has zero bytes."""

    reason = "empty file"


class NotMediaError(MediaError):
    """The content is not audio, video or an image (sniffed from the bytes, not the extension)."""

    reason = "not a media file"


class CorruptMediaError(MediaDecodeError):
    """The container is recognisable but truncated or corrupt (e.g. an mp4 cut before its moov atom)."""

    reason = "truncated or corrupt"


class NoDecodableStreamError(MediaDecodeError):
    """The container holds no audio or video stream that can be decoded."""

    reason = "no decodable stream"


class UnsupportedCodecError(MediaDecodeError):
    """A stream uses a codec that the bundled FFmpeg cannot decode."""

    reason = "unsupported codec"


class AudioTooShortError(MediaError):
    """Audio is shorter than wav2vec2's receptive field (400 samples at 16 kHz, 25 ms)."""

    reason = "audio too short"


class LimitExceededError(MediaError):
    """The file exceeds a configured limit (duration, pixels or size): a guard against decompression bombs."""

    reason = "over limits"


class UnreadableFileError(MediaError):
    """The file or directory cannot be opened (missing, permission denied, not a regular file)."""

    reason = "unreadable"


class ModelLoadingError(DeepscanError):
    """A pretrained encoder could not be loaded (e.g. offline with an empty cache).

    The message names the model and the command that prefetches it (``deepscan models download``).
    """

    reason = "model loading failed"


class CheckpointError(DeepscanError):
    """A detector checkpoint is missing, malformed or not a safetensors file."""

    reason = "bad checkpoint"


class CheckpointMismatchError(CheckpointError):
    """A detector checkpoint was trained with other encoders or feature dims than those configured."""

    reason = "checkpoint does not match encoders"


class EncodingError(DeepscanError):
    """An encoder failed on a file's window (an unexpected error inside CLIP, wav2vec2 or the video encoder)."""

    reason = "encoder failed"


class DetectorNotConfiguredError(DeepscanError):
    """No detector checkpoint was given or configured; deepscan will not invent a verdict."""

    reason = "no detector"


class DetectorNotFoundError(DetectorNotConfiguredError):
    """The detector checkpoint named (``--detector``, ``$DEEPSCAN_DETECTOR``) is not there: a set-up mistake.

    A kind of :class:`DetectorNotConfiguredError` (a usage error, exit 2 on the command line), not
    a :class:`CheckpointError`: there is no file to be bad.
    """

    reason = "detector not found"


class DownloadError(ModelLoadingError):
    """A model file could not be fetched (offline, HTTP error, or offline mode is set).

    The message names the URL and where to place the file by hand.
    """

    reason = "download failed"


class ChecksumMismatchError(DownloadError):
    """A fetched file's SHA-256 differs from the pinned value; the file was discarded."""

    reason = "checksum mismatch"


class ModelsDirNotFoundError(DeepscanError):
    """``models_dir`` / ``$DEEPSCAN_MODELS_DIR`` / ``--models-dir`` names a folder that does not exist.

    A set-up mistake, refused at once: deepscan does not fall back to downloading the weights (or to
    scanning without them) when the folder the user named is not there. The message names the
    folder and the fix.
    """

    reason = "models folder not found"


class OutputWriteError(DeepscanError):
    """A results file could not be written to the end (a full disk, a file system gone read-only).

    The file is left with every line written before the failure whole (a line being written is cut
    off), so that ``deepscan check --resume`` reads it and finishes the job.
    """

    reason = "output not written"

