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

import dataclasses
import math
import os
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator
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
MIN_AUDIO_SAMPLES = 400  # wav2vec2's receptive field at 16 kHz (25 ms)

MAX_DURATION_S = 6 * 3600.0  # s, longest media accepted by default
MAX_PIXELS = 16_384 * 16_384  # pixels per frame or image (decompression-bomb guard)
MAX_FILE_BYTES = 64 * 1024**3  # bytes, largest file accepted by default

KINDS = ("video", "audio", "image")

MIN_TAIL_SECONDS = 0.5  # s, a last window shorter than this is merged into the one before
SNIFF_BYTES = 4096  # bytes read from the head of a file to recognise its format
TIME_EPS_S = 1e-4  # s, tolerance when comparing presentation times (rounding of time bases)
GIF_MIN_FRAME_MS = 20  # browsers show GIF frames of <= 10 ms delay for 100 ms
GIF_DEFAULT_FRAME_MS = 100
PROBE_MAX_PACKETS = 2_000  # packets probe() reads at most to find a first decodable frame


@dataclass(frozen=True)
class MediaLimits:
    """Limits that stop decompression bombs and runaway inputs.

    Parameters
    ----------
    max_duration_s : float
        Longest accepted duration in seconds.
    max_pixels : int
        Largest accepted frame or image area (width x height, pixels).
    max_file_bytes : int
        Largest accepted file size in bytes.
    """

    max_duration_s: float = MAX_DURATION_S
    max_pixels: int = MAX_PIXELS
    max_file_bytes: int = MAX_FILE_BYTES


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
        Container or image format name (e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"png"``).
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
        When the file can't be opened or read (missing, permission denied, a directory).
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as error:
        raise UnreadableFileError(_os_reason(error), path) from error
    return _sniff_bytes(head)


def _os_reason(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "no such file (or a broken symbolic link)"
    if isinstance(error, PermissionError):
        return "permission denied; check the file's permissions"
    if isinstance(error, IsADirectoryError):
        return "is a directory, not a file"
    return f"cannot be read ({error.strerror or error})"


def _check_file(path: str | os.PathLike, limits: MediaLimits) -> tuple[int, bytes]:
    """Stat and read the head of a file; return (size in bytes, first bytes)."""
    try:
        st = os.stat(path)
    except OSError as error:
        raise UnreadableFileError(_os_reason(error), path) from error
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableFileError("is a directory, not a file", path)
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFileError("is not a regular file (device, pipe or socket)", path)
    if st.st_size == 0:
        raise EmptyFileError("the file is empty (0 bytes)", path)
    if st.st_size > limits.max_file_bytes:
        raise LimitExceededError(
            f"file is {st.st_size} bytes, over the limit of {limits.max_file_bytes} bytes", path
        )
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as error:
        raise UnreadableFileError(_os_reason(error), path) from error
    return st.st_size, head


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


def _open_image(path: str | os.PathLike, limits: MediaLimits) -> Image.Image:
    """Open an image with Pillow (header only), mapping Pillow's errors to deepscan's."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as error:
        raise LimitExceededError(f"image is too large to decode safely ({error})", path) from error
    except UnidentifiedImageError as error:
        raise _NotPillowImage(str(error)) from error
    except OSError as error:
        if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise UnreadableFileError(_os_reason(error), path) from error
        raise CorruptMediaError(f"truncated or corrupt image ({error})", path) from error
    except (SyntaxError, ValueError, EOFError) as error:
        raise CorruptMediaError(f"truncated or corrupt image ({error})", path) from error
    width, height = img.size
    if width * height > limits.max_pixels:
        img.close()
        raise LimitExceededError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of "
            f"{limits.max_pixels} pixels", path,
        )
    return img


def _load_pil_frame(img: Image.Image, path) -> None:
    """Decode the current frame, mapping errors (truncated data, bombs) to typed errors."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except Image.DecompressionBombError as error:
        raise LimitExceededError(f"image is too large to decode safely ({error})", path) from error
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as error:
        raise CorruptMediaError(f"truncated or corrupt image ({error})", path) from error


def _gif_frame_seconds(img: Image.Image) -> float:
    """Display time of the current frame of an animated image, in seconds.

    A delay of 10 ms or less is shown for 100 ms, as browsers do (and as FFmpeg's GIF demuxer).
    """
    ms = img.info.get("duration") or 0
    if ms < GIF_MIN_FRAME_MS:
        ms = GIF_DEFAULT_FRAME_MS
    return float(ms) / 1000.0


def _animated_duration(img: Image.Image, path) -> float:
    total = 0.0
    try:
        for i in range(img.n_frames):
            img.seek(i)
            total += _gif_frame_seconds(img)
        img.seek(0)
    except (OSError, EOFError, ValueError, SyntaxError) as error:
        raise CorruptMediaError(f"truncated or corrupt animation ({error})", path) from error
    return round(total, 6)


def _probe_image(path, size_bytes: int, limits: MediaLimits) -> MediaInfo:
    img = _open_image(path, limits)
    with img:
        fmt = (img.format or "image").lower()
        width, height = img.size
        _load_pil_frame(img, path)
        orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
        rotation = _EXIF_ROTATION.get(orientation, 0)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        n_frames = int(getattr(img, "n_frames", 1) or 1)
        info = MediaInfo(
            path=os.fspath(path), kind="image", container=fmt, video_codec=fmt, duration_s=0.0,
            width=width, height=height, frame_count=1, rotation=rotation, size_bytes=size_bytes,
            backend="pillow",
        )
        if n_frames > 1:
            duration = _animated_duration(img, path)
            if duration > limits.max_duration_s:
                raise LimitExceededError(
                    f"animation lasts {duration:.1f} s, over the limit of {limits.max_duration_s} s", path
                )
            info.kind = "video"
            info.duration_s = duration
            info.frame_count = n_frames
            info.fps = n_frames / duration if duration > 0 else None
    return info


def _open_av(path, sniffed: str | None):
    """Open a container with PyAV, mapping FFmpeg's errors to deepscan's."""
    try:
        container = av.open(os.fspath(path), mode="r", metadata_errors="replace")
    except (av.error.FileNotFoundError, av.error.PermissionError, av.error.IsADirectoryError) as error:
        raise UnreadableFileError(_os_reason(error), path) from error
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
    if sniffed is None and container.format.name in _NON_MEDIA_FORMATS:
        container.close()
        raise NotMediaError(f"the content is {container.format.name} data, not audio or video", path)
    return container


def _has_decoder(stream) -> bool:
    try:
        return stream.codec_context is not None and stream.codec_context.codec is not None
    except (av.error.FFmpegError, ValueError, AttributeError):
        return False


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
        names = ", ".join(f"{s.type} '{getattr(s.codec_context, 'name', None) or s.codec_tag}'" for s in unsupported)
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


def _probe_av(path, size_bytes: int, sniffed: str | None, limits: MediaLimits) -> MediaInfo:
    container = _open_av(path, sniffed)
    try:
        try:
            video, audio = _pick_streams(container, path)
        except NoDecodableStreamError:
            if sniffed is None:
                raise NotMediaError("the content is not audio, video or an image", path) from None
            raise
        duration = container.duration / 1e6 if container.duration is not None else None
        if duration is None:
            durations = [d for d in (_stream_seconds(video), _stream_seconds(audio)) if d is not None]
            duration = max(durations) if durations else None
        if duration is not None and duration > limits.max_duration_s:
            raise LimitExceededError(
                f"media lasts {duration:.1f} s, over the limit of {limits.max_duration_s} s", path
            )
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
            info.audio_channels = int(first_audio.layout.nb_channels) if first_audio.layout else None
            if (info.kind == "audio" and duration is not None
                    and duration * SAMPLE_RATE < MIN_AUDIO_SAMPLES - 0.5):
                raise AudioTooShortError(
                    f"audio lasts {duration * 1000:.0f} ms ({duration * SAMPLE_RATE:.0f} samples at "
                    f"{SAMPLE_RATE} Hz), shorter than the {MIN_AUDIO_SAMPLES} samples wav2vec2 needs", path,
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
        Missing file, broken link, permission denied, a directory or a non-regular file.
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
        Over ``limits`` (file size, duration, pixels), checked before decoding.
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
