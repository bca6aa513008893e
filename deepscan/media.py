"""The one place that decodes media: probe files and stream them as fixed-length windows.

PyAV (FFmpeg) decodes audio and video, Pillow decodes still and animated images. Rotation
(display matrix, EXIF orientation), channel downmix, resampling, pixel formats and bit depths are
settled here and nowhere else; everything downstream receives arrays.

A :class:`Window` holds ``frames`` uint8 RGB ``(T, H, W, 3)`` sampled at ``visual_fps`` by
presentation timestamp, their times ``frame_times_s (T,)``, and ``waveform`` float32 mono ``(S,)``
at :data:`SAMPLE_RATE`. An image is one window with ``T = 1`` and ``S = 0``; an audio file has
``T = 0``. Memory is bounded by one window whatever the file's length.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import math
import os
import stat
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import (
    AudioTooShortError,
    CorruptMediaError,
    DeepscanError,
    EmptyFileError,
    LimitExceededError,
    MediaDecodeError,
    NoDecodableStreamError,
    NotMediaError,
    UnreadableFileError,
    UnsupportedCodecError,
)

__all__ = [
    "SAMPLE_RATE",
    "WINDOW_SECONDS",
    "VISUAL_FPS",
    "MIN_AUDIO_SAMPLES",
    "MIN_TAIL_SECONDS",
    "KINDS",
    "MediaLimits",
    "DEFAULT_LIMITS",
    "MediaInfo",
    "container_name",
    "Window",
    "sniff_kind",
    "probe",
    "iter_windows",
    "load_image",
    "load_waveform",
    "iter_media_files",
]

SAMPLE_RATE = 16_000  # Hz, what wav2vec2 expects
WINDOW_SECONDS = 4.0  # s, length of one analysis window
VISUAL_FPS = 8.0  # frames per second sampled for the visual modalities
MIN_AUDIO_SAMPLES = 400  # the shortest audio scored: 25 ms at 16 kHz, wav2vec2's receptive field
_TOO_SHORT = f"the {MIN_AUDIO_SAMPLES} samples ({1000 * MIN_AUDIO_SAMPLES / SAMPLE_RATE:g} ms) deepscan needs to score audio"

MAX_DURATION_S = 6 * 3600.0  # s, longest media accepted by default
MAX_PIXELS = 16_384 * 16_384  # pixels per frame or image (decompression-bomb guard)
MAX_FILE_BYTES = 64 * 1024**3  # bytes, largest file accepted by default
MAX_FRAMES = 5_000_000  # frames a video stream may claim (six hours at 230 fps)
MAX_IMAGE_FRAMES = 20_000  # frames of an animated image (GIF, APNG, WebP) or pages of a TIFF
MAX_STREAMS = 100  # streams (tracks) in one container
MAX_WINDOW_BYTES = 1024**3  # bytes of decoded RGB frames held for one window (4K at 8 fps, 4 s: 0.8 GB)
MIN_SAMPLE_RATE = 1_000  # Hz, lowest audio sample rate accepted (telephone audio is 8000)
MAX_STREAM_LAG_S = 60.0  # s, how far one stream may run ahead of the other before windows go without it

KINDS = ("video", "audio", "image")
# Extensions that claim a file is media: inside a directory, such a file is scanned even when its
# content does not sniff as media, so that an empty or mislabelled file is reported, not skipped.
MEDIA_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .wmv .flv .mpg .mpeg .ts .mts .m2ts .3gp .ogv "
    ".wav .flac .mp3 .m4a .aac .ogg .oga .opus .wma .aif .aiff "
    ".png .jpg .jpeg .gif .webp .bmp .tif .tiff .heic .avif".split()
)

MIN_TAIL_SECONDS = 0.5  # s, a last window shorter than this is merged into the one before
SNIFF_BYTES = 4096  # bytes read from the head of a file to recognise its format
TIME_EPS_S = 1e-4  # s, tolerance when comparing presentation times (rounding of time bases)
GIF_MIN_FRAME_MS = 20  # browsers show GIF frames of <= 10 ms delay for 100 ms
GIF_DEFAULT_FRAME_MS = 100
PROBE_MAX_PACKETS = 2_000  # packets probe() reads at most to find a first decodable frame
MAX_CODEC_PADDING_S = 0.1  # s, decoded audio past the stream's stated end that is trimmed as padding


@dataclass(frozen=True)
class MediaLimits:
    """Limits that stop decompression bombs and runaway inputs.

    The limits are checked on what the file claims before anything is decoded, and duration,
    pixels, window bytes and sample rate again on what decoding produces; a file over a limit gets
    a :class:`LimitExceededError` (reason ``"over limits"``) that says which.

    Parameters
    ----------
    max_duration_s : float
        Longest accepted duration in seconds.
    max_pixels : int
        Largest accepted frame or image area (width x height, pixels).
    max_file_bytes : int
        Largest accepted file size in bytes.
    max_frames : int
        Most frames a video stream may claim (the container's frame count, an MP4 track's
        sample tables).
    max_image_frames : int
        Most frames of an animated image (GIF, APNG, WebP) or pages of a TIFF, counted from the
        file's structure without decoding.
    max_streams : int
        Most streams (tracks) in one container.
    max_window_bytes : int
        Most bytes of decoded RGB frames held at once: one window's frames (``window_s *
        visual_fps`` frames of width x height x 3 bytes), and the frames held while one stream
        runs ahead of the other.
    min_sample_rate : int
        Lowest accepted audio sample rate in Hz: resampling to 16 kHz multiplies the samples by
        ``16000 / rate``, so a header claiming 2 Hz turns 400 KB into hours of audio.
    """

    max_duration_s: float = MAX_DURATION_S
    max_pixels: int = MAX_PIXELS
    max_file_bytes: int = MAX_FILE_BYTES
    max_frames: int = MAX_FRAMES
    max_image_frames: int = MAX_IMAGE_FRAMES
    max_streams: int = MAX_STREAMS
    max_window_bytes: int = MAX_WINDOW_BYTES
    min_sample_rate: int = MIN_SAMPLE_RATE


DEFAULT_LIMITS = MediaLimits()


@dataclass
class MediaInfo:
    """What deepscan sees in a media file, as reported by :func:`probe`.

    Attributes
    ----------
    path : str
        The file's path as given.
    kind : str
        ``"video"``, ``"audio"`` or ``"image"`` (an animated GIF/WebP is ``"video"``).
    container : str
        Container or image format name as the decoder names it (FFmpeg's demuxer, e.g.
        ``"mov,mp4,m4a,3gp,3g2,mj2"``; Pillow's format, e.g. ``"png"``); :func:`container_name`
        gives the name a person knows (``"MP4"``).
    video_codec, audio_codec : str or None
        Codec names of the chosen streams (``None`` when absent).
    duration_s : float or None
        Duration in seconds (``0.0`` for a still image, ``None`` when unknown).
    width, height : int or None
        Frame size as displayed, after rotation, in pixels.
    fps : float or None
        Average frame rate in frames per second.
    frame_count : int or None
        Number of frames when the container states it.
    has_audio : bool
        Whether there is a decodable audio stream.
    audio_sample_rate : int or None
        Native sample rate of the audio stream in Hz.
    audio_channels : int or None
        Native channel count of the audio stream.
    rotation : int
        Clockwise rotation in degrees (0, 90, 180, 270) applied to make frames upright.
    size_bytes : int
        File size in bytes.
    backend : str
        The library that decodes it: ``"ffmpeg"`` (PyAV) or ``"pillow"`` (still and animated images).
    """

    path: str
    kind: str
    container: str
    video_codec: str | None = None
    audio_codec: str | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frame_count: int | None = None
    has_audio: bool = False
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    rotation: int = 0
    size_bytes: int = 0
    backend: str = "ffmpeg"

    @property
    def has_video(self) -> bool:
        """True for a video or image (anything with frames)."""
        return self.kind in ("video", "image")

    def to_dict(self) -> dict:
        """Return the facts as a JSON-ready dict."""
        return dataclasses.asdict(self)


# FFmpeg demuxer (PyAV's ``format.name``) or Pillow format, lowercased -> the name a person knows, and
# the file extensions that tell apart the formats one demuxer reads (FFmpeg's "mov" demuxer reads MP4,
# MOV, M4A and 3GP alike; its "matroska" demuxer reads Matroska and WebM)
_CONTAINER_NAMES: dict[str, tuple[str, dict[str, str]]] = {
    "mov,mp4,m4a,3gp,3g2,mj2": ("MP4", {".mov": "MOV", ".qt": "MOV", ".m4a": "M4A", ".m4b": "M4A", ".3gp": "3GP",
                                        ".3g2": "3G2", ".mj2": "Motion JPEG 2000"}),
    "matroska,webm": ("Matroska", {".webm": "WebM"}),
    "matroska": ("Matroska", {}), "webm": ("WebM", {}),
    "avi": ("AVI", {}), "asf": ("ASF", {".wmv": "WMV", ".wma": "WMA"}), "flv": ("FLV", {}),
    "mpegts": ("MPEG-TS", {}), "mpeg": ("MPEG-PS", {}), "mxf": ("MXF", {}), "ogg": ("Ogg", {".opus": "Opus"}),
    "wav": ("WAV", {}), "w64": ("Wave64", {}), "mp3": ("MP3", {}), "flac": ("FLAC", {}), "aac": ("AAC", {}),
    "aiff": ("AIFF", {}), "caf": ("CAF", {}), "amr": ("AMR", {}), "au": ("AU", {}), "wv": ("WavPack", {}),
    "ape": ("APE", {}), "h264": ("raw H.264", {}), "hevc": ("raw HEVC", {}),
    "gif": ("GIF", {}), "png": ("PNG", {}), "apng": ("APNG", {}), "jpeg": ("JPEG", {}), "mpo": ("MPO", {}),
    "webp": ("WebP", {}), "bmp": ("BMP", {}), "tiff": ("TIFF", {}), "heif": ("HEIF", {}), "avif": ("AVIF", {}),
    "ico": ("ICO", {}), "ppm": ("PPM", {}), "tga": ("TGA", {}), "jpeg2000": ("JPEG 2000", {}),
}
# FFmpeg's image demuxers: "png_pipe", "jpeg_pipe", "webp_pipe", ... and "image2" (named by the extension)
_PIPE_SUFFIX = "_pipe"


def container_name(format_name: str | None, path: str | os.PathLike | None = None) -> str | None:
    """The name a person knows for a container or image format: ``"MP4"``, not ``"mov,mp4,m4a,3gp,3g2,mj2"``.

    FFmpeg names a demuxer by every format it reads, so the file's extension picks among them
    (``clip.mov`` -> ``"MOV"``, ``clip.webm`` -> ``"WebM"``); a format not known here keeps the
    decoder's own name.

    Parameters
    ----------
    format_name : str or None
        :attr:`MediaInfo.container`: FFmpeg's demuxer name or Pillow's format name.
    path : str or PathLike, optional
        The file, for its extension.

    Returns
    -------
    str or None
        The human name; ``None`` when ``format_name`` is empty.
    """
    if not format_name:
        return None
    key = str(format_name).strip().lower()
    suffix = os.path.splitext(os.fspath(path))[1].lower() if path is not None else ""
    if key.endswith(_PIPE_SUFFIX):
        key = key[: -len(_PIPE_SUFFIX)]
    if key in ("image2", "image2pipe") and suffix:
        key = {".jpg": "jpeg", ".jpe": "jpeg", ".tif": "tiff", ".j2k": "jpeg2000", ".jp2": "jpeg2000"}.get(
            suffix, suffix[1:])
    if key in _CONTAINER_NAMES:
        default, by_suffix = _CONTAINER_NAMES[key]
        return by_suffix.get(suffix, default)
    return str(format_name)


@dataclass
class Window:
    """One analysis window of a media file.

    Attributes
    ----------
    index : int
        Window number within the file, from 0.
    start_s, end_s : float
        Window bounds in seconds from the start of the media.
    frames : np.ndarray
        uint8 RGB frames ``(T, H, W, 3)``, upright; ``T = 0`` (shape ``(0, 0, 0, 3)``) when the
        file has no visual stream.
    frame_times_s : np.ndarray
        float64 ``(T,)`` presentation times of ``frames`` in seconds from the start of the media.
    waveform : np.ndarray
        float32 mono ``(S,)`` at :data:`SAMPLE_RATE` Hz, in [-1, 1]; ``S = 0`` when there is no
        audio stream.
    has_audio : bool
        Whether the file has an audio stream (a silent stretch of a file with audio still counts).
    """

    index: int
    start_s: float
    end_s: float
    frames: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 3), np.uint8))
    frame_times_s: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float64))
    waveform: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    has_audio: bool = False

    @property
    def has_frames(self) -> bool:
        """True when the window holds at least one frame."""
        return self.frames.shape[0] > 0

    @property
    def has_usable_audio(self) -> bool:
        """True when the waveform holds at least :data:`MIN_AUDIO_SAMPLES` samples (25 ms)."""
        return self.waveform.shape[0] >= MIN_AUDIO_SAMPLES

    @property
    def duration_s(self) -> float:
        """Window length in seconds."""
        return self.end_s - self.start_s


# --------------------------------------------------------------------------------------------
# Sniffing: what the bytes say, never the extension
# --------------------------------------------------------------------------------------------

_FTYP_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_FTYP_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}


def _sniff_bytes(head: bytes) -> str | None:
    """Guess the kind from the first bytes of a file (see :func:`sniff_kind`)."""
    if len(head) < 4:
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff"):
        return "image"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image"
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and len(head) >= 12:
        sub = head[8:12]
        if sub == b"WEBP":
            return "image"
        if sub in (b"WAVE", b"RMP3"):
            return "audio"
        if sub in (b"AVI ", b"AVIX"):
            return "video"
        return None
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"  # TIFF
    if head[:2] == b"BM" and len(head) >= 14 and head[6:10] == b"\x00\x00\x00\x00":
        return "image"  # BMP: reserved bytes are zero
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xffO\xffQ"):
        return "image"  # JPEG 2000
    if head[:4] == b"8BPS":
        return "image"  # Photoshop
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _FTYP_AUDIO_BRANDS:
            return "audio"
        if brand in _FTYP_IMAGE_BRANDS:
            return "image"
        return "video"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "video"  # QuickTime without ftyp
    if head[:4] == b"\x1aE\xdf\xa3":
        return "video"  # Matroska / WebM (may hold audio only: probe() tells)
    if head[:4] in (b"OggS", b"fLaC", b"caff", b".snd", b"MAC ", b"wvpk") or head[:3] == b"ID3":
        return "audio"
    if head[:4] == b"FORM" and len(head) >= 12 and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio"
    if head.startswith(b"#!AMR"):
        return "audio"
    if head[:8] == b"0&\xb2u\x8ef\xcf\x11":
        return "video"  # ASF (wmv, wma)
    if head[:3] == b"FLV" or head[:4] == b".RMF":
        return "video"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "video"  # MPEG program stream, MPEG-1/2 video
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "video"  # MPEG transport stream: a sync byte every 188 bytes
    if head[0] == 0xFF and (head[1] & 0xF6) == 0xF0:
        return "audio"  # AAC ADTS
    if head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] >> 1) & 3 and (head[2] >> 4) not in (0, 15):
        return "audio"  # MPEG audio frame header (layer and bitrate index valid)
    return None


def sniff_kind(path: str | os.PathLike) -> str | None:
    """Guess whether a file is media from its first bytes (magic numbers), never its extension.

    Cheap: reads at most :data:`SNIFF_BYTES` bytes. Used by :func:`iter_media_files` to skip
    non-media in directories, and by :func:`probe` to tell "corrupt media" from "not media".

    Parameters
    ----------
    path : str or os.PathLike
        A file.

    Returns
    -------
    str or None
        ``"video"``, ``"audio"`` or ``"image"`` as the container suggests (an mp4 or mkv says
        ``"video"`` even when it holds only audio, an Ogg file says ``"audio"``; :func:`probe`
        gives the truth), or ``None`` when the bytes match no known media format.

    Raises
    ------
    UnreadableFileError
        When the file can't be opened or read (missing, permission denied, a directory), or is
        a named pipe, socket or device (never opened: reading a pipe can wait forever).
    """
    with _open_regular(path) as handle:
        return _sniff_bytes(_read_head(handle, path))


def _os_reason(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "no such file (or a broken symbolic link)"
    if isinstance(error, PermissionError):
        return "permission denied; check the file's permissions"
    if isinstance(error, IsADirectoryError):
        return "is a directory, not a file"
    return f"cannot be read ({error.strerror or error})"


def _not_regular(mode: int) -> str | None:
    """Why a file of this ``st_mode`` is not opened (``None`` for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a regular file: not opened, reading it could wait forever"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file: not opened"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device node, not a regular file: not opened"
    return "is not a regular file: not opened"


def _open_regular(path: str | os.PathLike):
    """Open a file for binary reading only if it is a regular file, without ever blocking.

    The file is checked with ``stat`` before it is opened (opening a device can have side
    effects), opened with ``O_NONBLOCK`` (opening a pipe that replaced it meanwhile returns at
    once instead of waiting for a writer) and checked again with ``fstat`` on what was opened.

    Raises
    ------
    UnreadableFileError
        Missing, permission denied, a directory, a pipe, a socket or a device.
    """
    try:
        reason = _not_regular(os.stat(path).st_mode)
    except OSError as error:
        raise UnreadableFileError(_os_reason(error), path) from error
    if reason:
        raise UnreadableFileError(reason, path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise UnreadableFileError(_os_reason(error), path) from error
    try:
        reason = _not_regular(os.fstat(fd).st_mode)
        if reason:
            raise UnreadableFileError(f"{reason} (it changed after it was listed)", path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_head(handle, path) -> bytes:
    try:
        return handle.read(SNIFF_BYTES)
    except OSError as error:
        raise UnreadableFileError(_os_reason(error), path) from error


def _check_file(path: str | os.PathLike, limits: MediaLimits) -> tuple[int, bytes]:
    """Stat and read the head of a regular file; return (size in bytes, first bytes)."""
    with _open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise EmptyFileError("the file is empty (0 bytes)", path)
        if size > limits.max_file_bytes:
            raise LimitExceededError(f"file is {size} bytes, over the limit of {limits.max_file_bytes} bytes", path)
        return size, _read_head(handle, path)


def _looks_like_text(head: bytes) -> bool:
    """True when the bytes are printable text (UTF-8 or ASCII), i.e. surely not media."""
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 4:  # not just a multi-byte character cut at the end
            return False
        text = head[: error.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\r\n\t\f" for ch in text)
    return printable >= 0.95 * max(1, len(text))


# --------------------------------------------------------------------------------------------
# Opening: Pillow for images, PyAV for the rest; every library error becomes a typed error
# --------------------------------------------------------------------------------------------

# FFmpeg demuxers that accept text or data files but never hold audio or video
_NON_MEDIA_FORMATS = {
    "tty", "srt", "ass", "webvtt", "subviewer", "subviewer1", "microdvd", "jacosub", "sami", "lrc",
    "mpl2", "pjs", "realtext", "stl", "vplayer", "aqtitle", "ffmetadata", "data", "bin", "txt",
    "mcc", "scc",
}
_EXIF_ORIENTATION = 0x0112
# EXIF orientation -> clockwise rotation in degrees that makes the image upright (5/7 also mirror)
_EXIF_ROTATION = {1: 0, 2: 0, 3: 180, 4: 180, 5: 90, 6: 90, 7: 270, 8: 270}


class _NotPillowImage(Exception):
    """Pillow does not know the format (e.g. HEIF); let FFmpeg try."""


@contextlib.contextmanager
def _open_image(path: str | os.PathLike, limits: MediaLimits) -> Iterator[Image.Image]:
    """Open an image with Pillow (header only), mapping Pillow's errors to deepscan's.

    Pillow reads from a file object opened by :func:`_open_regular`, never from the path: so
    what it reads is the regular file that was checked, and it never memory-maps the file (a
    mapped file truncated by someone else while it is read kills the process with SIGBUS).
    """
    with _open_regular(path) as handle:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(handle)
        except Image.DecompressionBombError as error:
            raise LimitExceededError(f"image is too large to decode safely ({error})", path) from error
        except UnidentifiedImageError as error:
            raise _NotPillowImage(str(error)) from error
        except MemoryError as error:
            raise LimitExceededError("image header asks for more memory than there is", path) from error
        except OSError as error:
            if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
                raise UnreadableFileError(_os_reason(error), path) from error
            raise CorruptMediaError(f"truncated or corrupt image ({error})", path) from error
        except Exception as error:  # Pillow's parsers raise many kinds on damaged headers
            raise CorruptMediaError(f"truncated or corrupt image ({type(error).__name__}: {error})", path) from error
        with img:
            width, height = img.size
            if width * height > limits.max_pixels:
                raise LimitExceededError(
                    f"image is {width}x{height} = {width * height} pixels, over the limit of "
                    f"{limits.max_pixels} pixels", path,
                )
            yield img


class _PositionalReader:
    """Reads a file by absolute offsets (``os.pread``), leaving the position Pillow uses alone."""

    def __init__(self, fd: int):
        self.fd, self.pos, self.buffer, self.buffer_at = fd, 0, b"", 0

    def read(self, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            at = self.pos - self.buffer_at
            if not 0 <= at < len(self.buffer):
                self.buffer, self.buffer_at, at = os.pread(self.fd, 1 << 16, self.pos), self.pos, 0
                if not self.buffer:
                    break
            piece = self.buffer[at:at + n]
            out += piece
            n -= len(piece)
            self.pos += len(piece)
        return bytes(out)

    def skip_sub_blocks(self) -> None:
        """Skip GIF data sub-blocks (length byte, data) up to the zero-length terminator."""
        while True:
            size = self.read(1)
            if not size or size == b"\x00":
                return
            self.pos += size[0]


def _gif_frame_count(fd: int, cap: int) -> int:
    """Frames of a GIF counted from its block structure, without decoding; stops past ``cap``."""
    reader = _PositionalReader(fd)
    head = reader.read(13)
    if len(head) < 13:
        return 1
    if head[10] & 0x80:
        reader.pos += 3 << ((head[10] & 7) + 1)  # global colour table
    count = 0
    while count <= cap:
        kind = reader.read(1)
        if kind == b"!":  # extension: label, then sub-blocks
            reader.pos += 1
            reader.skip_sub_blocks()
        elif kind == b",":  # image descriptor, local colour table, LZW code size, sub-blocks
            descriptor = reader.read(9)
            if len(descriptor) < 9:
                break
            if descriptor[8] & 0x80:
                reader.pos += 3 << ((descriptor[8] & 7) + 1)
            reader.pos += 1
            reader.skip_sub_blocks()
            count += 1
        else:  # trailer, end of file or garbage
            break
    return max(count, 1)


def _tiff_page_count(fd: int, cap: int) -> int | None:
    """Pages (IFDs) of a classic TIFF by following the IFD chain; stops past ``cap`` or at a loop.

    ``None`` for a BigTIFF (Pillow counts those itself).
    """
    reader = _PositionalReader(fd)
    head = reader.read(8)
    if len(head) < 8 or head[:2] not in (b"II", b"MM"):
        return 1
    order = "little" if head[:2] == b"II" else "big"
    if int.from_bytes(head[2:4], order) != 42:
        return None
    offset, seen = int.from_bytes(head[4:8], order), set()
    while offset and offset not in seen and len(seen) <= cap:
        seen.add(offset)
        reader.pos = offset
        entries = reader.read(2)
        if len(entries) < 2:
            break
        reader.pos = offset + 2 + 12 * int.from_bytes(entries, order)
        link = reader.read(4)
        offset = int.from_bytes(link, order) if len(link) == 4 else 0
    return max(len(seen), 1)


def _image_frame_count(img: Image.Image, limits: MediaLimits, path) -> int:
    """Frames of an image, counted cheaply, and refused over :attr:`MediaLimits.max_image_frames`.

    GIF and TIFF are counted from their structure here (Pillow would decode every GIF frame to
    count them); other formats state their count in a header (APNG's acTL, WebP's frames).
    """
    cap = limits.max_image_frames
    count = None
    fileno = getattr(getattr(img, "fp", None) or getattr(img, "_fp", None), "fileno", None)
    if hasattr(os, "pread") and fileno is not None and img.format in ("GIF", "TIFF"):
        try:
            fd = fileno()
            count = _gif_frame_count(fd, cap) if img.format == "GIF" else _tiff_page_count(fd, cap)
        except OSError as error:
            raise CorruptMediaError(f"truncated or corrupt image ({error})", path) from error
    if count is None:
        try:
            count = int(getattr(img, "n_frames", 1) or 1)
        except Exception as error:  # counting walks damaged structures
            raise CorruptMediaError(f"truncated or corrupt animation ({type(error).__name__}: {error})", path) from error
    if count > cap:
        stated = f"more than {cap}" if count == cap + 1 else str(count)  # GIF and TIFF counts stop at cap + 1
        raise LimitExceededError(f"image has {stated} frames, over the limit of {cap} "
                                 "(MediaLimits.max_image_frames)", path)
    return max(count, 1)


def _load_pil_frame(img: Image.Image, path) -> None:
    """Decode the current frame, mapping errors (truncated data, bombs) to typed errors."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except Image.DecompressionBombError as error:
        raise LimitExceededError(f"image is too large to decode safely ({error})", path) from error
    except MemoryError as error:
        raise LimitExceededError("image asks for more memory than there is", path) from error
    except Exception as error:  # OSError, SyntaxError, ValueError, EOFError, IndexError... from Pillow's decoders
        raise CorruptMediaError(f"truncated or corrupt image ({type(error).__name__}: {error})", path) from error


def _gif_frame_seconds(img: Image.Image) -> float:
    """Display time of the current frame of an animated image, in seconds.

    A delay of 10 ms or less is shown for 100 ms, as browsers do (and as FFmpeg's GIF demuxer).
    """
    ms = img.info.get("duration") or 0
    if ms < GIF_MIN_FRAME_MS:
        ms = GIF_DEFAULT_FRAME_MS
    return float(ms) / 1000.0


def _animated_duration(img: Image.Image, n_frames: int, path) -> float:
    total = 0.0
    try:
        for i in range(n_frames):
            img.seek(i)
            img.load()  # WebP sets a frame's duration when it is loaded
            total += _gif_frame_seconds(img)
        img.seek(0)
    except Image.DecompressionBombError as error:
        raise LimitExceededError(f"animation frame is too large to decode safely ({error})", path) from error
    except MemoryError as error:
        raise LimitExceededError("animation frame asks for more memory than there is", path) from error
    except Exception as error:  # OSError, EOFError, SyntaxError, ValueError and the like from Pillow
        raise CorruptMediaError(f"truncated or corrupt animation ({type(error).__name__}: {error})", path) from error
    return round(total, 6)


def _probe_image(path, size_bytes: int, limits: MediaLimits) -> MediaInfo:
    with _open_image(path, limits) as img:
        fmt = (img.format or "image").lower()
        width, height = img.size
        n_frames = _image_frame_count(img, limits, path)  # before load(): Pillow drops img.fp then
        _load_pil_frame(img, path)
        orientation = _image_orientation(img)
        rotation = _EXIF_ROTATION.get(orientation, 0)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        info = MediaInfo(
            path=os.fspath(path), kind="image", container=fmt, video_codec=fmt, duration_s=0.0,
            width=width, height=height, frame_count=1, rotation=rotation, size_bytes=size_bytes,
            backend="pillow",
        )
        if n_frames > 1:
            duration = _animated_duration(img, n_frames, path)
            if duration > limits.max_duration_s:
                raise LimitExceededError(
                    f"animation lasts {duration:.1f} s, over the limit of {limits.max_duration_s} s", path
                )
            info.kind = "video"
            info.duration_s = duration
            info.frame_count = n_frames
            info.fps = n_frames / duration if duration > 0 else None
    return info


def _open_av(path, sniffed: str | None, limits: MediaLimits = DEFAULT_LIMITS):
    """Open a container with PyAV, mapping FFmpeg's errors to deepscan's.

    The path is checked again right before FFmpeg opens it (a regular file, not a pipe that
    replaced it since it was listed), an MP4/MOV's sample tables are checked against
    :attr:`MediaLimits.max_frames` before FFmpeg builds its index from them, and the streams are
    counted against :attr:`MediaLimits.max_streams`.
    """
    with _open_regular(path) as handle:
        _check_bmff_claims(handle, limits, path)
    try:
        container = av.open(os.fspath(path), mode="r", metadata_errors="replace")
    except (av.error.FileNotFoundError, av.error.PermissionError, av.error.IsADirectoryError) as error:
        raise UnreadableFileError(_os_reason(error), path) from error
    except av.error.MemoryError as error:
        raise LimitExceededError(f"the container's headers ask for more memory than allowed ({error})", path) from error
    except av.error.FFmpegError as error:
        if sniffed is None:
            raise NotMediaError(
                "the content is not audio, video or an image that deepscan recognises", path
            ) from error
        raise CorruptMediaError(
            "truncated or corrupt: FFmpeg cannot read the container (a download cut short, e.g. an "
            f"mp4 without its 'moov' index, reads like this) [{error.strerror or error}]", path,
        ) from error
    except OSError as error:
        raise UnreadableFileError(_os_reason(error), path) from error
    if len(container.streams) > limits.max_streams:
        count = len(container.streams)
        container.close()
        raise LimitExceededError(f"the container holds {count} streams, over the limit of {limits.max_streams}", path)
    if sniffed is None and container.format.name in _NON_MEDIA_FORMATS:
        container.close()
        raise NotMediaError(f"the content is {container.format.name} data, not audio or video", path)
    return container


_BMFF_TRACK_PATH = (b"trak", b"mdia", b"minf", b"stbl")
MAX_MOOV_BYTES = 64 * 1024**2  # bytes of an MP4's moov box read to check its sample tables


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, box end) of the ISO BMFF boxes in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind, body = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8], pos + 8
        if size == 1 and pos + 16 <= end:
            size, body = int.from_bytes(data[pos + 8:pos + 16], "big"), pos + 16
        elif size == 0:
            size = end - pos
        if size < body - pos or pos + size > end:
            return
        yield kind, body, pos + size
        pos += size


def _track_sample_claims(moov: bytes) -> Iterator[int]:
    """Samples each track of a ``moov`` body claims, where FFmpeg would index every one of them."""
    for kind, body, end in _boxes(moov, 0, len(moov)):
        if kind != b"trak":
            continue
        handler, samples, stts = b"", 0, []
        for k1, b1, e1 in _boxes(moov, body, end):
            if k1 != b"mdia":
                continue
            for k2, b2, e2 in _boxes(moov, b1, e1):
                if k2 == b"hdlr":
                    handler = moov[b2 + 8:b2 + 12]
                elif k2 == b"minf":
                    for k3, b3, e3 in _boxes(moov, b2, e2):
                        if k3 != b"stbl":
                            continue
                        for k4, b4, e4 in _boxes(moov, b3, e3):
                            if k4 == b"stsz" and b4 + 12 <= e4:
                                samples = max(samples, int.from_bytes(moov[b4 + 8:b4 + 12], "big"))
                            elif k4 == b"stts" and b4 + 8 <= e4:
                                count = int.from_bytes(moov[b4 + 4:b4 + 8], "big")
                                entries = range(b4 + 8, min(e4, b4 + 8 + 8 * count) - 7, 8)
                                stts = [(int.from_bytes(moov[i:i + 4], "big"), int.from_bytes(moov[i + 4:i + 8], "big"))
                                        for i in entries]
        if handler == b"soun" and len(stts) == 1 and stts[0][1] == 1:
            continue  # uncompressed audio: FFmpeg indexes it by chunk, not by sample
        yield max(samples, sum(n for n, _ in stts))


def _check_bmff_claims(handle, limits: MediaLimits, path) -> None:
    """Refuse an MP4/MOV/M4A whose sample tables claim more than ``max_frames`` samples in a track.

    FFmpeg allocates its index for the claimed count before reading a sample: 14 KB that claim
    80 million samples cost a gigabyte.
    """
    head = handle.read(16)
    if len(head) < 8 or head[4:8] not in (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"):
        return
    size = os.fstat(handle.fileno()).st_size
    pos = 0
    while pos + 8 <= size:
        handle.seek(pos)
        header = handle.read(16)
        if len(header) < 8:
            return
        box, kind, body = int.from_bytes(header[:4], "big"), header[4:8], pos + 8
        if box == 1 and len(header) == 16:
            box, body = int.from_bytes(header[8:16], "big"), pos + 16
        elif box == 0:
            box = size - pos
        if box < body - pos:
            return
        if kind == b"moov":
            if box - (body - pos) > MAX_MOOV_BYTES:
                return
            handle.seek(body)
            for claimed in _track_sample_claims(handle.read(box - (body - pos))):
                if claimed > limits.max_frames:
                    raise LimitExceededError(
                        f"a track's sample tables claim {claimed} samples, over the limit of {limits.max_frames} "
                        "frames (MediaLimits.max_frames)", path)
            return
        pos += box


def _has_decoder(stream) -> bool:
    try:
        return stream.codec_context is not None and stream.codec_context.codec is not None
    except (av.error.FFmpegError, ValueError, AttributeError):
        return False


def _codec_name(stream) -> str:
    """The codec's name, or the container's codec tag when FFmpeg has no decoder for it."""
    for get in (lambda: stream.codec_context.name, lambda: stream.codec_tag, lambda: stream.codec_context.codec_tag):
        try:
            name = get()
        except (AttributeError, ValueError, av.error.FFmpegError):
            continue
        if name:
            return str(name)
    return "unknown"


def _pick_streams(container, path):
    """Choose the video and audio streams to decode: default disposition first, cover art never.

    Returns
    -------
    (video, audio) : stream or None each

    Raises
    ------
    NoDecodableStreamError, UnsupportedCodecError
    """
    attached = av.stream.Disposition.attached_pic
    videos = [s for s in container.streams.video if not (int(s.disposition) & int(attached))]
    audios = list(container.streams.audio)
    if not videos and not audios:
        raise NoDecodableStreamError("the file holds no audio or video stream", path)
    unsupported = [s for s in videos + audios if not _has_decoder(s)]
    videos = [s for s in videos if _has_decoder(s)]
    audios = [s for s in audios if _has_decoder(s)]
    if not videos and not audios:
        codecs = [_codec_name(s) for s in unsupported]
        if all(c == "unknown" for c in codecs):
            raise CorruptMediaError("truncated or corrupt: no stream states its codec (damaged headers)", path)
        names = ", ".join(f"{s.type} '{c}'" for s, c in zip(unsupported, codecs))
        raise UnsupportedCodecError(f"no decoder for the streams in this file ({names})", path)

    def first(streams):
        default = [s for s in streams if int(s.disposition) & int(av.stream.Disposition.default)]
        return (default or streams or [None])[0]

    return first(videos), first(audios)


def _stream_seconds(stream) -> float | None:
    if stream is None or stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _origin_s(streams) -> float:
    """Media time zero: the earliest start among the decoded streams, in seconds."""
    starts = [float(s.start_time * s.time_base) for s in streams if s is not None and s.start_time is not None]
    return min(starts) if starts else 0.0


def _clockwise(rotation_ccw: float) -> int:
    """FFmpeg's display-matrix angle (counter-clockwise) -> clockwise turn, rounded to 90 degrees."""
    return int(round(-float(rotation_ccw) / 90.0)) % 4 * 90


def _first_frames(container, video, audio, path) -> tuple:
    """Decode the first frame of each chosen stream (fail fast on undecodable files)."""
    wanted = [s for s in (video, audio) if s is not None]
    got: dict[int, object] = {}
    errors: list[str] = []
    try:
        for n, packet in enumerate(container.demux(*wanted)):
            if n >= PROBE_MAX_PACKETS:
                break
            try:
                frames = packet.decode()
            except (av.error.InvalidDataError, av.error.EOFError, av.error.UndefinedError) as error:
                errors.append(str(error))
                continue
            for frame in frames:
                got.setdefault(packet.stream.index, frame)
            if len(got) == len(wanted):
                break
    except av.error.FFmpegError as error:
        errors.append(str(error))
    except (av.error.DecoderNotFoundError, av.error.PatchWelcomeError, NotImplementedError) as error:
        raise UnsupportedCodecError(f"FFmpeg cannot decode this stream ({error})", path) from error
    if not got:
        detail = f" [{errors[0]}]" if errors else ""
        raise CorruptMediaError(f"truncated or corrupt: no frame could be decoded{detail}", path)
    return (got.get(video.index) if video is not None else None,
            got.get(audio.index) if audio is not None else None)


def _check_sample_rate(rate: int | None, limits: MediaLimits, path) -> None:
    """Refuse audio whose sample rate would make resampling a bomb (2 Hz to 16 kHz is 8000 times the data)."""
    if rate and rate < limits.min_sample_rate:
        raise LimitExceededError(
            f"audio sample rate of {rate} Hz is under the limit of {limits.min_sample_rate} Hz (resampling it to "
            f"{SAMPLE_RATE} Hz would multiply it {SAMPLE_RATE // rate} times)", path)


def _probe_av(path, size_bytes: int, sniffed: str | None, limits: MediaLimits) -> MediaInfo:
    container = _open_av(path, sniffed, limits)
    try:
        try:
            video, audio = _pick_streams(container, path)
        except NoDecodableStreamError:
            if sniffed is None:
                raise NotMediaError("the content is not audio, video or an image", path) from None
            raise
        duration = container.duration / 1e6 if container.duration is not None else None
        if duration is None or not math.isfinite(duration) or duration < 0:
            durations = [d for d in (_stream_seconds(video), _stream_seconds(audio))
                         if d is not None and math.isfinite(d) and d >= 0]
            duration = max(durations) if durations else None
        if duration is not None and duration > limits.max_duration_s:
            raise LimitExceededError(
                f"media lasts {duration:.1f} s, over the limit of {limits.max_duration_s} s", path
            )
        if video is not None and video.frames and video.frames > limits.max_frames:
            raise LimitExceededError(
                f"the video stream claims {video.frames} frames, over the limit of {limits.max_frames} "
                "(MediaLimits.max_frames)", path)
        if video is not None:
            cc = video.codec_context
            if cc.width and cc.height and cc.width * cc.height > limits.max_pixels:
                raise LimitExceededError(
                    f"frames are {cc.width}x{cc.height} pixels, over the limit of {limits.max_pixels} pixels", path
                )
        first_video, first_audio = _first_frames(container, video, audio, path)
        if video is not None and first_video is None:
            video = None  # nothing decodable: the file is judged on its audio
        if audio is not None and first_audio is None:
            audio = None
        if video is None and audio is None:
            raise CorruptMediaError("truncated or corrupt: no frame could be decoded", path)
        info = MediaInfo(path=os.fspath(path), kind="video" if video is not None else "audio",
                         container=container.format.name, duration_s=duration, size_bytes=size_bytes)
        if video is not None:
            rotation = _clockwise(getattr(first_video, "rotation", 0) or 0)
            width, height = first_video.width, first_video.height
            if width * height > limits.max_pixels:
                raise LimitExceededError(
                    f"frames are {width}x{height} pixels, over the limit of {limits.max_pixels} pixels", path
                )
            if rotation in (90, 270):
                width, height = height, width
            rate = video.average_rate or video.guessed_rate or video.base_rate
            info.video_codec = video.codec_context.name
            info.width, info.height, info.rotation = width, height, rotation
            info.fps = float(rate) if rate else None
            info.frame_count = int(video.frames) if video.frames else None
        if audio is not None:
            info.has_audio = True
            info.audio_codec = audio.codec_context.name
            info.audio_sample_rate = int(first_audio.sample_rate or audio.codec_context.sample_rate or 0) or None
            _check_sample_rate(info.audio_sample_rate, limits, path)
            info.audio_channels = int(first_audio.layout.nb_channels) if first_audio.layout else None
            if (info.kind == "audio" and duration is not None
                    and duration * SAMPLE_RATE < MIN_AUDIO_SAMPLES - 0.5):
                raise AudioTooShortError(
                    f"audio lasts {duration * 1000:.0f} ms ({duration * SAMPLE_RATE:.0f} samples at "
                    f"{SAMPLE_RATE} Hz), shorter than {_TOO_SHORT}", path,
                )
        return info
    finally:
        container.close()


def probe(path: str | os.PathLike, limits: MediaLimits = DEFAULT_LIMITS) -> MediaInfo:
    """Read a file's facts, and fail fast with a typed error when it can't be scanned.

    The format is sniffed from the bytes (:func:`sniff_kind`), never the extension. Images go to
    Pillow (the first frame is decoded to prove it is readable); everything else to PyAV, which
    decodes the first frame of the chosen video and audio streams (this also reads the display
    matrix). Limits are checked before any full decode.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    limits : MediaLimits
        Duration, pixel and size limits.

    Returns
    -------
    MediaInfo
        Kind, container, codecs, duration (s), displayed size (px, after rotation), fps, frame
        count, audio rate (Hz) and channels, rotation (degrees clockwise), size (bytes).

    Raises
    ------
    UnreadableFileError
        Missing file, broken link, permission denied, a directory, or a named pipe, socket or
        device (checked before opening, and again on what was opened, so nothing blocks).
    EmptyFileError
        Zero bytes.
    NotMediaError
        Text or other bytes that are no audio, video or image format.
    CorruptMediaError
        A recognised format that can't be parsed or decoded (e.g. a truncated mp4).
    NoDecodableStreamError
        A container with no audio or video stream.
    UnsupportedCodecError
        Streams whose codec the bundled FFmpeg can't decode.
    AudioTooShortError
        An audio-only file shorter than :data:`MIN_AUDIO_SAMPLES` samples at 16 kHz. (A video
        whose audio is that short is accepted; its windows report ``has_usable_audio = False``.)
    LimitExceededError
        Over ``limits`` (file size, duration, pixels, claimed frames, image frames, streams),
        checked before decoding.
    """
    size_bytes, head = _check_file(path, limits)
    sniffed = _sniff_bytes(head)
    if sniffed is None and _looks_like_text(head):
        raise NotMediaError("the content is text, not audio, video or an image", path)
    if sniffed == "image":
        try:
            return _probe_image(path, size_bytes, limits)
        except _NotPillowImage:
            pass  # e.g. HEIF/AVIF: FFmpeg may read it
    try:
        return _probe_av(path, size_bytes, sniffed, limits)
    except DeepscanError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, RuntimeError) as error:
        raise MediaDecodeError(f"could not be decoded ({error})", path) from error


# --------------------------------------------------------------------------------------------
# Pixels: every image mode to upright 8-bit RGB
# --------------------------------------------------------------------------------------------

ALPHA_BACKGROUND = 255  # transparent pixels are flattened onto white, as an image viewer shows them
ALPHA_BLOCK_PIXELS = 1 << 22  # pixels flattened at a time (float32 temporaries of ~64 MB, not 16 bytes a pixel)


def _scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale integer or float samples to uint8 by their real range, never by clipping.

    16-bit data (max <= 65535) is divided by 257 (65535 -> 255), floats in [0, 1] are multiplied
    by 255; anything else is stretched from its minimum to its maximum. NaN becomes 0.
    """
    values = np.asarray(values)
    if values.dtype == np.uint8:
        return values
    x = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if np.issubdtype(values.dtype, np.floating):
        if lo >= 0.0 and hi <= 1.0:
            x = x * 255.0
        elif not (lo >= 0.0 and hi <= 255.0):
            x = (x - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(x)
    elif values.dtype == np.uint16 or (lo >= 0 and hi <= 65535 and hi > 255):
        x = x / 257.0
    elif not (lo >= 0 and hi <= 255):
        x = (x - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(x)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Convert a Pillow image of any mode to uint8 RGB ``(H, W, 3)``.

    I;16* / I / F (16-bit and float grey) are scaled by their real range (:func:`_scale_to_uint8`),
    modes with alpha or a transparency key are flattened onto :data:`ALPHA_BACKGROUND` (white),
    everything else (1, L, P, CMYK, YCbCr, LAB, HSV, ...) goes through Pillow's conversion.
    ICC profiles are not applied.
    """
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        gray = _scale_to_uint8(np.asarray(img))
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    try:
        if has_alpha:
            rgba = np.asarray(img.convert("RGBA"))
            out = np.empty(rgba.shape[:2] + (3,), np.uint8)
            rows = max(1, ALPHA_BLOCK_PIXELS // max(1, rgba.shape[1]))  # float32 copies stay small
            for y in range(0, rgba.shape[0], rows):
                block = rgba[y:y + rows].astype(np.float32)
                alpha = block[:, :, 3:4] / 255.0
                rgb = block[:, :, :3] * alpha + ALPHA_BACKGROUND * (1.0 - alpha)
                out[y:y + rows] = np.clip(np.rint(rgb), 0, 255)
            return out
        if mode == "LAB":
            from PIL import ImageCms

            lab = ImageCms.createProfile("LAB")
            srgb = ImageCms.createProfile("sRGB")
            img = ImageCms.profileToProfile(img, lab, srgb, outputMode="RGB")
        return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    except (ValueError, OSError) as error:
        raise UnsupportedCodecError(f"image mode {mode} cannot be converted to RGB ({error})") from error


def _oriented(img: Image.Image, orientation: int) -> Image.Image:
    """Apply an EXIF orientation (1..8) to a frame, like :func:`PIL.ImageOps.exif_transpose`."""
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return img.transpose(method) if method is not None else img


def _pil_frame_rgb(img: Image.Image, orientation: int) -> np.ndarray:
    return _pil_to_rgb(_oriented(img, orientation))


def _fit(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An animation frame cut (or padded with the background) to the canvas ``(H, W)``.

    A GIF frame placed partly outside the logical screen makes Pillow grow the image; a viewer
    clips it, and the frames of a window must share one size.
    """
    h, w = shape
    if rgb.shape[:2] == (h, w):
        return rgb
    out = np.full((h, w, 3), ALPHA_BACKGROUND, np.uint8)
    rows, cols = min(h, rgb.shape[0]), min(w, rgb.shape[1])
    out[:rows, :cols] = rgb[:rows, :cols]
    return out


def _video_frame_rgb(frame, rotation: int, size: tuple[int, int] | None) -> np.ndarray:
    """Convert a decoded frame to upright uint8 RGB ``(H, W, 3)`` (conversion done in FFmpeg).

    ``size`` (coded width, height) rescales frames whose size changed mid-stream so that a
    window's frames stack; ``rotation`` is clockwise degrees (np.rot90 turns counter-clockwise).
    """
    if size is not None and (frame.width, frame.height) != size:
        arr = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
    else:
        arr = frame.to_ndarray(format="rgb24")
    if rotation:
        arr = np.ascontiguousarray(np.rot90(arr, k=-(rotation // 90)))
    return arr


# --------------------------------------------------------------------------------------------
# Windows: frame sampling by pts, audio cut at window bounds
# --------------------------------------------------------------------------------------------


class _WindowAssembler:
    """Turn a stream of decoded frames and audio samples into :class:`Window` objects.

    Frame rule: for each target time ``k / visual_fps`` (k = 0, 1, ...) the frame shown at that
    time is chosen, i.e. the latest frame whose pts is <= the target (within :data:`TIME_EPS_S`);
    targets before the first frame take the first frame. A frame chosen for several targets (a
    source slower than ``visual_fps``) appears once, so ``T`` may be smaller than
    ``window_s * visual_fps``. A chosen frame belongs to the window that contains its pts, so
    ``start_s <= frame_times_s < end_s`` (a frame chosen for a window's first target but shown
    just before the window starts stays in the earlier window, which may then hold one frame
    more). Only chosen frames are converted to RGB.

    Audio rule: window ``k`` holds samples ``[round(start_s * 16000), round(end_s * 16000))``; the
    last window takes the rest, so the windows' waveforms concatenate to the whole signal.

    A window is released once both streams have gone :data:`MIN_TAIL_SECONDS` past its end, so
    that a last window shorter than that can be merged into the one before it. One stream may run
    ahead of the other (an audio track that ends early, a badly interleaved or hostile file): when
    it is more than :data:`MAX_STREAM_LAG_S` ahead, or the frames held for the lagging one exceed
    1.5 x ``max_window_bytes``, windows are released without waiting, and whatever of the lagging stream
    arrives later for a released window is dropped. So memory stays bounded by about one window
    (at most 1.5 x ``max_window_bytes`` of frames) whatever the file does.
    """

    def __init__(self, window_s, visual_fps, has_video, has_audio, frame_shape, max_duration_s, path,
                 max_window_bytes: int = MAX_WINDOW_BYTES):
        self.window_s = float(window_s)
        self.step_s = 1.0 / float(visual_fps)
        self.has_video = has_video
        self.has_audio = has_audio
        self.frame_shape = frame_shape  # (H, W) of upright frames, for empty windows
        self.max_duration_s = max_duration_s
        self.max_window_bytes = int(max_window_bytes)
        self.path = path
        self.target = 0  # index of the next target time
        self.prev = None  # [time, converter, used] of the latest decoded frame
        self.chosen: list[tuple[float, np.ndarray]] = []
        self.chosen_bytes = 0
        self.video_time = 0.0
        self.video_end = 0.0
        self.audio: list[np.ndarray] = []
        self.audio_total = 0  # samples received so far (the position of the next one)
        self.audio_taken = 0  # samples handed out in windows, or skipped for released windows
        self.audio_end = None  # stated end of the audio stream in samples, to trim codec padding
        self.index = 0
        self.released_early = False  # a window went out while one stream lagged

    def _check_time(self, t: float) -> None:
        if t > self.max_duration_s + self.window_s:
            raise LimitExceededError(
                f"media runs past the limit of {self.max_duration_s} s while decoding", self.path
            )

    def _choose(self, t: float, convert: Callable[[], np.ndarray]) -> None:
        if t < self.index * self.window_s - TIME_EPS_S and self.index > 0 and self.released_early:
            return  # its window went out without waiting for the video: too late for it
        arr = convert()
        self.frame_shape = arr.shape[:2]
        self.chosen.append((t, arr))
        self.chosen_bytes += arr.nbytes
        if arr.nbytes > self.max_window_bytes:
            raise LimitExceededError(
                f"one decoded frame ({arr.shape[1]}x{arr.shape[0]}) takes {arr.nbytes} bytes, over the "
                f"limit of {self.max_window_bytes} bytes", self.path)

    def add_frame(self, t: float, duration_s: float, convert: Callable[[], np.ndarray]) -> None:
        """Add a decoded frame with pts ``t`` (s) and display time ``duration_s`` (s).

        A frame whose pts repeats or goes back (within :data:`TIME_EPS_S` of the frame before, or
        earlier: damaged or hostile timestamps) is dropped, so that frame times only increase.
        """
        self._check_time(t)
        if not math.isfinite(t) or (self.prev is not None and t <= self.prev[0] + TIME_EPS_S):
            return
        cur_used = False
        while self.target * self.step_s < t - TIME_EPS_S:
            if self.prev is None:
                if not cur_used:  # target before the first frame: take the first frame
                    self._choose(t, convert)
                    cur_used = True
            elif not self.prev[2]:
                self._choose(self.prev[0], self.prev[1])
                self.prev[2] = True
            self.target += 1
        self.prev = [t, convert, cur_used]
        self.video_time = max(self.video_time, t)
        self.video_end = max(self.video_end, t + max(duration_s, 0.0))

    def add_audio(self, samples: np.ndarray) -> None:
        """Add mono float32 samples at :data:`SAMPLE_RATE`."""
        if samples.size:
            start = self.audio_total
            self.audio_total += samples.size
            self._check_time(self.audio_total / SAMPLE_RATE)
            late = self.audio_taken - start  # samples of windows already released without them
            if late >= samples.size:
                return
            self.audio.append(samples[max(late, 0):])

    def _take_audio(self, n: int | None) -> np.ndarray:
        if not self.has_audio:
            return np.zeros((0,), np.float32)
        data = np.concatenate(self.audio) if self.audio else np.zeros((0,), np.float32)
        n = data.size if n is None else max(0, min(n, data.size))
        out, rest = data[:n], data[n:]
        self.audio = [rest] if rest.size else []
        self.audio_taken += n
        return np.ascontiguousarray(out, dtype=np.float32)

    def _emit(self, start_s: float, end_s: float, last: bool) -> Window:
        inside = [last or c[0] < end_s - TIME_EPS_S for c in self.chosen]
        frames = [c for c, keep in zip(self.chosen, inside) if keep]
        self.chosen = [c for c, keep in zip(self.chosen, inside) if not keep]
        self.chosen_bytes = sum(c[1].nbytes for c in self.chosen)
        if frames:
            times = np.array([max(f[0], 0.0) for f in frames], dtype=np.float64)
            arrays = np.empty((len(frames),) + frames[0][1].shape, np.uint8)
            for i in range(len(frames)):
                arrays[i] = frames[i][1]
                frames[i] = None  # free each frame once copied: the peak is one window, not two
        else:
            h, w = self.frame_shape if self.has_video and self.frame_shape else (0, 0)
            arrays = np.zeros((0, h, w, 3), np.uint8)
            times = np.zeros((0,), np.float64)
        n = None if last else int(round(end_s * SAMPLE_RATE)) - self.audio_taken
        waveform = self._take_audio(n)
        if not last:  # audio not there yet (it lags, or has ended): later samples of it are dropped
            self.audio_taken = max(self.audio_taken, int(round(end_s * SAMPLE_RATE)))
        window = Window(index=self.index, start_s=start_s, end_s=end_s, frames=arrays,
                        frame_times_s=times, waveform=waveform, has_audio=self.has_audio)
        self.index += 1
        return window

    def ready(self) -> Iterator[Window]:
        """Yield the windows that no later frame or sample can change (or that waited long enough)."""
        while True:
            start = self.index * self.window_s
            end = start + self.window_s
            video_behind = self.has_video and self.video_time < end + MIN_TAIL_SECONDS - TIME_EPS_S
            audio_behind = self.has_audio and self.audio_total < round((end + MIN_TAIL_SECONDS) * SAMPLE_RATE)
            if video_behind and audio_behind:
                return
            if video_behind and self.audio_total - self.audio_taken < MAX_STREAM_LAG_S * SAMPLE_RATE:
                return
            if audio_behind and not video_behind and self.chosen_bytes <= 1.5 * self.max_window_bytes \
                    and self.video_time - end < MAX_STREAM_LAG_S:
                return
            if video_behind or audio_behind:
                self.released_early = True
            yield self._emit(start, end, last=False)

    def _trim_padding(self) -> None:
        """Drop decoded audio past the stream's stated end when it is codec padding (AAC, Opus).

        An AAC encoder pads its last frame to 1024 samples; FFmpeg trims the priming at the start
        (edit list) but not the padding at the end. More than :data:`MAX_CODEC_PADDING_S` past the
        stated end means the stated duration is an estimate, so nothing is trimmed then.
        """
        if self.audio_end is None:
            return
        extra = self.audio_total - self.audio_end
        if 0 < extra <= MAX_CODEC_PADDING_S * SAMPLE_RATE and extra <= self.audio_total - self.audio_taken:
            data = np.concatenate(self.audio)
            self.audio = [data[: data.size - extra]]
            self.audio_total -= extra

    def finish(self) -> Iterator[Window]:
        """Resolve the last frame and yield the remaining windows (at least one per file)."""
        self._trim_padding()
        if self.prev is not None and not self.prev[2]:
            if self.target * self.step_s < max(self.video_end, self.prev[0] + TIME_EPS_S) - TIME_EPS_S \
                    or self.target * self.step_s <= self.prev[0] + TIME_EPS_S:
                self._choose(self.prev[0], self.prev[1])
            self.prev[2] = True
        self.prev = None
        media_end = max(self.video_end if self.has_video else 0.0, self.audio_total / SAMPLE_RATE)
        while True:
            start = self.index * self.window_s
            end = start + self.window_s
            if media_end - end < MIN_TAIL_SECONDS:
                yield self._emit(start, max(media_end, start), last=True)
                return
            yield self._emit(start, end, last=False)


def _downmix(frame) -> np.ndarray:
    """Planar float frame ``(C, S)`` -> mono ``(S,)`` in [-1, 1]: the mean of the channels, LFE left out.

    FFmpeg's own mono downmix sums with gains (5.1 -> mono peaks at 1.7x), so the mean is taken
    here; it keeps the level of a signal present in every channel.
    """
    x = frame.to_ndarray()
    if x.ndim == 1:
        x = x[None, :]
    if x.shape[0] > 1:
        names = [c.name for c in frame.layout.channels] if frame.layout is not None else []
        keep = [i for i, name in enumerate(names) if name != "LFE"] if len(names) == x.shape[0] else []
        x = (x[keep] if keep else x).mean(axis=0, keepdims=True)
    # resampling overshoots a full-scale input by a few percent (Gibbs); keep [-1, 1]. Float
    # samples can hold NaN or infinities (a damaged or hostile float PCM stream): silence and +-1.
    mono = np.nan_to_num(x[0], nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)


class _Resampler:
    """Any audio frame -> mono float32 at :data:`SAMPLE_RATE`, streaming, format changes allowed."""

    def __init__(self):
        self._resampler = None

    def _new(self):
        return av.AudioResampler(format="fltp", layout=None, rate=SAMPLE_RATE)

    def push(self, frame) -> list[np.ndarray]:
        if self._resampler is None:
            self._resampler = self._new()
        try:
            out = self._resampler.resample(frame)
        except ValueError:  # the input format changed mid-stream: drain and start afresh
            out = self.flush()
            self._resampler = self._new()
            out += [_downmix(f) for f in self._resampler.resample(frame)]
            return out
        return [_downmix(f) for f in out]

    def flush(self) -> list[np.ndarray]:
        if self._resampler is None:
            return []
        out = [_downmix(f) for f in self._resampler.resample(None)]
        self._resampler = None
        return out


def _iter_av(path, info: MediaInfo, window_s, visual_fps, limits, video_wanted=True):
    container = _open_av(path, "video", limits)
    try:
        video, audio = _pick_streams(container, path)
        if info.kind == "audio" or not video_wanted:
            video = None
        if not info.has_audio:
            audio = None
        streams = [s for s in (video, audio) if s is not None]
        if video is not None:
            video.thread_type = "AUTO"
        origin = _origin_s(streams)
        fallback_frame_s = 1.0 / info.fps if info.fps else 1.0 / 25.0
        shape = (info.height, info.width) if video is not None and info.width else None
        asm = _WindowAssembler(window_s, visual_fps, video is not None, audio is not None, shape,
                               limits.max_duration_s, path, limits.max_window_bytes)
        if audio is not None and audio.duration is not None and audio.time_base is not None:
            start = float(audio.start_time * audio.time_base) if audio.start_time is not None else origin
            asm.audio_end = int(round((start - origin + float(audio.duration * audio.time_base)) * SAMPLE_RATE))
        resampler = _Resampler()
        coded_size = None
        audio_started = False
        last_t = -fallback_frame_s
        decoded = 0
        for packet in container.demux(*streams):
            try:
                frames = packet.decode()
            except (av.error.InvalidDataError, av.error.EOFError, av.error.UndefinedError):
                continue  # a damaged packet: FFmpeg conceals it, so do we
            for frame in frames:
                decoded += 1
                if packet.stream.type == "video":
                    t = float(frame.time) - origin if frame.time is not None else last_t + fallback_frame_s
                    last_t = t
                    if coded_size is None:
                        coded_size = (frame.width, frame.height)
                    dur = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else 0.0
                    convert = _FrameConverter(frame, info.rotation, coded_size)
                    asm.add_frame(t, dur or fallback_frame_s, convert)
                else:
                    if not audio_started:
                        audio_started = True
                        lead = float(frame.time) - origin if frame.time is not None else 0.0
                        if lead > 1e-3:  # audio starts after the video: keep them in sync
                            asm.add_audio(np.zeros(int(round(lead * SAMPLE_RATE)), np.float32))
                    _check_sample_rate(frame.sample_rate, limits, path)
                    for chunk in resampler.push(frame):
                        asm.add_audio(chunk)
            yield from asm.ready()
        for chunk in resampler.flush():
            asm.add_audio(chunk)
        if decoded == 0:
            raise CorruptMediaError("truncated or corrupt: no frame could be decoded", path)
        if info.kind == "audio" and asm.audio_total < MIN_AUDIO_SAMPLES:
            raise AudioTooShortError(
                f"audio has {asm.audio_total} samples at {SAMPLE_RATE} Hz, fewer than {_TOO_SHORT}", path,
            )
        yield from asm.finish()
    except av.error.FFmpegError as error:
        raise CorruptMediaError(f"decoding failed part-way ({error})", path) from error
    finally:
        container.close()


class _FrameConverter:
    """Deferred RGB conversion of one decoded frame (only chosen frames are converted)."""

    __slots__ = ("frame", "rotation", "size")

    def __init__(self, frame, rotation, size):
        self.frame, self.rotation, self.size = frame, rotation, size

    def __call__(self) -> np.ndarray:
        return _video_frame_rgb(self.frame, self.rotation, self.size)


def _image_orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:
        return 1  # a broken EXIF block: show the pixels as stored


def _iter_pillow(path, info: MediaInfo, window_s, visual_fps, limits):
    with _open_image(path, limits) as img:
        orientation = _image_orientation(img)
        if info.kind == "image":
            _load_pil_frame(img, path)
            try:
                upright = ImageOps.exif_transpose(img)  # EXIF or XMP orientation
            except Exception:  # a broken EXIF or XMP block: orientation from the tag alone
                upright = _oriented(img, orientation)
            rgb = _pil_to_rgb(upright)
            yield Window(index=0, start_s=0.0, end_s=0.0, frames=rgb[None],
                         frame_times_s=np.zeros((1,), np.float64))
            return
        canvas = (info.height, info.width)  # a frame placed past the canvas grows Pillow's image: cut it
        asm = _WindowAssembler(window_s, visual_fps, True, False, canvas, limits.max_duration_s, path,
                               limits.max_window_bytes)
        t = 0.0
        for i in range(max(1, min(int(info.frame_count or 1), limits.max_image_frames))):
            try:
                img.seek(i)
            except Exception as error:  # EOFError, OSError, ValueError... from a damaged animation
                raise CorruptMediaError(f"truncated or corrupt animation ({type(error).__name__}: {error})",
                                        path) from error
            _load_pil_frame(img, path)
            duration = _gif_frame_seconds(img)
            snapshot = img.copy()  # seek() reuses the buffer; the frame may be chosen later
            asm.add_frame(t, duration, lambda im=snapshot: _fit(_pil_frame_rgb(im, orientation), canvas))
            t += duration
            yield from asm.ready()
        yield from asm.finish()


def _as_waveform(source) -> tuple[np.ndarray, int]:
    """In-memory audio -> (float32 mono (S,), sample rate in Hz); see :func:`iter_windows`."""
    if isinstance(source, tuple):
        if len(source) != 2:
            raise ValueError("in-memory audio must be (waveform, sample_rate)")
        data, rate = source
        if not isinstance(rate, (int, np.integer)) or int(rate) <= 0:
            raise ValueError(f"sample_rate must be a positive integer in Hz, got {rate!r}")
        rate = int(rate)
    else:
        data, rate = source, SAMPLE_RATE
    x = np.asarray(data)
    if x.ndim == 2:
        if x.shape[0] > 64:
            raise ValueError(f"a 2-D waveform must be (channels, samples), got shape {x.shape}")
    elif x.ndim != 1:
        raise ValueError(f"a waveform must be (samples,) or (channels, samples), got shape {x.shape}")
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    elif x.dtype == np.int32:
        x = x.astype(np.float32) / 2147483648.0
    elif x.dtype == np.uint8:
        x = (x.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(x.dtype, np.floating):
        x = np.nan_to_num(x.astype(np.float32))
    else:
        raise ValueError(f"waveform dtype {x.dtype} is not supported (use float, int16, int32 or uint8)")
    if x.ndim == 2:
        x = x.mean(axis=0)
    return np.ascontiguousarray(np.clip(x, -1.0, 1.0), dtype=np.float32), rate


def _resample_array(x: np.ndarray, rate: int) -> Iterator[np.ndarray]:
    """Resample mono float32 audio to :data:`SAMPLE_RATE` with FFmpeg, one second at a time."""
    if rate == SAMPLE_RATE:
        for i in range(0, x.size, SAMPLE_RATE):
            yield x[i:i + SAMPLE_RATE]
        return
    resampler = _Resampler()
    for i in range(0, x.size, rate):
        frame = av.AudioFrame.from_ndarray(x[None, i:i + rate], format="flt", layout="mono")
        frame.sample_rate = rate
        yield from resampler.push(frame)
    yield from resampler.flush()


def _iter_array(source, window_s, visual_fps, limits):
    x, rate = _as_waveform(source)
    duration = x.size / rate
    if duration > limits.max_duration_s:
        raise LimitExceededError(f"audio lasts {duration:.1f} s, over the limit of {limits.max_duration_s} s")
    if duration * SAMPLE_RATE < MIN_AUDIO_SAMPLES - 0.5:
        raise AudioTooShortError(
            f"audio has {duration * SAMPLE_RATE:.0f} samples at {SAMPLE_RATE} Hz, fewer than {_TOO_SHORT}"
        )

    def generate():
        asm = _WindowAssembler(window_s, visual_fps, False, True, None, limits.max_duration_s, None,
                               limits.max_window_bytes)
        for chunk in _resample_array(x, rate):
            asm.add_audio(chunk)
            yield from asm.ready()
        yield from asm.finish()

    return generate()


def iter_windows(
    source,
    window_s: float = WINDOW_SECONDS,
    visual_fps: float = VISUAL_FPS,
    limits: MediaLimits = DEFAULT_LIMITS,
    info: MediaInfo | None = None,
) -> Iterator[Window]:
    """Stream a media file as consecutive windows of ``window_s`` seconds.

    Video and audio are decoded in one demux pass; a window is yielded as soon as it is complete,
    so memory is bounded by about one window whatever the file's length. The file is probed (and
    bad files rejected with a typed error) when this function is called, before the first window.

    Frames are sampled at ``visual_fps`` by presentation timestamp: for each target time
    ``k / visual_fps`` the frame on screen at that time (the latest with pts <= target; the first
    frame for targets before it) is chosen, once, so a source slower than ``visual_fps`` gives
    fewer frames, never repeats. ``frame_times_s`` are those frames' real pts in
    seconds from the start of the media, so variable frame rate is followed, and
    ``start_s <= frame_times_s < end_s``. Frames are upright (display matrix or EXIF orientation
    applied) uint8 RGB ``(T, H, W, 3)``.

    Audio is resampled to 16 kHz and downmixed to mono float32 (mean of the channels, LFE left out)
    and cut at window bounds: window ``k`` holds samples ``[round(start_s*16000),
    round(end_s*16000))``, so the waveforms concatenate to the whole signal. Audio that starts
    later than the video is preceded by silence so that both stay in sync.

    Windows are ``[k*window_s, (k+1)*window_s)``. A file shorter than one window is one window;
    the last partial window is kept, and one shorter than :data:`MIN_TAIL_SECONDS` is merged
    into the window before it (so no window is a few milliseconds long). A still image is one
    window with ``start_s = end_s = 0`` and ``T = 1``; an animated GIF/WebP is sampled like a
    video, each frame shown for its own delay.

    Parameters
    ----------
    source : str, os.PathLike, np.ndarray or (np.ndarray, int)
        A file path; or in-memory audio like pyannote's ``AudioFile``: a waveform ``(S,)`` or
        ``(C, S)`` (channels first; float in [-1, 1], int16, int32 or uint8), alone (taken to be
        at 16 kHz) or with its sample rate in Hz as ``(waveform, sample_rate)``.
    window_s : float
        Window length in seconds (> 0).
    visual_fps : float
        Frames per second sampled from the visual stream (> 0).
    limits : MediaLimits
        Duration, pixel and size limits, checked before decoding and again while decoding.
    info : MediaInfo, optional
        The result of :func:`probe` for this path, to skip probing again.

    Returns
    -------
    Iterator[Window]
        A generator of windows, ``index`` 0, 1, ...

    Raises
    ------
    ValueError
        ``window_s`` or ``visual_fps`` not positive, or an in-memory waveform of the wrong shape.
    DeepscanError
        The typed errors of :func:`probe`, at call time; :class:`CorruptMediaError` or
        :class:`LimitExceededError` while iterating when the damage or the excess shows only then.
    """
    if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"window_s must be a positive number of seconds, got {window_s!r}")
    if not (isinstance(visual_fps, (int, float)) and math.isfinite(visual_fps) and visual_fps > 0):
        raise ValueError(f"visual_fps must be a positive number of frames per second, got {visual_fps!r}")
    if isinstance(source, (tuple, np.ndarray)) or hasattr(source, "__array__"):
        return _iter_array(source, window_s, visual_fps, limits)
    info = info if info is not None else probe(source, limits)
    _check_window_bytes(info, window_s, visual_fps, limits)
    if info.backend == "pillow":
        return _guard(_iter_pillow(source, info, window_s, visual_fps, limits), source)
    return _guard(_iter_av(source, info, window_s, visual_fps, limits), source)


def _check_window_bytes(info: MediaInfo, window_s: float, visual_fps: float, limits: MediaLimits) -> None:
    """Refuse, before decoding, a file whose frames for one window would exceed ``max_window_bytes``."""
    if not (info.has_video and info.width and info.height):
        return
    frames = 1 if info.kind == "image" else math.ceil(window_s * visual_fps) + 1
    needed = frames * info.width * info.height * 3
    if needed > limits.max_window_bytes:
        raise LimitExceededError(
            f"{frames} frames of {info.width}x{info.height} per {window_s:g} s window at {visual_fps:g} fps take "
            f"{needed / 2**20:.0f} MB, over the limit of {limits.max_window_bytes / 2**20:.0f} MB "
            "(MediaLimits.max_window_bytes)", info.path)


def _guard(windows: Iterator[Window], path) -> Iterator[Window]:
    """Let no raw av/PIL/OS exception escape while iterating."""
    try:
        yield from windows
    except DeepscanError:
        raise
    except MemoryError as error:
        raise LimitExceededError("decoding asks for more memory than there is", path) from error
    except (OSError, EOFError, SyntaxError) as error:
        raise CorruptMediaError(f"reading failed part-way ({error})", path) from error
    except (ValueError, RuntimeError, av.error.FFmpegError) as error:
        raise MediaDecodeError(f"decoding failed part-way ({error})", path) from error


def load_image(path: str | os.PathLike, limits: MediaLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Read an image file as upright uint8 RGB.

    Parameters
    ----------
    path : str or os.PathLike
        A still or animated image (an animation gives its first frame) or a video (first frame).
    limits : MediaLimits
        Size and pixel limits.

    Returns
    -------
    np.ndarray
        uint8 ``(H, W, 3)``, EXIF orientation / display matrix applied, alpha flattened on white.

    Raises
    ------
    NoDecodableStreamError
        The file is audio only.
    DeepscanError
        The typed errors of :func:`probe`.
    """
    info = probe(path, limits)
    if not info.has_video:
        raise NoDecodableStreamError("the file has no image or video stream", path)
    for window in iter_windows(path, window_s=WINDOW_SECONDS, visual_fps=VISUAL_FPS, limits=limits, info=info):
        if window.has_frames:
            return window.frames[0]
    raise CorruptMediaError("no frame could be decoded", path)


def load_waveform(source, limits: MediaLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Read a file's audio (or in-memory audio) as mono float32 at 16 kHz.

    Parameters
    ----------
    source : str, os.PathLike, np.ndarray or (np.ndarray, int)
        A path, or in-memory audio as accepted by :func:`iter_windows`.
    limits : MediaLimits
        Duration and size limits.

    Returns
    -------
    np.ndarray
        float32 ``(S,)`` at :data:`SAMPLE_RATE` Hz, mean of the channels.

    Raises
    ------
    NoDecodableStreamError
        The file has no audio stream.
    AudioTooShortError
        Fewer than :data:`MIN_AUDIO_SAMPLES` samples.
    DeepscanError
        The typed errors of :func:`probe`.
    """
    if isinstance(source, (tuple, np.ndarray)) or hasattr(source, "__array__"):
        windows = _iter_array(source, WINDOW_SECONDS, VISUAL_FPS, limits)
    else:
        info = probe(source, limits)
        if not info.has_audio:
            raise NoDecodableStreamError("the file has no audio stream", source)
        windows = _guard(_iter_av(source, info, WINDOW_SECONDS, VISUAL_FPS, limits, video_wanted=False), source)
    parts = [w.waveform for w in windows]
    wave = np.concatenate(parts) if parts else np.zeros((0,), np.float32)
    if wave.size < MIN_AUDIO_SAMPLES:
        raise AudioTooShortError(
            f"audio has {wave.size} samples at {SAMPLE_RATE} Hz, fewer than {_TOO_SHORT}",
            None if isinstance(source, (tuple, np.ndarray)) else source,
        )
    return wave


# --------------------------------------------------------------------------------------------
# Finding files
# --------------------------------------------------------------------------------------------


def iter_media_files(
    paths,
    recursive: bool = True,
    on_error: Callable[[Path, DeepscanError], None] | None = None,
) -> Iterator[Path]:
    """Expand files and directories into the media files to scan, in a deterministic order.

    A path named explicitly that is not a directory is yielded, media or not, existing or not,
    so that it gets a result (``probe`` then says why it can't be read); with ``on_error``, one
    that is a pipe, socket or device goes to ``on_error`` instead (nothing may open it: opening
    a pipe waits for a writer). Inside directories, entries are visited in sorted name order;
    files are kept when their first bytes look like media (:func:`sniff_kind`) or their extension
    says they are (:data:`MEDIA_EXTENSIONS`: an empty or mislabelled ``.mp4`` gets an error
    result); other files are skipped silently. Directories are entered once each by real path,
    so symbolic-link cycles end.

    Hazards inside a directory are reported, never opened or followed: a named pipe, socket or
    device node; a broken symbolic link; an entry that can't be read (permission denied); and a
    symbolic link whose target lies outside the directory named in ``paths`` (a link to ``/``
    would walk the whole disk, a link to a private file would put it in the report). Name a link's
    target explicitly to scan it. Files that vanish or change after they are listed get their
    reason from ``probe``.

    Parameters
    ----------
    paths : str, os.PathLike or iterable of them
        Files and directories.
    recursive : bool
        Walk into subdirectories (otherwise only the files directly inside a named directory).
    on_error : callable(path, error), optional
        Called with an :class:`UnreadableFileError` for each hazard above. When ``None``, such
        entries are yielded instead, so that the caller's ``probe`` reports them (it opens
        nothing that is not a regular file); nothing is dropped either way.

    Yields
    ------
    pathlib.Path
        Paths as found (not resolved), so a file is reported under the name it was given.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    visited: set[str] = set()
    for item in paths:
        path = Path(item)
        if path.is_dir():
            yield from _walk(path, recursive, on_error, visited, os.path.realpath(path))
            continue
        if on_error is not None:
            try:
                reason = _not_regular(os.stat(path).st_mode)
            except OSError:
                reason = None  # missing or unreadable: probe says why
            if reason:
                on_error(path, UnreadableFileError(reason, path))
                continue
        yield path


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _walk(directory: Path, recursive, on_error, visited: set[str], root: str) -> Iterator[Path]:
    real = os.path.realpath(directory)
    if real in visited:
        return
    visited.add(real)

    def report(path: Path, error: DeepscanError) -> Iterator[Path]:
        if on_error is not None:
            on_error(path, error)
        else:
            yield path

    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError as error:
        yield from report(directory, UnreadableFileError(_os_reason(error), directory))
        return
    for entry in entries:
        path = Path(entry.path)
        try:
            link = entry.is_symlink()
            if link:
                target = os.path.realpath(path)
                try:
                    os.stat(path)
                except OSError as error:  # ELOOP: links that point at each other, not a missing target
                    why = "symbolic link loop" if error.errno == errno.ELOOP else "broken symbolic link"
                    yield from report(path, UnreadableFileError(why, path))
                    continue
                if not _inside(target, root):
                    yield from report(path, UnreadableFileError(
                        f"symbolic link to {target}, outside the scanned folder {root}: not followed "
                        "(name the target itself to scan it)", path))
                    continue
            mode = os.stat(path).st_mode
        except OSError as error:
            yield from report(path, UnreadableFileError(_os_reason(error), path))
            continue
        if stat.S_ISDIR(mode):
            if recursive:
                yield from _walk(path, recursive, on_error, visited, root)
            continue
        reason = _not_regular(mode)
        if reason:
            yield from report(path, UnreadableFileError(reason, path))
            continue
        try:
            kind = sniff_kind(path)
        except UnreadableFileError as error:
            yield from report(path, error)
            continue
        if kind is not None or path.suffix.lower() in MEDIA_EXTENSIONS:
            yield path  # a file named as media that isn't gets its own error result


def check_rgb_frame(frame) -> np.ndarray:
    """Refuse anything but a uint8 ``(H, W, 3)`` frame with ``H, W >= 1``, as the image experts take.

    Parameters
    ----------
    frame : object
        What the caller was given.

    Returns
    -------
    np.ndarray
        ``frame`` itself.

    Raises
    ------
    TypeError
        If ``frame`` is not a uint8 numpy array.
    ValueError
        If it is not ``(H, W, 3)`` with ``H, W >= 1``.
    """
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise TypeError(f"frame must be a uint8 RGB numpy array, got {getattr(frame, 'dtype', type(frame))}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"frame must have shape (H, W, 3), got {frame.shape}")
    return frame
