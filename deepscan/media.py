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
            img.load()  # WebP sets a frame's duration when it is loaded
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


# --------------------------------------------------------------------------------------------
# Pixels: every image mode to upright 8-bit RGB
# --------------------------------------------------------------------------------------------

ALPHA_BACKGROUND = 255  # transparent pixels are flattened onto white, as an image viewer shows them


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
            rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
            alpha = rgba[:, :, 3:4] / 255.0
            rgb = rgba[:, :, :3] * alpha + ALPHA_BACKGROUND * (1.0 - alpha)
            return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
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
    that a last window shorter than that can be merged into the one before it.
    """

    def __init__(self, window_s, visual_fps, has_video, has_audio, frame_shape, max_duration_s, path):
        self.window_s = float(window_s)
        self.step_s = 1.0 / float(visual_fps)
        self.has_video = has_video
        self.has_audio = has_audio
        self.frame_shape = frame_shape  # (H, W) of upright frames, for empty windows
        self.max_duration_s = max_duration_s
        self.path = path
        self.target = 0  # index of the next target time
        self.prev = None  # [time, converter, used] of the latest decoded frame
        self.chosen: list[tuple[float, np.ndarray]] = []
        self.video_time = 0.0
        self.video_end = 0.0
        self.audio: list[np.ndarray] = []
        self.audio_total = 0  # samples received so far
        self.audio_taken = 0  # samples handed out in windows
        self.audio_end = None  # stated end of the audio stream in samples, to trim codec padding
        self.index = 0

    def _check_time(self, t: float) -> None:
        if t > self.max_duration_s + self.window_s:
            raise LimitExceededError(
                f"media runs past the limit of {self.max_duration_s} s while decoding", self.path
            )

    def _choose(self, t: float, convert: Callable[[], np.ndarray]) -> None:
        arr = convert()
        self.frame_shape = arr.shape[:2]
        self.chosen.append((t, arr))

    def add_frame(self, t: float, duration_s: float, convert: Callable[[], np.ndarray]) -> None:
        """Add a decoded frame with pts ``t`` (s) and display time ``duration_s`` (s)."""
        self._check_time(t)
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
            self.audio.append(samples)
            self.audio_total += samples.size
            self._check_time(self.audio_total / SAMPLE_RATE)

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
        window = Window(index=self.index, start_s=start_s, end_s=end_s, frames=arrays,
                        frame_times_s=times, waveform=self._take_audio(n), has_audio=self.has_audio)
        self.index += 1
        return window

    def ready(self) -> Iterator[Window]:
        """Yield the windows that no later frame or sample can change."""
        while True:
            start = self.index * self.window_s
            end = start + self.window_s
            if self.has_video and self.video_time < end + MIN_TAIL_SECONDS - TIME_EPS_S:
                return
            if self.has_audio and self.audio_total < round((end + MIN_TAIL_SECONDS) * SAMPLE_RATE):
                return
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
    # resampling overshoots a full-scale input by a few percent (Gibbs); keep [-1, 1]
    return np.clip(x[0], -1.0, 1.0).astype(np.float32, copy=False)


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
    container = _open_av(path, "video")
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
                               limits.max_duration_s, path)
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
                    for chunk in resampler.push(frame):
                        asm.add_audio(chunk)
            yield from asm.ready()
        for chunk in resampler.flush():
            asm.add_audio(chunk)
        if decoded == 0:
            raise CorruptMediaError("truncated or corrupt: no frame could be decoded", path)
        if info.kind == "audio" and asm.audio_total < MIN_AUDIO_SAMPLES:
            raise AudioTooShortError(
                f"audio has {asm.audio_total} samples at {SAMPLE_RATE} Hz, fewer than the "
                f"{MIN_AUDIO_SAMPLES} wav2vec2 needs", path,
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
    except (ValueError, TypeError, OSError, SyntaxError):
        return 1  # a broken EXIF block: show the pixels as stored


def _iter_pillow(path, info: MediaInfo, window_s, visual_fps, limits):
    img = _open_image(path, limits)
    with img:
        orientation = _image_orientation(img)
        if info.kind == "image":
            _load_pil_frame(img, path)
            try:
                upright = ImageOps.exif_transpose(img)  # EXIF or XMP orientation
            except (ValueError, TypeError, OSError, SyntaxError):
                upright = _oriented(img, orientation)
            rgb = _pil_to_rgb(upright)
            yield Window(index=0, start_s=0.0, end_s=0.0, frames=rgb[None],
                         frame_times_s=np.zeros((1,), np.float64))
            return
        asm = _WindowAssembler(window_s, visual_fps, True, False, (info.height, info.width),
                               limits.max_duration_s, path)
        t = 0.0
        for i in range(int(getattr(img, "n_frames", 1))):
            try:
                img.seek(i)
            except (EOFError, OSError, ValueError) as error:
                raise CorruptMediaError(f"truncated or corrupt animation ({error})", path) from error
            _load_pil_frame(img, path)
            duration = _gif_frame_seconds(img)
            snapshot = img.copy()  # seek() reuses the buffer; the frame may be chosen later
            asm.add_frame(t, duration, lambda im=snapshot: _pil_frame_rgb(im, orientation))
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
            f"audio has {duration * SAMPLE_RATE:.0f} samples at {SAMPLE_RATE} Hz, fewer than the "
            f"{MIN_AUDIO_SAMPLES} wav2vec2 needs"
        )

    def generate():
        asm = _WindowAssembler(window_s, visual_fps, False, True, None, limits.max_duration_s, None)
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
    if info.backend == "pillow":
        return _guard(_iter_pillow(source, info, window_s, visual_fps, limits), source)
    return _guard(_iter_av(source, info, window_s, visual_fps, limits), source)


def _guard(windows: Iterator[Window], path) -> Iterator[Window]:
    """Let no raw av/PIL/OS exception escape while iterating."""
    try:
        yield from windows
    except DeepscanError:
        raise
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
            f"audio has {wave.size} samples at {SAMPLE_RATE} Hz, fewer than the {MIN_AUDIO_SAMPLES} wav2vec2 needs",
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

    A path named explicitly that is not a directory is always yielded, media or not, existing or
    not, so that it gets a result (``probe`` then says why it can't be read). Inside directories,
    entries are visited in sorted name order, files are kept when their first bytes look like
    media (:func:`sniff_kind`) or their extension says they are (:data:`MEDIA_EXTENSIONS`: an
    empty or mislabelled ``.mp4`` gets an error result), other files are skipped silently, and directories are entered
    once each by real path, so symbolic-link cycles end. Sockets, pipes and devices are skipped
    (opening a pipe would block).

    Parameters
    ----------
    paths : str, os.PathLike or iterable of them
        Files and directories.
    recursive : bool
        Walk into subdirectories (otherwise only the files directly inside a named directory).
    on_error : callable(path, error), optional
        Called with an :class:`UnreadableFileError` for each entry inside a directory that can't
        be read (permission denied, broken symbolic link). When ``None``, such entries are yielded
        instead, so that the caller's ``probe`` reports them; nothing is dropped either way.

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
            yield from _walk(path, recursive, on_error, visited, top=True)
        else:
            yield path


def _walk(directory: Path, recursive, on_error, visited: set[str], top: bool) -> Iterator[Path]:
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
            is_dir = entry.is_dir()
            is_file = entry.is_file()
        except OSError as error:
            yield from report(path, UnreadableFileError(_os_reason(error), path))
            continue
        if is_dir:
            if recursive:
                yield from _walk(path, recursive, on_error, visited, top=False)
            continue
        if not is_file:
            if entry.is_symlink() and not os.path.exists(path):
                yield from report(path, UnreadableFileError("broken symbolic link", path))
            continue
        try:
            kind = sniff_kind(path)
        except UnreadableFileError as error:
            yield from report(path, error)
            continue
        if kind is not None or path.suffix.lower() in MEDIA_EXTENSIONS:
            yield path  # a file named as media that isn't gets its own error result
