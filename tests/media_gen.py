"""Write small test media with PyAV and Pillow: frames whose grey level tells their index, sines."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

TONE_HZ = 440.0
TONE_AMPLITUDE = 0.5


def frame_level(i: int) -> int:
    """Grey level of frame ``i`` (distinct after lossy coding for i < 40)."""
    return 20 + 5 * (i % 40)


def level_to_index(frames: np.ndarray) -> list[int]:
    """Recover frame indices from decoded frames ``(T, H, W, 3)`` by their mean grey level."""
    return [int(round((float(f.mean()) - 20) / 5)) for f in frames]


def tone(n: int, rate: int, channels: int = 1) -> np.ndarray:
    """A 440 Hz sine of amplitude 0.5, identical in every channel, float32 ``(channels, n)``."""
    t = np.arange(n) / rate
    x = (TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
    return np.repeat(x[None], channels, axis=0)


def write_av(
    path: Path,
    fmt: str | None = None,
    vcodec: str | None = "libx264",
    size: tuple[int, int] = (64, 48),
    fps: int = 10,
    seconds: float = 2.0,
    times: list[float] | None = None,
    acodec: str | None = "aac",
    rate: int = 16_000,
    layout: str = "mono",
    audio_seconds: float | None = None,
    rotation: int | None = None,
    image_fn=None,
) -> Path:
    """Encode a test file. ``times`` gives each frame's pts in seconds (variable frame rate)."""
    path = Path(path)
    out = av.open(str(path), mode="w", format=fmt)
    vstream = astream = None
    if vcodec:
        vstream = out.add_stream(vcodec, rate=fps)
        vstream.width, vstream.height = size
        vstream.pix_fmt = "yuv420p"
        if times is not None:
            vstream.time_base = Fraction(1, 1000)
            vstream.codec_context.time_base = Fraction(1, 1000)
        if vcodec == "libx264":
            vstream.options = {"preset": "ultrafast", "bf": "0"}
        if rotation is not None:
            vstream.set_display_rotation(rotation)
    if acodec:
        astream = out.add_stream(acodec, rate=rate, layout=layout)
        if acodec == "vorbis":
            astream.codec_context.options = {"strict": "experimental"}
    if vstream is not None:
        frame_times = times if times is not None else [i / fps for i in range(int(round(seconds * fps)))]
        for i, t in enumerate(frame_times):
            if image_fn is not None:
                img = image_fn(i)
            else:
                img = np.full((size[1], size[0], 3), frame_level(i), np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if times is not None:
                frame.pts = int(round(t * 1000))
                frame.time_base = Fraction(1, 1000)
            for packet in vstream.encode(frame):
                out.mux(packet)
        for packet in vstream.encode(None):
            out.mux(packet)
    if astream is not None:
        n_total = int(round((audio_seconds if audio_seconds is not None else seconds) * rate))
        channels = astream.codec_context.layout.nb_channels
        data = tone(n_total, rate, channels)
        fmt_name = astream.codec_context.format.name
        chunk = astream.codec_context.frame_size or 1024
        pts = 0
        for start in range(0, n_total, chunk):
            block = data[:, start:start + chunk]
            if fmt_name.endswith("p"):
                arr = np.ascontiguousarray(block)
            else:
                arr = np.ascontiguousarray(block.T.reshape(1, -1))
            if fmt_name.startswith("s16"):
                arr = (arr * 32767).astype(np.int16)
            elif fmt_name.startswith("s32"):
                arr = (arr * 2147483647).astype(np.int32)
            frame = av.AudioFrame.from_ndarray(arr, format=fmt_name, layout=layout)
            frame.sample_rate = rate
            frame.pts = pts
            frame.time_base = Fraction(1, rate)
            pts += block.shape[1]
            for packet in astream.encode(frame):
                out.mux(packet)
        for packet in astream.encode(None):
            out.mux(packet)
    out.close()
    return path
