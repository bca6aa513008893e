"""Fuzz cases for :mod:`bench.fuzz`: valid seed media of every format deepscan reads, and mutations.

Everything here is made from integers: the seed files are encoded with PyAV and Pillow from fixed
arrays (bit-exact muxing, single-threaded encoders), and case ``i`` of campaign ``s`` is the seed
file and mutation that ``numpy.random.default_rng([s, i])`` picks. So a failing case is kept as two
numbers (see ``tests/test_fuzz.py``), never as a binary blob.

A mutation knows the structure of the formats: it parses boxes (MP4/MOV/M4A), RIFF chunks (WAV,
AVI, WebP), EBML elements (MKV/WebM), PNG chunks, GIF blocks, JPEG segments, TIFF IFDs, BMP
headers, Ogg pages, FLAC metadata blocks and MP3 frames into :class:`Span` objects (structural
boundaries) and :class:`Field` objects (header fields: sizes, rates, counts, durations,
timestamps), and then flips bits, truncates at a boundary, deletes, duplicates or moves a
structural unit, sets a header field to an extreme, inserts bytes, or joins two files of different
formats. :func:`bombs` builds the decompression and resource bombs that the limits must refuse.
"""

from __future__ import annotations

import hashlib
import io
import struct
import tempfile
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

SEED_VERSION = 1  # bump when the seed files change, so that cached seeds are rebuilt
SEED_DIR = Path(tempfile.gettempdir()) / f"deepscan-fuzz-seeds-v{SEED_VERSION}"
SIZE = (64, 48)  # (width, height) of seed videos and images, pixels
FPS = 10
SECONDS = 1.0  # length of seed videos and audio


@dataclass(frozen=True)
class Span:
    """A structural unit of a file: ``data[start:end]`` (a box, chunk, element, page, frame...)."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class Field:
    """A header field: ``size`` bytes at ``offset`` (``byteorder`` "big"/"little"), or ``bits`` bits at bit ``offset``."""

    offset: int
    size: int
    byteorder: str
    label: str
    bits: int = 0  # > 0: a bit field of this many bits at bit offset ``offset`` (big-endian bit order)
    timestamp: bool = False  # a time or duration: also tried going backwards


@dataclass(frozen=True)
class Case:
    """One fuzz case: which seed file, which mutation, with which generator seed."""

    campaign: int
    index: int
    seed_name: str
    mutator: str
    detail: str

    @property
    def name(self) -> str:
        """File name of the case: index, seed stem and mutator, with the seed's extension."""
        stem, _, ext = self.seed_name.rpartition(".")
        stem = "".join(c if c.isalnum() else "_" for c in stem)[:24]
        return f"c{self.index:05d}-{stem}-{self.mutator}.{ext}"


# --------------------------------------------------------------------------------------------
# Seed files
# --------------------------------------------------------------------------------------------


def _pattern(i: int, size=SIZE) -> np.ndarray:
    """Frame ``i``: moving gradients with a bright square (something for every codec to code)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 4 + i * 9) % 256, (yy * 5 + i * 3) % 256, ((xx + yy) * 2 + i * 17) % 256], axis=2)
    x0 = (i * 5) % (w - 12)
    img[10:22, x0:x0 + 12] = 240
    return img.astype(np.uint8)


def _tone(n: int, rate: int, channels: int) -> np.ndarray:
    t = np.arange(n) / rate
    x = 0.4 * np.sin(2 * np.pi * 440.0 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t))
    return np.repeat(x[None].astype(np.float32), channels, axis=0)


def _encode(path: Path, fmt: str, vcodec: str | None, acodec: str | None, rate: int = 16_000,
            layout: str = "mono", pix_fmt: str = "yuv420p") -> None:
    """Encode :data:`SECONDS` of pattern video and tone audio, bit-exact and single-threaded."""
    import av

    out = av.open(str(path), mode="w", format=fmt, options={"fflags": "+bitexact"})
    vstream = astream = None
    if vcodec:
        vstream = out.add_stream(vcodec, rate=FPS)
        vstream.width, vstream.height = SIZE
        vstream.pix_fmt = pix_fmt
        vstream.codec_context.thread_count = 1
        options = {"flags": "+bitexact"}
        if vcodec == "libx264":
            options.update(preset="ultrafast", bf="0", threads="1")
        vstream.codec_context.options = options
    if acodec:
        astream = out.add_stream(acodec, rate=rate, layout=layout)
        astream.codec_context.thread_count = 1
        astream.codec_context.options = {"flags": "+bitexact", "strict": "experimental"}
    if vstream is not None:
        for i in range(int(SECONDS * FPS)):
            frame = av.VideoFrame.from_ndarray(_pattern(i), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            for packet in vstream.encode(frame):
                out.mux(packet)
        for packet in vstream.encode(None):
            out.mux(packet)
    if astream is not None:
        n_total = int(SECONDS * rate)
        channels = astream.codec_context.layout.nb_channels
        data = _tone(n_total, rate, channels)
        fmt_name = astream.codec_context.format.name
        chunk = astream.codec_context.frame_size or 1024
        for start in range(0, n_total, chunk):
            block = data[:, start:start + chunk]
            arr = np.ascontiguousarray(block) if fmt_name.endswith("p") else np.ascontiguousarray(block.T.reshape(1, -1))
            if fmt_name.startswith("s16"):
                arr = (arr * 32767).astype(np.int16)
            elif fmt_name.startswith("s32"):
                arr = (arr * 2147483647).astype(np.int32)
            elif fmt_name.startswith("u8"):
                arr = (arr * 127 + 128).astype(np.uint8)
            frame = av.AudioFrame.from_ndarray(arr, format=fmt_name, layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in astream.encode(frame):
                out.mux(packet)
        for packet in astream.encode(None):
            out.mux(packet)
    out.close()


def _image(path: Path, fmt: str, frames: int = 1, **options) -> None:
    from PIL import Image

    images = [Image.fromarray(_pattern(3 * i)) for i in range(frames)]
    if fmt == "GIF":
        images = [im.quantize(16) for im in images]
    if frames > 1:
        images[0].save(path, format=fmt, save_all=True, append_images=images[1:], duration=[80 + 40 * i for i in range(frames)],
                       loop=0, **options)
    else:
        images[0].save(path, format=fmt, **options)


# name -> how to make it. Every container and codec of the issue: MP4/H.264+AAC, MKV, WebM VP8/VP9,
# AVI, MOV, WAV, FLAC, MP3, M4A, OGG, PNG, JPEG, GIF, WebP, animated WebP, TIFF, BMP (and APNG).
SEEDS = {
    "h264_aac.mp4": lambda p: _encode(p, "mp4", "libx264", "aac"),
    "mpeg4_mp3.mkv": lambda p: _encode(p, "matroska", "mpeg4", "libmp3lame", 44_100, "stereo"),
    "vp8_opus.webm": lambda p: _encode(p, "webm", "libvpx", "libopus", 48_000),
    "vp9_opus.webm": lambda p: _encode(p, "webm", "libvpx-vp9", "libopus", 48_000, "stereo"),
    "mpeg4_pcm.avi": lambda p: _encode(p, "avi", "mpeg4", "pcm_s16le", 22_050),
    "mjpeg_pcm.avi": lambda p: _encode(p, "avi", "mjpeg", "pcm_u8", 8_000, pix_fmt="yuvj420p"),
    "h264_aac.mov": lambda p: _encode(p, "mov", "libx264", "aac", 44_100, "stereo"),
    "pcm.wav": lambda p: _encode(p, "wav", None, "pcm_s16le", 22_050, "stereo"),
    "flac.flac": lambda p: _encode(p, "flac", None, "flac", 48_000),
    "mp3.mp3": lambda p: _encode(p, "mp3", None, "libmp3lame", 44_100, "stereo"),
    "aac.m4a": lambda p: _encode(p, "ipod", None, "aac", 44_100, "stereo"),
    "vorbis.ogg": lambda p: _encode(p, "ogg", None, "vorbis", 44_100, "stereo"),
    "opus.ogg": lambda p: _encode(p, "ogg", None, "libopus", 48_000),
    "rgb.png": lambda p: _image(p, "PNG"),
    "anim.png": lambda p: _image(p, "PNG", frames=4),
    "photo.jpg": lambda p: _image(p, "JPEG", quality=85),
    "still.gif": lambda p: _image(p, "GIF"),
    "anim.gif": lambda p: _image(p, "GIF", frames=5),
    "still.webp": lambda p: _image(p, "WEBP", quality=80),
    "anim.webp": lambda p: _image(p, "WEBP", frames=4, lossless=True),
    "rgb.tiff": lambda p: _image(p, "TIFF"),
    "lzw.tiff": lambda p: _image(p, "TIFF", frames=2, compression="tiff_lzw"),
    "rgb.bmp": lambda p: _image(p, "BMP"),
}


def seed_files(shared_cases: Path | None = None, folder: Path = SEED_DIR) -> dict[str, bytes]:
    """The seed files' bytes by name: generated ones (cached in ``folder``), then ``shared_cases``.

    Parameters
    ----------
    shared_cases : Path, optional
        ``../shared/cases``: its files (README excluded) are seeds too, as ``cases/NAME``.
    folder : Path
        Where generated seeds are kept between runs.

    Returns
    -------
    dict[str, bytes]
        Sorted by name, so that case ``i`` picks the same seed on every machine with the same files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    seeds = {}
    for name, make in SEEDS.items():
        path = folder / name
        if not path.exists() or path.stat().st_size == 0:
            tmp = folder / f".part-{name}"
            make(tmp)
            tmp.replace(path)
        seeds[name] = path.read_bytes()
    if shared_cases is not None and shared_cases.is_dir():
        for path in sorted(shared_cases.iterdir()):
            if path.is_file() and path.name not in ("README.md", "SHA256SUMS"):
                seeds[f"cases/{path.name}"] = path.read_bytes()
    return dict(sorted(seeds.items()))


def seeds_digest(seeds: dict[str, bytes]) -> str:
    """Short SHA-256 over the seed names and bytes: two runs with the same digest made the same cases."""
    digest = hashlib.sha256()
    for name, data in sorted(seeds.items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Structure: spans (boundaries) and fields of each format
# --------------------------------------------------------------------------------------------


def _u(data: bytes, offset: int, size: int, order: str = "big") -> int:
    return int.from_bytes(data[offset:offset + size], order) if offset + size <= len(data) else 0


_BOX_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"edts", b"dinf", b"mvex", b"moof",
                   b"traf", b"mfra", b"sinf", b"ilst"}
_VISUAL_ENTRIES = {b"avc1", b"avc3", b"hvc1", b"hev1", b"mp4v", b"vp09", b"av01", b"jpeg", b"mjpa", b"s263"}
_AUDIO_ENTRIES = {b"mp4a", b"Opus", b"fLaC", b"ac-3", b"alac", b"sowt", b"twos", b".mp3"}


def _bmff(data: bytes, start: int, end: int, spans: list, fields: list) -> None:
    pos = start
    while pos + 8 <= end:
        size, kind = _u(data, pos, 4), data[pos + 4:pos + 8]
        header = 8
        if size == 1:
            size, header = _u(data, pos + 8, 8), 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        label = kind.decode("latin-1")
        spans.append(Span(pos, pos + size, label))
        fields.append(Field(pos, 4, "big", f"{label}.size"))
        body = pos + header
        version = data[body] if body < end else 0
        if kind in _BOX_CONTAINERS:
            _bmff(data, body, pos + size, spans, fields)
        elif kind == b"meta":
            _bmff(data, body + 4, pos + size, spans, fields)
        elif kind == b"stsd":
            _bmff(data, body + 8, pos + size, spans, fields)
        elif kind in _VISUAL_ENTRIES:
            fields += [Field(body + 24, 2, "big", f"{label}.width"), Field(body + 26, 2, "big", f"{label}.height"),
                       Field(body + 74, 2, "big", f"{label}.depth")]
            _bmff(data, body + 78, pos + size, spans, fields)
        elif kind in _AUDIO_ENTRIES:
            fields += [Field(body + 16, 2, "big", f"{label}.channels"), Field(body + 18, 2, "big", f"{label}.sample_bits"),
                       Field(body + 24, 4, "big", f"{label}.sample_rate")]
            _bmff(data, body + 28, pos + size, spans, fields)
        elif kind in (b"mvhd", b"mdhd"):
            wide = 8 if version == 1 else 4
            scale = body + 4 + 2 * wide
            fields += [Field(scale, 4, "big", f"{label}.timescale", timestamp=True),
                       Field(scale + 4, wide, "big", f"{label}.duration", timestamp=True)]
        elif kind == b"tkhd":
            wide = 8 if version == 1 else 4
            fields += [Field(body + 4 + 2 * wide + 8, wide, "big", "tkhd.duration", timestamp=True),
                       Field(pos + size - 8, 4, "big", "tkhd.width"), Field(pos + size - 4, 4, "big", "tkhd.height")]
        elif kind in (b"stts", b"ctts", b"stsc", b"stco", b"co64", b"stss", b"elst"):
            count = _u(data, body + 4, 4)
            fields.append(Field(body + 4, 4, "big", f"{label}.entry_count"))
            width = {b"stts": 8, b"ctts": 8, b"stsc": 12, b"stco": 4, b"co64": 8, b"stss": 4,
                     b"elst": 16 if version == 1 else 12}[kind]
            for i in range(min(count, 4)):
                entry = body + 8 + i * width
                if kind in (b"stts", b"ctts"):
                    fields += [Field(entry, 4, "big", f"{label}.sample_count"),
                               Field(entry + 4, 4, "big", f"{label}.delta", timestamp=True)]
                elif kind == b"elst":
                    wide = width // 2 - 2 if version == 1 else 4
                    fields += [Field(entry, wide, "big", "elst.segment_duration", timestamp=True),
                               Field(entry + wide, wide, "big", "elst.media_time", timestamp=True)]
                else:
                    fields.append(Field(entry, min(width, 8), "big", f"{label}.entry"))
        elif kind == b"stsz":
            fields += [Field(body + 4, 4, "big", "stsz.sample_size"), Field(body + 8, 4, "big", "stsz.sample_count")]
            for i in range(min(_u(data, body + 8, 4), 4)):
                fields.append(Field(body + 12 + 4 * i, 4, "big", "stsz.entry"))
        pos += size


def _riff(data: bytes, start: int, end: int, spans: list, fields: list) -> None:
    pos = start
    while pos + 8 <= end:
        cid, size = data[pos:pos + 4], _u(data, pos + 4, 4, "little")
        stop = min(pos + 8 + size + (size & 1), end)
        label = cid.decode("latin-1")
        spans.append(Span(pos, stop, label))
        fields.append(Field(pos + 4, 4, "little", f"{label}.size"))
        body = pos + 8
        if cid in (b"RIFF", b"LIST", b"RF64"):
            _riff(data, body + 4, stop, spans, fields)
        elif cid == b"fmt ":
            fields += [Field(body + 2, 2, "little", "fmt.channels"), Field(body + 4, 4, "little", "fmt.sample_rate"),
                       Field(body + 8, 4, "little", "fmt.byte_rate"), Field(body + 12, 2, "little", "fmt.block_align"),
                       Field(body + 14, 2, "little", "fmt.bits")]
        elif cid == b"avih":
            fields += [Field(body, 4, "little", "avih.us_per_frame", timestamp=True),
                       Field(body + 16, 4, "little", "avih.total_frames"), Field(body + 24, 4, "little", "avih.streams"),
                       Field(body + 32, 4, "little", "avih.width"), Field(body + 36, 4, "little", "avih.height")]
        elif cid == b"strh":
            fields += [Field(body + 20, 4, "little", "strh.scale", timestamp=True),
                       Field(body + 24, 4, "little", "strh.rate", timestamp=True),
                       Field(body + 28, 4, "little", "strh.start", timestamp=True),
                       Field(body + 32, 4, "little", "strh.length"), Field(body + 36, 4, "little", "strh.buffer")]
        elif cid == b"strf":
            if _u(data, body, 4, "little") == 40:  # BITMAPINFOHEADER
                fields += [Field(body + 4, 4, "little", "strf.width"), Field(body + 8, 4, "little", "strf.height"),
                           Field(body + 14, 2, "little", "strf.bit_count")]
            else:  # WAVEFORMATEX
                fields += [Field(body + 2, 2, "little", "strf.channels"), Field(body + 4, 4, "little", "strf.sample_rate"),
                           Field(body + 12, 2, "little", "strf.block_align")]
        elif cid == b"VP8X":
            fields += [Field(body + 4, 3, "little", "VP8X.canvas_width"), Field(body + 7, 3, "little", "VP8X.canvas_height")]
        elif cid == b"ANMF":
            fields += [Field(body + 6, 3, "little", "ANMF.width"), Field(body + 9, 3, "little", "ANMF.height"),
                       Field(body + 12, 3, "little", "ANMF.duration", timestamp=True)]
            _riff(data, body + 16, stop, spans, fields)
        elif cid == b"VP8 ":
            fields += [Field(body + 6, 2, "little", "VP8.width"), Field(body + 8, 2, "little", "VP8.height")]
        elif cid == b"VP8L":
            fields.append(Field(body + 1, 4, "little", "VP8L.size_bits"))
        elif cid == b"ds64":
            fields += [Field(body, 8, "little", "ds64.riff_size"), Field(body + 8, 8, "little", "ds64.data_size"),
                       Field(body + 16, 8, "little", "ds64.sample_count")]
        if stop <= pos:
            return
        pos = stop


def _png(data: bytes, spans: list, fields: list) -> None:
    pos = 8
    while pos + 12 <= len(data):
        length, kind = _u(data, pos, 4), data[pos + 4:pos + 8]
        stop = min(pos + 12 + length, len(data))
        label = kind.decode("latin-1")
        spans.append(Span(pos, stop, label))
        fields.append(Field(pos, 4, "big", f"{label}.length"))
        body = pos + 8
        if kind == b"IHDR":
            fields += [Field(body, 4, "big", "IHDR.width"), Field(body + 4, 4, "big", "IHDR.height"),
                       Field(body + 8, 1, "big", "IHDR.bit_depth"), Field(body + 9, 1, "big", "IHDR.color_type"),
                       Field(body + 12, 1, "big", "IHDR.interlace")]
        elif kind == b"acTL":
            fields += [Field(body, 4, "big", "acTL.num_frames"), Field(body + 4, 4, "big", "acTL.num_plays")]
        elif kind == b"fcTL":
            fields += [Field(body + 4, 4, "big", "fcTL.width"), Field(body + 8, 4, "big", "fcTL.height"),
                       Field(body + 12, 4, "big", "fcTL.x"), Field(body + 20, 2, "big", "fcTL.delay_num", timestamp=True),
                       Field(body + 22, 2, "big", "fcTL.delay_den", timestamp=True)]
        pos = stop


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every PNG chunk CRC, so that a mutation reaches the decoder instead of the CRC check."""
    out = bytearray(data)
    pos = 8
    while pos + 12 <= len(out):
        length = _u(out, pos, 4)
        if pos + 12 + length > len(out):
            break
        crc = zlib.crc32(bytes(out[pos + 4:pos + 8 + length])) & 0xFFFFFFFF
        out[pos + 8 + length:pos + 12 + length] = crc.to_bytes(4, "big")
        pos += 12 + length
    return bytes(out)


def _gif(data: bytes, spans: list, fields: list) -> None:
    fields += [Field(6, 2, "little", "gif.screen_width"), Field(8, 2, "little", "gif.screen_height"),
               Field(10, 1, "little", "gif.flags")]
    pos = 13
    if len(data) > 10 and data[10] & 0x80:
        pos += 3 * (2 << (data[10] & 7))
    spans.append(Span(0, min(pos, len(data)), "header"))

    def sub_blocks(p: int) -> int:
        while p < len(data) and data[p]:
            p += 1 + data[p]
        return p + 1

    while pos < len(data):
        kind = data[pos]
        start = pos
        if kind == 0x21 and pos + 2 < len(data):
            if data[pos + 1] == 0xF9:
                fields.append(Field(pos + 4, 2, "little", "gce.delay", timestamp=True))
            pos = sub_blocks(pos + 2)
            spans.append(Span(start, min(pos, len(data)), "extension"))
        elif kind == 0x2C and pos + 10 <= len(data):
            fields += [Field(pos + 1, 2, "little", "frame.left"), Field(pos + 5, 2, "little", "frame.width"),
                       Field(pos + 7, 2, "little", "frame.height"), Field(pos + 9, 1, "little", "frame.flags")]
            flags = data[pos + 9]
            pos += 10 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
            pos = sub_blocks(pos + 1)
            spans.append(Span(start, min(pos, len(data)), "frame"))
        else:
            spans.append(Span(pos, min(pos + 1, len(data)), "trailer"))
            return


def _jpeg(data: bytes, spans: list, fields: list) -> None:
    pos = 2
    spans.append(Span(0, 2, "SOI"))
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xD9:
            spans.append(Span(pos, pos + 2, "EOI"))
            return
        length = _u(data, pos + 2, 2)
        stop = min(pos + 2 + length, len(data))
        if marker in (0xC0, 0xC1, 0xC2, 0xC3):
            fields += [Field(pos + 5, 2, "big", "SOF.height"), Field(pos + 7, 2, "big", "SOF.width"),
                       Field(pos + 9, 1, "big", "SOF.components"), Field(pos + 4, 1, "big", "SOF.precision")]
        fields.append(Field(pos + 2, 2, "big", f"FF{marker:02X}.length"))
        if marker == 0xDA:  # scan data runs to the next marker that is not a stuffed byte or restart
            scan = stop
            while scan + 1 < len(data) and not (data[scan] == 0xFF and data[scan + 1] not in (0x00, *range(0xD0, 0xD8))):
                scan += 1
            stop = scan
        spans.append(Span(pos, stop, f"FF{marker:02X}"))
        if stop <= pos:
            return
        pos = stop


def _tiff(data: bytes, spans: list, fields: list) -> None:
    order = "little" if data[:2] == b"II" else "big"
    spans.append(Span(0, 8, "header"))
    fields.append(Field(4, 4, order, "tiff.first_ifd"))
    ifd, seen = _u(data, 4, 4, order), set()
    while 8 <= ifd < len(data) and ifd not in seen and len(seen) < 16:
        seen.add(ifd)
        count = _u(data, ifd, 2, order)
        end = ifd + 2 + 12 * count
        spans.append(Span(ifd, min(end + 4, len(data)), "ifd"))
        for i in range(min(count, 64)):
            entry = ifd + 2 + 12 * i
            tag, typ, n = _u(data, entry, 2, order), _u(data, entry + 2, 2, order), _u(data, entry + 4, 4, order)
            size = 2 if typ == 3 else 4
            if tag in (256, 257, 258, 273, 277, 278, 279, 259, 262, 284, 322, 323):
                fields.append(Field(entry + 8, size, order, f"tag{tag}", ))
                fields.append(Field(entry + 4, 4, order, f"tag{tag}.count"))
            if tag == 273 and n == 1:
                strip = _u(data, entry + 8, size, order)
                spans.append(Span(strip, min(strip + 64, len(data)), "strip"))
        fields.append(Field(end, 4, order, "ifd.next"))
        ifd = _u(data, end, 4, order)


def _bmp(data: bytes, spans: list, fields: list) -> None:
    header = _u(data, 14, 4, "little")
    offset = _u(data, 10, 4, "little")
    spans += [Span(0, 14, "file header"), Span(14, min(14 + header, len(data)), "info header"),
              Span(min(offset, len(data)), len(data), "pixels")]
    fields += [Field(2, 4, "little", "bmp.file_size"), Field(10, 4, "little", "bmp.pixel_offset"),
               Field(14, 4, "little", "bmp.header_size"), Field(18, 4, "little", "bmp.width"),
               Field(22, 4, "little", "bmp.height"), Field(28, 2, "little", "bmp.bit_count"),
               Field(30, 4, "little", "bmp.compression"), Field(46, 4, "little", "bmp.colors_used")]


_EBML_MASTERS = {0x1A45DFA3, 0x18538067, 0x114D9B74, 0x4DBB, 0x1549A966, 0x1654AE6B, 0xAE, 0xE0, 0xE1, 0x1F43B675,
                 0xA0, 0x1C53BB6B, 0xBB, 0xB7, 0x1254C367, 0x7373, 0x63C0, 0x67C8, 0x1043A770, 0x45B9, 0xB6,
                 0x1941A469, 0x61A7, 0x6D80, 0x6240, 0x5034, 0x5035}
_EBML_FIELDS = {0xB0: "PixelWidth", 0xBA: "PixelHeight", 0x54B0: "DisplayWidth", 0x54BA: "DisplayHeight",
                0xB5: "SamplingFrequency", 0x9F: "Channels", 0x6264: "BitDepth", 0x2AD7B1: "TimestampScale",
                0x4489: "Duration", 0xE7: "ClusterTimestamp", 0x23E383: "DefaultDuration", 0xD7: "TrackNumber",
                0x83: "TrackType", 0x56AA: "CodecDelay", 0x56BB: "SeekPreRoll", 0xB3: "CueTime", 0xF1: "CueClusterPosition",
                0x53AC: "SeekPosition", 0x9B: "BlockDuration"}
_EBML_TIMES = {"Duration", "ClusterTimestamp", "DefaultDuration", "CueTime", "TimestampScale", "BlockDuration",
               "CodecDelay"}


def _vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int] | None:
    if pos >= len(data) or data[pos] == 0:
        return None
    length = 8 - data[pos].bit_length() + 1
    if pos + length > len(data):
        return None
    value = int.from_bytes(data[pos:pos + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    return value, length


def _ebml(data: bytes, start: int, end: int, spans: list, fields: list, depth: int = 0) -> None:
    pos = start
    while pos < end and len(spans) < 4000:
        ident = _vint(data, pos, True)
        if ident is None or ident[1] > 4:
            return
        size = _vint(data, pos + ident[1], False)
        if size is None:
            return
        body = pos + ident[1] + size[1]
        unknown = size[0] == (1 << (7 * size[1])) - 1
        stop = end if unknown else min(body + size[0], end)
        name = _EBML_FIELDS.get(ident[0], f"{ident[0]:X}")
        spans.append(Span(pos, stop, name))
        fields.append(Field(pos + ident[1], size[1], "big", f"{name}.size"))
        if ident[0] in _EBML_MASTERS and depth < 8:
            _ebml(data, body, stop, spans, fields, depth + 1)
        elif ident[0] in _EBML_FIELDS and 0 < stop - body <= 8:
            fields.append(Field(body, stop - body, "big", name, timestamp=name in _EBML_TIMES))
        elif ident[0] in (0xA3, 0xA1):  # SimpleBlock / Block: track vint, then a signed 16-bit timestamp
            track = _vint(data, body, False)
            if track is not None:
                fields.append(Field(body + track[1], 2, "big", "Block.timestamp", timestamp=True))
        if stop <= pos:
            return
        pos = stop


def _ogg(data: bytes, spans: list, fields: list) -> None:
    pos = 0
    while pos + 27 <= len(data) and data[pos:pos + 4] == b"OggS":
        segments = data[pos + 26]
        length = 27 + segments + sum(data[pos + 27:pos + 27 + segments])
        spans.append(Span(pos, min(pos + length, len(data)), "page"))
        fields += [Field(pos + 5, 1, "little", "page.flags"), Field(pos + 6, 8, "little", "page.granule", timestamp=True),
                   Field(pos + 14, 4, "little", "page.serial"), Field(pos + 18, 4, "little", "page.sequence"),
                   Field(pos + 26, 1, "little", "page.segments")]
        if pos + 27 < len(data):
            fields.append(Field(pos + 27, 1, "little", "page.lacing"))
        pos += length


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def fix_ogg_crcs(data: bytes) -> bytes:
    """Recompute the CRC of every whole Ogg page (from the first ``OggS``), so that mutations reach the parser."""
    out = bytearray(data)
    pos = out.find(b"OggS")
    while 0 <= pos and pos + 27 <= len(out):
        segments = out[pos + 26]
        length = 27 + segments + sum(out[pos + 27:pos + 27 + segments])
        if pos + length > len(out):
            break
        out[pos + 22:pos + 26] = b"\0\0\0\0"
        crc = 0
        for byte in out[pos:pos + length]:
            crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[((crc >> 24) ^ byte) & 0xFF]
        out[pos + 22:pos + 26] = crc.to_bytes(4, "little")
        pos = out.find(b"OggS", pos + length)
    return bytes(out)


def _flac(data: bytes, spans: list, fields: list) -> None:
    spans.append(Span(0, 4, "fLaC"))
    pos = 4
    while pos + 4 <= len(data):
        header, length = data[pos], _u(data, pos + 1, 3)
        stop = min(pos + 4 + length, len(data))
        spans.append(Span(pos, stop, f"block{header & 0x7F}"))
        fields.append(Field(pos + 1, 3, "big", "block.length"))
        if header & 0x7F == 0:  # STREAMINFO: bit fields from byte 10 of the block body
            bit = (pos + 4 + 10) * 8
            fields += [Field(pos + 4, 2, "big", "streaminfo.min_block"), Field(pos + 6, 2, "big", "streaminfo.max_block"),
                       Field(bit, 0, "big", "streaminfo.sample_rate", bits=20),
                       Field(bit + 20, 0, "big", "streaminfo.channels", bits=3),
                       Field(bit + 23, 0, "big", "streaminfo.bits_per_sample", bits=5),
                       Field(bit + 28, 0, "big", "streaminfo.total_samples", bits=36, timestamp=True)]
        pos = stop
        if header & 0x80:
            break
    frame = pos
    while True:  # audio frames: from one sync code to the next
        nxt = data.find(b"\xff\xf8", frame + 2)
        spans.append(Span(frame, nxt if nxt > 0 else len(data), "frame"))
        if nxt < 0 or len(spans) > 400:
            return
        frame = nxt


_MP3_BITRATES = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]
_MP3_RATES = [44_100, 48_000, 32_000]


def _mp3(data: bytes, spans: list, fields: list) -> None:
    pos = 0
    if data[:3] == b"ID3":
        size = sum((data[6 + i] & 0x7F) << (7 * (3 - i)) for i in range(4)) + 10
        spans.append(Span(0, min(size, len(data)), "ID3"))
        fields.append(Field(6, 4, "big", "ID3.size"))
        pos = size
    while pos + 4 <= len(data) and len(spans) < 400:
        if data[pos] != 0xFF or (data[pos + 1] & 0xE0) != 0xE0:
            nxt = data.find(b"\xff", pos + 1)
            if nxt < 0:
                return
            pos = nxt
            continue
        b2 = data[pos + 2]
        rate_index, bitrate_index = (b2 >> 2) & 3, b2 >> 4
        if rate_index == 3 or bitrate_index in (0, 15):
            pos += 1
            continue
        length = 144_000 * _MP3_BITRATES[bitrate_index] // _MP3_RATES[rate_index] + ((b2 >> 1) & 1)
        spans.append(Span(pos, min(pos + length, len(data)), "frame"))
        fields.append(Field(pos + 2, 1, "big", "frame.rate_bits"))
        for tag in (b"Xing", b"Info"):
            at = data.find(tag, pos, pos + length)
            if at > 0:
                fields += [Field(at + 8, 4, "big", "xing.frames"), Field(at + 12, 4, "big", "xing.bytes")]
        pos += max(length, 1)


def structure(data: bytes) -> tuple[str, list[Span], list[Field]]:
    """Parse what can be parsed of a file: its format name, structural spans and header fields.

    Parameters
    ----------
    data : bytes
        A whole file.

    Returns
    -------
    (format, spans, fields)
        ``format`` is ``"bmff"``, ``"riff"``, ``"ebml"``, ``"png"``, ``"gif"``, ``"jpeg"``,
        ``"tiff"``, ``"bmp"``, ``"ogg"``, ``"flac"``, ``"mp3"`` or ``"raw"`` (nothing known: no spans).
    """
    spans: list[Span] = []
    fields: list[Field] = []
    head = data[:16]
    try:
        if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
            fmt = "bmff"
            _bmff(data, 0, len(data), spans, fields)
        elif head[:4] in (b"RIFF", b"RF64"):
            fmt = "riff"
            _riff(data, 0, len(data), spans, fields)
        elif head[:4] == b"\x1aE\xdf\xa3":
            fmt = "ebml"
            _ebml(data, 0, len(data), spans, fields)
        elif head.startswith(b"\x89PNG"):
            fmt = "png"
            _png(data, spans, fields)
        elif head[:3] == b"GIF":
            fmt = "gif"
            _gif(data, spans, fields)
        elif head[:2] == b"\xff\xd8":
            fmt = "jpeg"
            _jpeg(data, spans, fields)
        elif head[:4] in (b"II*\x00", b"MM\x00*"):
            fmt = "tiff"
            _tiff(data, spans, fields)
        elif head[:2] == b"BM":
            fmt = "bmp"
            _bmp(data, spans, fields)
        elif head[:4] == b"OggS":
            fmt = "ogg"
            _ogg(data, spans, fields)
        elif head[:4] == b"fLaC":
            fmt = "flac"
            _flac(data, spans, fields)
        elif head[:3] == b"ID3" or (len(head) > 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
            fmt = "mp3"
            _mp3(data, spans, fields)
        else:
            fmt = "raw"
    except (IndexError, ValueError):  # a parser of already-damaged bytes: keep what was found
        fmt = "raw" if not spans else fmt
    n = len(data)
    spans = [s for s in spans if 0 <= s.start < s.end <= n]
    fields = [f for f in fields if f.bits or (0 <= f.offset and f.offset + f.size <= n and f.size > 0)]
    fields = [f for f in fields if not f.bits or f.offset + f.bits <= 8 * n]
    return fmt, spans, fields


# --------------------------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------------------------


def _boundaries(data: bytes, spans: list[Span]) -> list[int]:
    points = sorted({s.start for s in spans} | {s.end for s in spans} | {0, len(data)})
    return points


def _extremes(width_bits: int, current: int, timestamp: bool, rng: np.random.Generator) -> list[int]:
    top = (1 << width_bits) - 1
    values = [0, 1, top, top - 1, top >> 1, (top >> 1) + 1, 2, 255 & top, min(top, 100_000), min(top, 10 ** 9),
              min(top, current * 1000 + 7), int(rng.integers(0, top, dtype=np.uint64, endpoint=True))]
    if timestamp and current > 0:
        values += [current // 2, current - 1, (top + 1 - current) & top]  # backwards, and negative as signed
    return [v for v in values if v != current] or [top]


def _set_bits(data: bytearray, bit: int, bits: int, value: int) -> None:
    first, last = bit // 8, (bit + bits - 1) // 8
    span = last - first + 1
    shift = span * 8 - (bit % 8) - bits
    word = int.from_bytes(data[first:last + 1], "big")
    mask = ((1 << bits) - 1) << shift
    word = (word & ~mask) | ((value << shift) & mask)
    data[first:last + 1] = word.to_bytes(span, "big")


def _get_bits(data: bytes, bit: int, bits: int) -> int:
    first, last = bit // 8, (bit + bits - 1) // 8
    span = last - first + 1
    word = int.from_bytes(data[first:last + 1], "big")
    return (word >> (span * 8 - (bit % 8) - bits)) & ((1 << bits) - 1)


def _pick(values: list[int], rng: np.random.Generator) -> int:
    """One of ``values`` (Python ints of any size: numpy's choice would turn 64-bit ones into floats)."""
    return values[int(rng.integers(0, len(values)))]


def m_bitflip(data, rng, spans, fields, other):
    """Flip 1 to 128 random bits, half the time within the first 2 KB (the headers)."""
    out = bytearray(data)
    n = int(rng.choice([1, 2, 4, 8, 32, 128]))
    near_head = rng.random() < 0.5
    top = min(len(out), 2048) if near_head else len(out)
    for _ in range(n):
        pos = int(rng.integers(0, top))
        out[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(out), f"{n} bits flipped in the first {top} bytes"


def m_bytes(data, rng, spans, fields, other):
    """Set 1 to 50 random bytes to boundary values (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE)."""
    out = bytearray(data)
    n = int(rng.choice([1, 3, 10, 50]))
    for _ in range(n):
        pos = int(rng.integers(0, len(out)))
        out[pos] = int(rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE]))
    return bytes(out), f"{n} bytes set to boundary values"


def m_truncate(data, rng, spans, fields, other):
    """Cut the file at a structural boundary (give or take a few bytes)."""
    points = [p for p in _boundaries(data, spans) if 0 < p < len(data)] or [len(data) // 2]
    cut = int(rng.choice(points)) + int(rng.choice([0, 0, 0, -1, 1, -4, 4, 8]))
    cut = min(max(cut, 1), len(data) - 1)
    return data[:cut], f"cut at byte {cut} of {len(data)}"


def m_delete(data, rng, spans, fields, other):
    """Delete one structural unit (box, chunk, element, page, frame...)."""
    if not spans:
        return m_truncate(data, rng, spans, fields, other)
    inner = [s for s in spans if s.end - s.start < len(data)] or spans
    s = inner[int(rng.integers(0, len(inner)))]
    return data[:s.start] + data[s.end:], f"{s.label} [{s.start}:{s.end}] deleted"


def m_duplicate(data, rng, spans, fields, other):
    """Insert copies (1 to 200) of a structural unit after it or at another boundary."""
    if not spans:
        return m_insert(data, rng, spans, fields, other)
    inner = [s for s in spans if s.end - s.start < len(data)] or spans
    s = inner[int(rng.integers(0, len(inner)))]
    times = int(rng.choice([1, 1, 2, 16, 200]))
    chunk = data[s.start:s.end] * times
    if len(chunk) > 4_000_000:
        times = max(1, 4_000_000 // max(1, s.end - s.start))
        chunk = data[s.start:s.end] * times
    at = s.end if rng.random() < 0.6 else int(rng.choice(_boundaries(data, spans)))
    return data[:at] + chunk + data[at:], f"{s.label} [{s.start}:{s.end}] x{times} inserted at {at}"


def m_move(data, rng, spans, fields, other):
    """Move a structural unit to another boundary."""
    if len(spans) < 2:
        return m_bitflip(data, rng, spans, fields, other)
    s = spans[int(rng.integers(0, len(spans)))]
    rest = data[:s.start] + data[s.end:]
    points = [p for p in _boundaries(data, spans) if p <= len(rest)]
    at = int(rng.choice(points))
    return rest[:at] + data[s.start:s.end] + rest[at:], f"{s.label} [{s.start}:{s.end}] moved to {at}"


def m_extreme(data, rng, spans, fields, other):
    """Set one to three header fields to extremes (0, 1, all ones, half, huge, random, backwards)."""
    if not fields:
        return m_bytes(data, rng, spans, fields, other)
    out = bytearray(data)
    k = int(rng.choice([1, 1, 1, 2, 3]))
    notes = []
    for _ in range(k):
        f = fields[int(rng.integers(0, len(fields)))]
        if f.bits:
            current = _get_bits(out, f.offset, f.bits)
            value = _pick(_extremes(f.bits, current, f.timestamp, rng), rng)
            _set_bits(out, f.offset, f.bits, value)
        else:
            current = int.from_bytes(out[f.offset:f.offset + f.size], f.byteorder)
            value = _pick(_extremes(8 * f.size, current, f.timestamp, rng), rng)
            out[f.offset:f.offset + f.size] = value.to_bytes(f.size, f.byteorder)
        notes.append(f"{f.label} {current} -> {value}")
    return bytes(out), "; ".join(notes)


def m_backwards(data, rng, spans, fields, other):
    """Set a later timestamp or duration field to 0, 1 or all ones: time going backwards."""
    times = [f for f in fields if f.timestamp and not f.bits]
    if len(times) < 2:
        return m_extreme(data, rng, spans, fields, other)
    out = bytearray(data)
    later = times[int(rng.integers(len(times) // 2, len(times)))]
    value = _pick([0, 1, (1 << (8 * later.size)) - 1], rng)
    out[later.offset:later.offset + later.size] = value.to_bytes(later.size, later.byteorder)
    return bytes(out), f"{later.label} at {later.offset} set to {value} (time going backwards)"


def m_insert(data, rng, spans, fields, other):
    """Insert 1 to 4096 random or repeated bytes at a boundary or anywhere."""
    points = _boundaries(data, spans)
    at = int(rng.choice(points)) if rng.random() < 0.7 else int(rng.integers(0, len(data) + 1))
    n = int(rng.choice([1, 4, 64, 4096]))
    filler = rng.integers(0, 256, n, dtype=np.uint8).tobytes() if rng.random() < 0.5 else bytes([int(rng.integers(0, 256))]) * n
    return data[:at] + filler + data[at:], f"{n} bytes inserted at {at}"


def m_zero(data, rng, spans, fields, other):
    """Zero a structural unit's body (its first 8 bytes kept)."""
    if not spans:
        return m_bytes(data, rng, spans, fields, other)
    s = spans[int(rng.integers(0, len(spans)))]
    head = min(s.end - s.start, 8)
    return data[:s.start + head] + bytes(s.end - s.start - head) + data[s.end:], f"{s.label} [{s.start}:{s.end}] body zeroed"


def m_concat(data, rng, spans, fields, other):
    """Join with a file of another format: appended, prepended, or spliced at a boundary."""
    how = int(rng.integers(0, 3))
    if how == 0:
        return data + other, "another format appended"
    if how == 1:
        return other + data, "another format prepended"
    cut = int(rng.choice(_boundaries(data, spans)))
    other_cut = int(rng.integers(0, max(1, len(other))))
    return data[:cut] + other[other_cut:], f"head to {cut}, then another format from {other_cut}"


# name: (function, weight). A mutator takes (bytes, numpy Generator, spans, fields, bytes of a file of
# another format) and returns (mutated bytes, a description of what it did).
MUTATORS = {
    "bitflip": (m_bitflip, 4), "bytes": (m_bytes, 2), "truncate": (m_truncate, 3), "delete": (m_delete, 2),
    "duplicate": (m_duplicate, 2), "move": (m_move, 1), "extreme": (m_extreme, 5), "backwards": (m_backwards, 2),
    "insert": (m_insert, 1), "zero": (m_zero, 1), "concat": (m_concat, 2),
}


def make_case(campaign: int, index: int, seeds: dict[str, bytes]) -> tuple[Case, bytes]:
    """Build case ``index`` of campaign ``campaign`` from ``seeds`` (see :func:`seed_files`).

    Seeds are taken in turn (case ``i`` mutates seed ``i mod len(seeds)``) so that every format gets
    its share; the mutation and its parameters come from ``numpy.random.default_rng([campaign, index])``.

    Parameters
    ----------
    campaign : int
        Campaign seed.
    index : int
        Case number, from 0.
    seeds : dict[str, bytes]
        Seed files by name.

    Returns
    -------
    (Case, bytes)
        The case's description and its file's bytes.
    """
    names = sorted(seeds)
    seed_name = names[index % len(names)]
    rng = np.random.default_rng([campaign, index])
    mutator_names = sorted(MUTATORS)
    weights = np.array([MUTATORS[m][1] for m in mutator_names], dtype=float)
    mutator = mutator_names[int(rng.choice(len(mutator_names), p=weights / weights.sum()))]
    data = seeds[seed_name]
    if not data:  # an empty seed (cases/empty_zero_bytes.mp4) can only grow
        mutator = "insert"
    fmt, spans, fields = structure(data)
    others = [n for n in names if n != seed_name and structure(seeds[n][:16])[0] != fmt and seeds[n]]
    other = seeds[others[int(rng.integers(0, len(others)))]] if others else b""
    out, detail = MUTATORS[mutator][0](data, rng, spans, fields, other)
    if fmt in ("png", "ogg") and rng.random() < 0.75:  # mostly get past the checksum to the parser
        out = fix_png_crcs(out) if fmt == "png" else fix_ogg_crcs(out)
        detail += " (CRCs fixed)"
    return Case(campaign, index, seed_name, mutator, f"{fmt}: {detail}"), out


# --------------------------------------------------------------------------------------------
# Bombs: small files that claim (or hold) far more than the limits allow
# --------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + (zlib.crc32(kind + body) & 0xFFFFFFFF).to_bytes(4, "big")


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` (greyscale), with a little real deflate data."""
    rows = zlib.compress(b"\x00" * (1 + min(width, 4096)) * 16, 9)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b""))


def png_large_zeros(width: int, height: int) -> bytes:
    """A real greyscale PNG of ``width`` x ``height`` black pixels: deflate makes it ~1000x smaller."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b""))


def apng_claiming_frames(frames: int) -> bytes:
    """An animated PNG whose acTL claims ``frames`` frames (two are present)."""
    png = png_large_zeros(16, 16)
    ihdr_end = 8 + 25
    fctl = _png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 16, 16, 0, 0, 1, 10, 0, 0))
    return png[:ihdr_end] + _png_chunk(b"acTL", struct.pack(">II", frames, 0)) + fctl + png[ihdr_end:]


def gif_claiming(width: int, height: int) -> bytes:
    """A GIF whose logical screen and only frame claim ``width`` x ``height``."""
    lsd = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x4c\x01\x00"
    return b"GIF89a" + lsd + frame + b"\x3b"


def gif_many_frames(frames: int) -> bytes:
    """A 1x1 GIF of ``frames`` frames of 20 ms (about 25 bytes each)."""
    lsd = struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    gce = b"\x21\xf9\x04\x00\x02\x00\x00\x00"
    frame = gce + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x4c\x01\x00"
    return b"GIF89a" + lsd + frame * frames + b"\x3b"


def wav_claiming(data_bytes: int, rf64: bool = False) -> bytes:
    """A WAV (or RF64) whose header claims ``data_bytes`` of 8 kHz 8-bit mono audio; one second is present."""
    fmt = _riff_chunk(b"fmt ", struct.pack("<HHIIHH", 1, 1, 8000, 8000, 1, 8))
    audio = bytes([128 + int(60 * np.sin(i / 3)) for i in range(8000)])
    if rf64:
        ds64 = _riff_chunk(b"ds64", struct.pack("<QQQI", data_bytes + 100, data_bytes, data_bytes, 0))
        body = b"WAVE" + ds64 + fmt + b"data" + b"\xff\xff\xff\xff" + audio
        return b"RF64" + b"\xff\xff\xff\xff" + body
    body = b"WAVE" + fmt + b"data" + min(data_bytes, 0xFFFFFFFF).to_bytes(4, "little") + audio
    return b"RIFF" + min(len(body) + data_bytes, 0xFFFFFFFF).to_bytes(4, "little") + body


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + len(body).to_bytes(4, "little") + body + (b"\x00" if len(body) & 1 else b"")


def mp4_claiming_frames(seed_mp4: bytes, frames: int) -> bytes:
    """The seed MP4 with its video track's stts/stsz claiming ``frames`` samples (the data holds 10).

    Its duration stays that of the seed (the time scale is raised with the count), so only the
    frame count is extreme.
    """
    out = bytearray(seed_mp4)
    _, spans, fields = structure(seed_mp4)
    by_label: dict[str, list[Field]] = {}
    for f in fields:
        by_label.setdefault(f.label, []).append(f)
    first = {label: group[0] for label, group in by_label.items()}
    for label, value in (("stts.sample_count", frames), ("stsz.sample_count", frames)):
        f = first.get(label)
        if f is not None:
            out[f.offset:f.offset + 4] = value.to_bytes(4, "big")
    return bytes(out)


def mkv_many_streams(streams: int) -> bytes:
    """A Matroska file of ``streams`` audio streams of 20 ms of PCM each."""
    import av

    buffer = io.BytesIO()
    out = av.open(buffer, mode="w", format="matroska", options={"fflags": "+bitexact"})
    handles = [out.add_stream("pcm_s16le", rate=8000, layout="mono") for _ in range(streams)]
    for i, stream in enumerate(handles):
        frame = av.AudioFrame.from_ndarray(np.full((1, 160), i, np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        frame.pts = 0
        for packet in stream.encode(frame):
            out.mux(packet)
    for stream in handles:
        for packet in stream.encode(None):
            out.mux(packet)
    out.close()
    return buffer.getvalue()


def bombs(seeds: dict[str, bytes]) -> dict[str, bytes]:
    """The decompression and resource bombs: name -> bytes. Every one must be refused ("over limits").

    - ``png_100000x100000.png``, ``gif_65535x65535.gif``: headers claiming ~10^10 and ~4x10^9 pixels;
    - ``png_20000x20000_zeros.png``: a real 400-megapixel image that deflates from ~400 KB;
    - ``gif_1000000_frames.gif``: a real animation of a million 1x1 frames (~25 MB);
    - ``apng_claims_1000000_frames.png``: an animated PNG that claims a million frames;
    - ``mp4_claims_1e9_frames.mp4``: an MP4 whose video track claims 10^9 samples;
    - ``wav_claims_4gb.wav``, ``rf64_claims_1tb.wav``: WAVs whose headers claim 4 GB and 1 TB;
    - ``mkv_1000_streams.mkv``: a Matroska file of 1000 tiny audio streams.
    """
    return {
        "png_100000x100000.png": png_claiming(100_000, 100_000),
        "gif_65535x65535.gif": gif_claiming(65_535, 65_535),
        "png_20000x20000_zeros.png": png_large_zeros(20_000, 20_000),
        "gif_1000000_frames.gif": gif_many_frames(1_000_000),
        "apng_claims_1000000_frames.png": apng_claiming_frames(1_000_000),
        "mp4_claims_1e9_frames.mp4": mp4_claiming_frames(seeds["h264_aac.mp4"], 10 ** 9),
        "wav_claims_4gb.wav": wav_claiming(0xFFFFFFF0),
        "rf64_claims_1tb.wav": wav_claiming(1 << 40, rf64=True),
        "mkv_1000_streams.mkv": mkv_many_streams(1000),
    }
