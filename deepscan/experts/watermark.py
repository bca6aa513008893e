"""Invisible watermarks of open image generators: the DWT-DCT mark of ``invisible-watermark``.

The Stable Diffusion reference scripts and Stability AI's SDXL code mark every image they save
with the ``dwtDct`` method of the ``invisible-watermark`` package (ShieldMnt/invisible-watermark,
``imwatermark/maxDct.py``, ``EmbedMaxDct``, scales ``[0, 36, 36]``, block 4). This module is our
own decoder of that published algorithm (and the matching encoder the tests use), in numpy and
OpenCV's colour conversion; it needs neither that package nor PyWavelets.

The algorithm, as the reference implementation runs it
------------------------------------------------------
1. The ``(H, W, 3)`` array handed to the encoder is read as OpenCV **BGR** and converted to YUV
   (``cv2.COLOR_BGR2YUV``: ``Y = 0.299 R + 0.587 G + 0.114 B``, ``U = 0.492 (B - Y) + delta``,
   ``delta = 128`` for uint8 input and ``0.5`` for float32 input). Only channel 1 (U) carries the
   mark: the loop runs over channels 0 and 1 and channel 0 has scale 0.
2. The U plane, cropped to ``(H // 4 * 4, W // 4 * 4)``, goes through one level of the 2-D Haar
   DWT; the approximation band ``LL`` (``(H // 4 * 2, W // 4 * 2)``, each value the sum of a 2x2
   pixel block divided by 2, PyWavelets' ``cA``) is cut into 4x4 blocks, numbered row-major.
3. Block ``k`` carries bit ``k mod n`` of the ``n``-bit message. Of the block's 16 coefficients,
   the one of largest magnitude apart from the first (top-left) is quantised with step
   ``scale = 36``: ``|c| -> (|c| // 36 + 0.25 + 0.5 * bit) * 36``, sign kept. Despite the method's
   name, the reference code applies **no DCT** in this step (its ``diffuse_dct_matrix`` and
   ``infer_dct_matrix`` work on the ``LL`` block directly; only the unused SVD variant calls
   ``cv2.dct``), and neither do we.
4. Decoding reads the same coefficient of every block, scores ``1`` when ``|c| mod 36 > 18``,
   averages the scores of the blocks that carry each bit and calls the bit 1 when the mean
   exceeds ``127 / 255``.

Who embeds what (:data:`SCHEMES`)
---------------------------------
* ``StableDiffusionV1``: the CompVis Stable Diffusion scripts (``scripts/txt2img.py``,
  ``put_watermark``): the bytes ``b"StableDiffusionV1"`` (17 bytes, **136 bits**, most significant
  bit first, ``np.unpackbits``), on the image converted RGB -> BGR as uint8.
* ``SDV2``: Stability-AI/stablediffusion (SD 2.x) scripts: ``b"SDV2"`` (32 bits), same handling.
* ``SDXL``: Stability-AI/generative-models (``sgm/inference/helpers.py``) and diffusers
  (``pipelines/stable_diffusion_xl/watermark.py``): the **48 bits** of
  ``0b101100111110110010010000011110111011000110011110`` (``0xB3EC907BB19E``). generative-models
  flips RGB -> BGR and passes float32 values in ``[0, 255]``; diffusers (0.19 to at least 0.25)
  passes the float32 **RGB** array as if it were BGR.

Since each pipeline hands the encoder a different array, the decoder tries the four
:data:`CONVENTIONS` (channel order as given or flipped x uint8 or float32 YUV offset) and keeps
the best match of each scheme.

Tolerance and false matches
---------------------------
A scheme matches when at most ``max_errors`` of its ``n`` bits differ from the message (about 20%
for the 136-bit mark, 12.5% for 48 bits, 6% for 32 bits). On bits that carry no mark (each 0 or 1
with probability 1/2, independent) the chance that one convention matches is the binomial tail
``P(errors <= max_errors) = sum_{i <= max_errors} C(n, i) / 2^n``; the decoder tries 4
conventions, so the false-match rate reported is ``4 x`` that tail (a union bound):
``StableDiffusionV1`` 1.4e-12, ``SDXL`` 2.0e-7, ``SDV2`` 4.9e-7 per image. Real images' bits are
not exactly random: Stability's own detector (``scripts/demo/detect.py``) found 0.02% of 10,000
real images at 34-35 of 48 matching bits and none at 36 or more; we ask for 42.

The mark survives lossless saving; JPEG compression, resizing, cropping by an amount that is not a
multiple of 8 pixels and colour edits weaken or erase it, and anyone can embed it (the encoder is
public): a match says "made by a pipeline that marks its output" (or someone imitating one).

Images smaller than :data:`MIN_PIXELS` (256 x 256, the reference library's own limit) are not
decoded; above :data:`MAX_PIXELS` neither (a generator's native output is smaller, and an
upscaled copy has lost the mark).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "SCALE",
    "BLOCK",
    "MIN_PIXELS",
    "MAX_PIXELS",
    "Convention",
    "CONVENTIONS",
    "WatermarkScheme",
    "SCHEMES",
    "WatermarkMatch",
    "haar_dwt2",
    "haar_idwt2",
    "block_scores",
    "decode_bits",
    "embed",
    "binomial_tail",
    "size_refusal",
    "detect",
]

SCALE = 36.0
"""Quantisation step of the marked coefficient (``EmbedMaxDct`` default scale of channel 1)."""
BLOCK = 4
"""Side of the blocks of the Haar LL band, in coefficients."""
MIN_PIXELS = 256 * 256
"""Fewest pixels (H x W) decoded: ``invisible-watermark`` refuses smaller images."""
MAX_PIXELS = 4096 * 4096
"""Most pixels decoded (cost grows with the area: 25-30 ms per megapixel, all schemes and conventions)."""


@dataclass(frozen=True)
class Convention:
    """How a pipeline handed its RGB image to the encoder.

    Attributes
    ----------
    name : str
        Short label reported with a match.
    flip : bool
        True when the pipeline converted RGB to BGR first (the encoder then saw true BGR); False
        when it passed the RGB array as if it were BGR.
    float_input : bool
        True when the array was float32 in ``[0, 255]`` (OpenCV's YUV then offsets U by 0.5);
        False for uint8 (offset 128).
    """

    name: str
    flip: bool
    float_input: bool


CONVENTIONS: tuple[Convention, ...] = (
    Convention("bgr-uint8", flip=True, float_input=False),       # CompVis SD 1.x / SD 2.x scripts
    Convention("rgb-as-bgr-float", flip=False, float_input=True),  # diffusers SDXL watermarker
    Convention("bgr-float", flip=True, float_input=True),        # generative-models sgm helpers
    Convention("rgb-as-bgr-uint8", flip=False, float_input=False),  # PIL arrays passed as is
)


@dataclass(frozen=True)
class WatermarkScheme:
    """A known message and who embeds it.

    Attributes
    ----------
    name : str
        The message's name (``"StableDiffusionV1"``).
    generator : str
        The pipelines that embed it.
    bits : tuple of int
        The message, 0/1, in embedding order.
    max_errors : int
        Most differing bits still called a match.
    documented_at : str
        The page (source file) that embeds it.
    """

    name: str
    generator: str
    bits: tuple[int, ...]
    max_errors: int
    documented_at: str

    @property
    def n_bits(self) -> int:
        return len(self.bits)

    @property
    def false_match_rate(self) -> float:
        """Chance that random bits match under any of the :data:`CONVENTIONS` (union bound)."""
        return min(1.0, len(CONVENTIONS) * binomial_tail(self.n_bits, self.max_errors))


def _bytes_bits(message: bytes) -> tuple[int, ...]:
    return tuple(int(b) for b in np.unpackbits(np.frombuffer(message, dtype=np.uint8)))


def _int_bits(value: int) -> tuple[int, ...]:
    return tuple(int(c) for c in bin(value)[2:])  # as the embedders build it: bin(x)[2:]


SCHEMES: tuple[WatermarkScheme, ...] = (
    WatermarkScheme(
        "StableDiffusionV1", "Stable Diffusion 1.x reference scripts (CompVis)",
        _bytes_bits(b"StableDiffusionV1"), max_errors=27,
        documented_at="https://github.com/CompVis/stable-diffusion/blob/main/scripts/txt2img.py"),
    WatermarkScheme(
        "SDXL", "Stable Diffusion XL (Stability AI generative-models, diffusers)",
        _int_bits(0b101100111110110010010000011110111011000110011110), max_errors=6,
        documented_at="https://github.com/Stability-AI/generative-models/blob/main/sgm/inference/helpers.py"),
    WatermarkScheme(
        "SDV2", "Stable Diffusion 2.x reference scripts (Stability AI)",
        _bytes_bits(b"SDV2"), max_errors=2,
        documented_at="https://github.com/Stability-AI/stablediffusion/blob/main/scripts/txt2img.py"),
)


@dataclass(frozen=True)
class WatermarkMatch:
    """A decoded mark that matches a known message.

    Attributes
    ----------
    scheme : str
        :attr:`WatermarkScheme.name`.
    generator : str
        Who embeds it.
    bits_matched, n_bits : int
        Agreeing bits, and the message length.
    false_match_rate : float
        Chance of a match this good or better on random bits, all conventions tried.
    convention : str
        The :class:`Convention` that matched.
    documented_at : str
        The page that embeds it.
    """

    scheme: str
    generator: str
    bits_matched: int
    n_bits: int
    false_match_rate: float
    convention: str
    documented_at: str


def binomial_tail(n: int, k: int) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, 1/2)``: the chance that random bits differ in at most k.

    Parameters
    ----------
    n : int
        Bits compared.
    k : int
        Most errors allowed.

    Returns
    -------
    float
        ``sum_{i=0}^{k} C(n, i) / 2^n``, exact integer arithmetic then one division.
    """
    if k < 0:
        return 0.0
    return sum(math.comb(n, i) for i in range(min(k, n) + 1)) / 2.0 ** n


def haar_dwt2(x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One level of the orthonormal 2-D Haar DWT.

    Parameters
    ----------
    x : np.ndarray
        ``(H, W)`` with H and W even, any real dtype.

    Returns
    -------
    (LL, (LH, HL, HH))
        float64 ``(H/2, W/2)`` each. For the 2x2 block ``[[a, b], [c, d]]``: ``LL = (a+b+c+d)/2``
        (PyWavelets' ``cA`` for ``'haar'``), ``LH = (a+b-c-d)/2`` (rows differ),
        ``HL = (a-b+c-d)/2`` (columns differ), ``HH = (a-b-c+d)/2``. The detail signs are our
        convention; :func:`haar_idwt2` inverts them exactly.

    Raises
    ------
    ValueError
        When a side is odd or the array is not 2-D.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] % 2 or x.shape[1] % 2:
        raise ValueError(f"haar_dwt2 needs a 2-D array with even sides, got shape {x.shape}")
    a, b = x[0::2, 0::2], x[0::2, 1::2]
    c, d = x[1::2, 0::2], x[1::2, 1::2]
    return (a + b + c + d) / 2, ((a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2)


def haar_idwt2(ll: np.ndarray, details: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Inverse of :func:`haar_dwt2`: float64 ``(2h, 2w)`` from four ``(h, w)`` bands."""
    lh, hl, hh = details
    out = np.empty((ll.shape[0] * 2, ll.shape[1] * 2), dtype=np.float64)
    out[0::2, 0::2] = (ll + lh + hl + hh) / 2
    out[0::2, 1::2] = (ll + lh - hl - hh) / 2
    out[1::2, 0::2] = (ll - lh + hl - hh) / 2
    out[1::2, 1::2] = (ll - lh - hl + hh) / 2
    return out


def _encoder_view(rgb: np.ndarray, convention: Convention) -> np.ndarray:
    """The array the encoder saw, as OpenCV BGR, in the convention's dtype."""
    arr = rgb[:, :, ::-1] if convention.flip else rgb
    return np.ascontiguousarray(arr, dtype=np.float32 if convention.float_input else np.uint8)


_HAAR = 0.7071067811865476  # 1/sqrt(2) as float64, PyWavelets' 'haar' filter taps


def _reference_ll(u: np.ndarray) -> np.ndarray:
    """The Haar LL band rounded exactly as PyWavelets computes it (``dwt2``: rows axis first).

    Mathematically ``(a + b + c + d) / 2`` (:func:`haar_dwt2`), but the reference computes
    ``s(s a + s c) + s(s b + s d)`` with ``s = 1/sqrt(2)`` in float64, which lands a hair above or
    below half-integers. Coefficients of uint8 images often sit exactly on the decision boundary
    (``|c| mod 36 = 18``), so this rounding decides such blocks; we reproduce it bit for bit.
    """
    u = np.asarray(u, dtype=np.float64)
    p = _HAAR * u[0::2, 0::2] + _HAAR * u[1::2, 0::2]
    q = _HAAR * u[0::2, 1::2] + _HAAR * u[1::2, 1::2]
    return _HAAR * p + _HAAR * q


def _ll_blocks(u: np.ndarray) -> np.ndarray:
    """``(n_blocks, 16)`` float64 coefficients of the LL band of a U plane, blocks row-major."""
    h, w = u.shape[0] // 4 * 4, u.shape[1] // 4 * 4
    ll = _reference_ll(u[:h, :w])
    rows, cols = ll.shape[0] // BLOCK, ll.shape[1] // BLOCK
    ll = ll[: rows * BLOCK, : cols * BLOCK]
    return ll.reshape(rows, BLOCK, cols, BLOCK).transpose(0, 2, 1, 3).reshape(rows * cols, BLOCK * BLOCK)


def _marked_position(blocks: np.ndarray) -> np.ndarray:
    """Index (1..15) of the largest-magnitude coefficient after the first, per block (first wins ties)."""
    return np.argmax(np.abs(blocks[:, 1:]), axis=1) + 1


def block_scores(rgb: np.ndarray, convention: Convention) -> np.ndarray:
    """Per-block bit scores of an image under one convention.

    Parameters
    ----------
    rgb : np.ndarray
        uint8 ``(H, W, 3)`` RGB, as decoded from the file.
    convention : Convention
        How the embedding pipeline handed the image to the encoder.

    Returns
    -------
    np.ndarray
        uint8 ``(n_blocks,)``, 1 where ``|c| mod 36 > 18`` for the block's marked coefficient.
    """
    yuv = cv2.cvtColor(_encoder_view(rgb, convention), cv2.COLOR_BGR2YUV)
    blocks = _ll_blocks(yuv[:, :, 1].astype(np.float64))
    val = np.abs(blocks[np.arange(len(blocks)), _marked_position(blocks)])
    return (np.mod(val, SCALE) > 0.5 * SCALE).astype(np.uint8)


def decode_bits(scores: np.ndarray, n_bits: int) -> np.ndarray:
    """Majority vote of the blocks that carry each bit (block ``k`` carries bit ``k mod n_bits``).

    Returns
    -------
    np.ndarray
        uint8 ``(n_bits,)``; a bit no block carries decodes as 0.
    """
    idx = np.arange(len(scores)) % n_bits
    ones = np.bincount(idx, weights=scores, minlength=n_bits)
    count = np.bincount(idx, minlength=n_bits)
    mean = np.divide(ones, count, out=np.zeros(n_bits), where=count > 0)
    return (mean * 255 > 127).astype(np.uint8)


def embed(rgb: np.ndarray, bits, convention: Convention = CONVENTIONS[0]) -> np.ndarray:
    """Embed ``bits`` the way the reference encoder does (used by the tests, and to study the mark).

    Parameters
    ----------
    rgb : np.ndarray
        uint8 ``(H, W, 3)`` RGB, at least :data:`MIN_PIXELS` pixels.
    bits : sequence of int
        The message, 0/1.
    convention : Convention
        The pipeline to imitate.

    Returns
    -------
    np.ndarray
        uint8 ``(H, W, 3)`` RGB with the mark, rounded and clipped as a pipeline saving a PNG does.

    Raises
    ------
    ValueError
        When the image is smaller than :data:`MIN_PIXELS` or ``bits`` is empty.
    """
    rgb = np.asarray(rgb)
    bits = np.asarray(list(bits), dtype=np.float64)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] * rgb.shape[1] < MIN_PIXELS or bits.size == 0:
        raise ValueError("embed needs an (H, W, 3) image of at least 256x256 pixels and a non-empty message")
    yuv = cv2.cvtColor(_encoder_view(rgb, convention), cv2.COLOR_BGR2YUV).astype(np.float64)
    h, w = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
    ll, details = haar_dwt2(yuv[:h, :w, 1])
    rows, cols = ll.shape[0] // BLOCK, ll.shape[1] // BLOCK
    blocks = _ll_blocks(yuv[:, :, 1])
    pos = _marked_position(blocks)
    k = np.arange(len(blocks))
    val = blocks[k, pos]
    bit = bits[k % bits.size]
    blocks[k, pos] = np.sign(val + (val == 0)) * (np.floor(np.abs(val) / SCALE) + 0.25 + 0.5 * bit) * SCALE
    ll[: rows * BLOCK, : cols * BLOCK] = blocks.reshape(rows, cols, BLOCK, BLOCK).transpose(0, 2, 1, 3).reshape(
        rows * BLOCK, cols * BLOCK)
    yuv[:h, :w, 1] = haar_idwt2(ll, details)
    if convention.float_input:
        bgr = cv2.cvtColor(yuv.astype(np.float32), cv2.COLOR_YUV2BGR)
    else:
        bgr = cv2.cvtColor(np.clip(np.rint(yuv), 0, 255).astype(np.uint8), cv2.COLOR_YUV2BGR)
    out = np.clip(np.rint(bgr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out[:, :, ::-1] if convention.flip else out)


def size_refusal(h: int, w: int) -> str | None:
    """Why an ``h x w`` image is not decoded (outside :data:`MIN_PIXELS`..:data:`MAX_PIXELS`), or None."""
    if h * w < MIN_PIXELS:
        return f"not decoded: {w}x{h} is under {MIN_PIXELS} pixels (256x256)"
    if h * w > MAX_PIXELS:
        return f"not decoded: {w}x{h} is over {MAX_PIXELS} pixels (4096x4096)"
    return None


def detect(rgb: np.ndarray, schemes: tuple[WatermarkScheme, ...] = SCHEMES) -> tuple[WatermarkMatch | None, str]:
    """Look for every known mark in an image.

    Parameters
    ----------
    rgb : np.ndarray
        uint8 ``(H, W, 3)`` RGB, as stored (not resized).
    schemes : tuple of WatermarkScheme
        The messages to look for.

    Returns
    -------
    (WatermarkMatch or None, str)
        The best match (fewest errors relative to the tolerance, lowest false-match rate first)
        or None, and a note saying what was checked (``"none found: checked StableDiffusionV1, SDXL,
        SDV2 in 4 conventions"``) or why nothing was (``"not decoded: 128x128 is under ..."``).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        return None, f"not decoded: expected an (H, W, 3) image, got shape {rgb.shape}"
    refusal = size_refusal(*rgb.shape[:2])
    if refusal:
        return None, refusal
    if rgb.dtype != np.uint8:
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    best: WatermarkMatch | None = None
    for convention in CONVENTIONS:
        scores = block_scores(rgb, convention)
        for scheme in schemes:
            if len(scores) < scheme.n_bits:
                continue
            decoded = decode_bits(scores, scheme.n_bits)
            matched = int(np.sum(decoded == np.asarray(scheme.bits, dtype=np.uint8)))
            if scheme.n_bits - matched > scheme.max_errors:
                continue
            candidate = WatermarkMatch(scheme.name, scheme.generator, matched, scheme.n_bits,
                                       scheme.false_match_rate, convention.name, scheme.documented_at)
            if best is None or candidate.false_match_rate < best.false_match_rate:
                best = candidate
    names = ", ".join(s.name for s in schemes)
    return best, f"{'found' if best else 'none found'}: checked {names} in {len(CONVENTIONS)} conventions"
