"""Provenance: what a media file says about itself, read before any pixel is judged.

A new kind of expert: it does not look at the content but reads, and where it can verifies, what
the file declares about its origin. Four sources, each fact kept with where it came from:

1. **C2PA content credentials** (Coalition for Content Provenance and Authenticity, specification
   2.x, https://c2pa.org/specifications/), read and validated by the official bindings
   (``c2pa-python``, on the Rust SDK ``c2pa-rs``): the active manifest's claim generator, signer,
   actions and their IPTC ``digitalSourceType``, the ingredients, and the validation state kept in
   three: **trusted** (intact, and the signing certificate chains to a trust anchor we ship or the
   user names), **valid** (intact, signer not on the list: anyone can make such a certificate),
   **invalid** (the content or the manifest changed after signing, or the signature is broken).
   Remote manifests and OCSP are never fetched (offline).
2. **IPTC digital source type** in XMP outside C2PA (``Iptc4xmpExt:DigitalSourceType``, IPTC
   Photo Metadata Standard 2023.1, https://iptc.org/std/photometadata/specification/), from the
   XMP packet of JPEG (APP1), PNG (``iTXt XML:com.adobe.xmp``) and WebP (``XMP `` chunk), or found
   by a bounded byte search in other images.
3. **Generator metadata**: PNG text chunks, EXIF and XMP software fields and the tags of audio and
   video containers, matched against the table of :mod:`deepscan.experts.provenance_marks`.
4. **Invisible watermarks** of open generators (:mod:`deepscan.experts.watermark`), decoded from
   the stored pixels of images between 256x256 and 4096x4096.

:func:`read_provenance` gathers the facts (never raising: an unreadable part becomes a reason);
:func:`cue` turns them into the expert's ``(p_fake, reason)``:

* a declared AI origin (C2PA ``trainedAlgorithmicMedia`` / ``compositeWithTrainedAlgorithmicMedia``
  in a trusted or valid manifest, whoever signed it; the same IPTC term in XMP; a generator's
  metadata; a watermark match) gives ``p_fake = P_DECLARED_AI`` (0.99) and the declaration as the
  reason. An untrusted signer can claim anything, but nobody gains by falsely labelling a real
  photo as AI-made, so such a claim is credible whoever makes it. It is not 1.0: metadata can be
  copied onto another file, and a mark can be forged;
* a trusted capture claim (``digitalCapture``) says "captured by X" and gives **no** p_fake: the
  credential proves which device signed the file, not that the scene was real (a signed camera
  can photograph a screen showing a deepfake), and no data set exists to calibrate what it would
  be worth;
* an invalid manifest is reported as such and is no evidence either way (a real photo can carry a
  manifest copied from an AI image, an AI image one edited from a photo);
* no mark is no evidence either way (``p_fake`` None, "no provenance marks"): most files carry
  none, and stripping metadata takes one command.

Cost (``python -m bench.provenance``, one CPU thread): metadata and the C2PA check of a file
without a manifest take 0.8 ms (median; p95 1.6 ms) over the 459 images of the harvest's starter
subset; a signed manifest is validated in 2.5 ms (512x512 JPEG, 233 KB) to 5.7 ms (2048x2048,
3.7 MB), mostly hashing the content; the watermark decoder takes 25-30 ms per megapixel (median
5-8 ms per harvest image) on pixels already decoded. The first call imports c2pa-python (~30 ms).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import struct
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from deepscan.errors import DeepscanError
from deepscan.experts import provenance_marks as marks
from deepscan.experts import watermark as wm
from deepscan.media import load_image, sniff_kind

__all__ = [
    "P_DECLARED_AI",
    "TRUST_ENV",
    "TRUST_BUNDLE",
    "C2paAction",
    "C2paIngredient",
    "C2paManifest",
    "SourceTypeDeclaration",
    "GeneratorMark",
    "SoftwareTag",
    "Provenance",
    "read_provenance",
    "cue",
    "prov_column",
    "describe",
    "trust_anchors",
]

P_DECLARED_AI = 0.99
"""p_fake of a declared AI origin (see the module docstring for why not 1.0)."""
TRUST_ENV = "DEEPSCAN_C2PA_TRUST"
"""Environment variable: PEM files (``os.pathsep``-separated) whose certificates are trusted too."""
TRUST_BUNDLE = Path(__file__).with_name("provenance_trust.pem")
"""The trust list we ship: the C2PA Trust List (conformance program), a PEM bundle."""

MAX_SCAN_BYTES = 64 * 1024 * 1024
"""Most bytes of a PNG/JPEG/WebP walked for metadata chunks (chunks past it are not read)."""
MAX_CHUNKS = 100_000
"""Most chunks or segments walked in one file."""
MAX_CHUNK_BYTES = 8 * 1024 * 1024
"""Largest metadata chunk read (a bigger one is skipped with a reason)."""
MAX_TEXT_BYTES = 1024 * 1024
"""Most bytes kept of one decompressed text value."""
XMP_SEARCH_BYTES = 1024 * 1024
"""Bytes searched for an XMP packet at the start and at the end of other formats."""
EXCERPT_CHARS = 80
"""Characters of a matched value kept as an excerpt."""


@dataclass(frozen=True)
class C2paAction:
    """One action of a C2PA actions assertion (``c2pa.actions`` / ``c2pa.actions.v2``)."""

    action: str
    digital_source_type: str | None  # the IPTC term ("trainedAlgorithmicMedia"), None when absent or "empty"
    software_agent: str | None


@dataclass(frozen=True)
class C2paIngredient:
    """An ingredient of the active manifest, with the source types its own manifest declares."""

    title: str | None
    relationship: str | None
    format: str | None
    digital_source_types: tuple[str, ...]


@dataclass(frozen=True)
class C2paManifest:
    """The active C2PA manifest of a file and its validation.

    Attributes
    ----------
    claim_generator : str or None
        The application that made the claim (``claim_generator`` or ``claim_generator_info``).
    signer, issuer : str or None
        The signing certificate's common name and organisation (``signature_info``).
    signed_at : str or None
        The trusted timestamp, when there is one.
    actions : tuple of C2paAction
    digital_source_types : tuple of str
        IPTC terms declared by the active manifest's actions.
    ingredients : tuple of C2paIngredient
    validation_state : str
        ``"trusted"``, ``"valid"`` or ``"invalid"``.
    validation_failures : tuple of str
        Failure codes (``"assertion.dataHash.mismatch"``), ``signingCredential.untrusted`` left out.
    """

    claim_generator: str | None
    signer: str | None
    issuer: str | None
    signed_at: str | None
    actions: tuple[C2paAction, ...]
    digital_source_types: tuple[str, ...]
    ingredients: tuple[C2paIngredient, ...]
    validation_state: str
    validation_failures: tuple[str, ...]

    @property
    def ai_terms(self) -> tuple[str, ...]:
        """AI source types declared by the manifest itself."""
        return tuple(t for t in self.digital_source_types if t in marks.AI_SOURCE_TYPES)

    @property
    def ingredient_ai(self) -> tuple[tuple[str, str], ...]:
        """``(ingredient title, AI term)`` for ingredients whose own manifest declares AI."""
        return tuple((i.title or "?", t) for i in self.ingredients for t in i.digital_source_types
                     if t in marks.AI_SOURCE_TYPES)

    @property
    def capture_terms(self) -> tuple[str, ...]:
        return tuple(t for t in self.digital_source_types if t in marks.CAPTURE_SOURCE_TYPES)

    @property
    def creator(self) -> str | None:
        """The software agent of the creating action, else the claim generator."""
        for a in self.actions:
            if a.action in ("c2pa.created", "c2pa.opened") and a.software_agent:
                return a.software_agent
        return self.claim_generator


@dataclass(frozen=True)
class SourceTypeDeclaration:
    """An IPTC digital source type found in XMP outside C2PA (unsigned)."""

    term: str
    uri: str
    where: str


@dataclass(frozen=True)
class GeneratorMark:
    """A field value that matches a known generator marker."""

    marker: str
    generator: str
    field: str
    where: str
    excerpt: str
    documented_at: str | None


@dataclass(frozen=True)
class SoftwareTag:
    """A software, creator-tool or camera field, classified (``generator``/``editor``/``camera``/``other``)."""

    field: str
    value: str
    role: str


@dataclass(frozen=True)
class Provenance:
    """Everything a file says about its origin, each fact with its source.

    Attributes
    ----------
    path : str
    container : str or None
        ``"png"``, ``"jpeg"``, ``"webp"``, ``"image"`` (another image format), ``"av"`` (audio or
        video) or None when unreadable.
    c2pa : C2paManifest or None
        The active manifest, None when the file has none (or C2PA could not be checked: reasons).
    iptc_source_type : SourceTypeDeclaration or None
        From XMP outside C2PA; the first AI term wins over other terms.
    generator_marks : tuple of GeneratorMark
    watermark : watermark.WatermarkMatch or None
    software : tuple of SoftwareTag
        Software and camera fields seen (facts for the report; editors and cameras are no evidence).
    reasons : tuple of str
        What could not be read or checked, and the watermark decoder's note.
    elapsed_s : float
        Wall time of :func:`read_provenance`, in seconds.
    """

    path: str
    container: str | None = None
    c2pa: C2paManifest | None = None
    iptc_source_type: SourceTypeDeclaration | None = None
    generator_marks: tuple[GeneratorMark, ...] = ()
    watermark: wm.WatermarkMatch | None = None
    software: tuple[SoftwareTag, ...] = ()
    reasons: tuple[str, ...] = ()
    elapsed_s: float = 0.0

    def as_dict(self) -> dict:
        """JSON-ready facts (plain dicts, lists, strings, numbers, None)."""
        return asdict(self)


# --------------------------------------------------------------------------------------- fields


@dataclass
class _Found:
    """Mutable collector while reading one file."""

    fields: list[tuple[str, str, str]] = field(default_factory=list)  # (field, value, where)
    xmp: list[tuple[bytes, str]] = field(default_factory=list)  # (packet, where)
    exif: list[tuple[bytes, str]] = field(default_factory=list)  # (raw EXIF, where)
    reasons: list[str] = field(default_factory=list)


def _clean(text: str, limit: int = EXCERPT_CHARS) -> str:
    """Printable one-line excerpt: control, line-separator and bidi-override characters become
    spaces, cut to ``limit``."""
    text = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _inflate(data: bytes, found: _Found, where: str) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, MAX_TEXT_BYTES)
    except zlib.error as error:
        found.reasons.append(f"{where}: compressed text unreadable ({error})")
        return b""
    if d.unconsumed_tail:
        found.reasons.append(f"{where}: text cut at {MAX_TEXT_BYTES} bytes")
    return out


def _png_text(ctype: bytes, data: bytes, found: _Found) -> None:
    key_raw, _, rest = data.partition(b"\0")
    key = key_raw.decode("latin-1", "replace")
    where = f"PNG {ctype.decode()} '{_clean(key, 40)}'"
    if ctype == b"tEXt":
        value = rest[:MAX_TEXT_BYTES].decode("latin-1", "replace")
    elif ctype == b"zTXt":
        value = _inflate(rest[1:], found, where).decode("latin-1", "replace")
    else:  # iTXt: flag, method, language\0, translated keyword\0, text
        if len(rest) < 2:
            return
        compressed = rest[0] == 1
        _lang, _, rest2 = rest[2:].partition(b"\0")
        _tkey, _, text = rest2.partition(b"\0")
        raw = _inflate(text, found, where) if compressed else text[:MAX_TEXT_BYTES]
        if key == "XML:com.adobe.xmp":
            found.xmp.append((raw, where))
            return
        value = raw.decode("utf-8", "replace")
    found.fields.append((f"png:{key.lower()}", value, where))


def _walk_png(fh, found: _Found) -> None:
    """PNG chunks (ISO/IEC 15948, W3C PNG 3rd ed.): text chunks and ``eXIf``; IDAT is skipped."""
    fh.seek(8)
    walked = 8
    for _ in range(MAX_CHUNKS):
        if walked >= MAX_SCAN_BYTES:
            return
        head = fh.read(8)
        if len(head) < 8:
            return
        length, ctype = struct.unpack(">I4s", head)
        walked += 12 + length
        if ctype in (b"tEXt", b"zTXt", b"iTXt", b"eXIf"):
            if length > MAX_CHUNK_BYTES:
                found.reasons.append(f"PNG {ctype.decode('latin-1')} chunk of {length} bytes skipped")
                fh.seek(length + 4, 1)
                continue
            data = fh.read(length)
            fh.seek(4, 1)
            if ctype == b"eXIf":
                found.exif.append((data, "PNG eXIf"))
            else:
                _png_text(ctype, data, found)
        elif ctype == b"IEND":
            return
        else:
            fh.seek(length + 4, 1)


_XMP_NS = b"http://ns.adobe.com/xap/1.0/\0"
_XMP_EXT_NS = b"http://ns.adobe.com/xmp/extension/\0"


def _walk_jpeg(fh, found: _Found) -> None:
    """JPEG marker segments up to the first scan (ITU T.81; EXIF in APP1, XMP in APP1, COM)."""
    fh.seek(2)
    extended: list[bytes] = []
    walked = 2
    for _ in range(MAX_CHUNKS):
        if walked >= MAX_SCAN_BYTES:
            break
        byte = fh.read(1)
        if byte != b"\xff":  # end of file, or not a marker where one must be: stop
            if byte:
                found.reasons.append("JPEG segments malformed: metadata read up to there")
            break
        marker = fh.read(1)
        while marker == b"\xff":  # fill bytes
            marker = fh.read(1)
        if not marker:
            break
        m = marker[0]
        if m in (0xD8, 0x01) or 0xD0 <= m <= 0xD7:
            continue
        if m in (0xDA, 0xD9):  # start of scan, end of image
            break
        size_raw = fh.read(2)
        if len(size_raw) < 2:
            break
        size = struct.unpack(">H", size_raw)[0] - 2
        walked += size + 4
        if size < 0:
            break
        if m in (0xE1, 0xFE):
            seg = fh.read(size)
            if m == 0xFE:
                found.fields.append(("jpeg:comment", seg[:MAX_TEXT_BYTES].decode("utf-8", "replace"), "JPEG COM"))
            elif seg.startswith(b"Exif\0\0"):
                found.exif.append((seg[6:], "JPEG APP1"))
            elif seg.startswith(_XMP_NS):
                found.xmp.append((seg[len(_XMP_NS):], "JPEG APP1 XMP"))
            elif seg.startswith(_XMP_EXT_NS):
                extended.append(seg[len(_XMP_EXT_NS) + 40:])  # GUID (32), full length (4), offset (4)
        else:
            fh.seek(size, 1)
    if extended:
        found.xmp.append((b"".join(extended), "JPEG APP1 extended XMP"))


def _walk_webp(fh, found: _Found) -> None:
    """RIFF chunks of a WebP file (Google WebP container spec): ``EXIF`` and ``XMP ``."""
    fh.seek(12)
    walked = 12
    for _ in range(MAX_CHUNKS):
        if walked >= MAX_SCAN_BYTES:
            return
        head = fh.read(8)
        if len(head) < 8:
            return
        fourcc, size = head[:4], struct.unpack("<I", head[4:])[0]
        padded = size + (size & 1)
        walked += 8 + padded
        if fourcc in (b"EXIF", b"XMP ") and size <= MAX_CHUNK_BYTES:
            data = fh.read(size)
            fh.seek(padded - size, 1)
            if fourcc == b"EXIF":
                found.exif.append((data[6:] if data.startswith(b"Exif\0\0") else data, "WebP EXIF"))
            else:
                found.xmp.append((data, "WebP XMP"))
        else:
            fh.seek(padded, 1)


def _search_xmp(fh, size: int, found: _Found) -> None:
    """Find an XMP packet by bytes at the start and the end of a file (formats we don't walk)."""
    fh.seek(0)
    spans = [fh.read(XMP_SEARCH_BYTES)]
    if size > 2 * XMP_SEARCH_BYTES:
        fh.seek(size - XMP_SEARCH_BYTES)
        spans.append(fh.read(XMP_SEARCH_BYTES))
    for data in spans:
        start = data.find(b"<x:xmpmeta")
        if start >= 0:
            end = data.find(b"</x:xmpmeta>", start)
            found.xmp.append((data[start: end + 12 if end > 0 else start + MAX_TEXT_BYTES], "XMP packet"))
            return


# EXIF tags (CIPA DC-008 / TIFF 6.0): IFD0 and, for UserComment, the Exif IFD (0x8769).
_EXIF_TAGS = {0x0131: "software", 0x010E: "imagedescription", 0x010F: "make", 0x0110: "model", 0x013B: "artist"}


def _exif_text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).replace("\x00", " ").strip()


def _user_comment(raw) -> str:
    """EXIF UserComment: an 8-byte character code then the text (UNICODE is UTF-16, either order)."""
    if isinstance(raw, str):
        return raw.strip("\x00 ")
    if not isinstance(raw, bytes):
        return ""
    code, body = raw[:8], raw[8:]
    if code.startswith(b"UNICODE"):
        candidates = [body.decode(enc, "replace") for enc in ("utf-16-be", "utf-16-le")]
        return max(candidates, key=lambda t: sum(32 <= ord(c) < 127 for c in t)).strip("\x00 ")
    return body.decode("utf-8", "replace").strip("\x00 ")


def _parse_exif(raw: bytes, where: str, found: _Found) -> None:
    try:
        exif = Image.Exif()
        exif.load(raw)
        for tag, name in _EXIF_TAGS.items():
            if tag in exif:
                found.fields.append((f"exif:{name}", _exif_text(exif[tag])[:MAX_TEXT_BYTES], f"EXIF {name} ({where})"))
        comment = exif.get_ifd(0x8769).get(0x9286)
        if comment:
            found.fields.append(("exif:usercomment", _user_comment(comment)[:MAX_TEXT_BYTES],
                                 f"EXIF UserComment ({where})"))
    except Exception as error:  # a damaged EXIF block is a reason, never a crash
        found.reasons.append(f"{where}: EXIF unreadable ({type(error).__name__})")


_DST_RE = re.compile(
    r"DigitalSourceType\s*(?:=\s*[\"']|>\s*|[^>]{0,200}?rdf:resource\s*=\s*[\"'])\s*"
    r"(https?://cv\.iptc\.org/newscodes/digitalsourcetype/([A-Za-z]+))")
_CREATOR_RE = re.compile(r"(?:\w+:)?CreatorTool\s*(?:=\s*\"([^\"]*)\"|=\s*'([^']*)'|>([^<]*)<)")


def _parse_xmp(packet: bytes, where: str, found: _Found) -> list[SourceTypeDeclaration]:
    """IPTC DigitalSourceType and xmp:CreatorTool from an XMP packet, by pattern (no XML parser)."""
    text = packet[:MAX_TEXT_BYTES].decode("utf-8", "replace")
    out = [SourceTypeDeclaration(m.group(2), m.group(1), where) for m in _DST_RE.finditer(text)]
    for m in _CREATOR_RE.finditer(text):
        value = next((g for g in m.groups() if g is not None), "")
        if value.strip():
            found.fields.append(("xmp:creatortool", value, f"XMP CreatorTool ({where})"))
    return out


def _av_tags(path: str, found: _Found) -> None:
    """Container and stream tags of an audio or video file (FFmpeg's names, through PyAV)."""
    try:
        import av

        # Tags live in the header: a small probe (no stream analysis) reads them in ~1.7 ms, not ~4.
        options = {"probesize": "32768", "analyzeduration": "0"}
        with av.open(path, metadata_errors="ignore", options=options) as container:
            tags = [("container", container.metadata)] + [(f"stream {s.index}", s.metadata)
                                                          for s in container.streams]
    except Exception as error:  # av.error.*, OSError, ...: a reason, not a crash
        found.reasons.append(f"tags unreadable ({type(error).__name__}: {_clean(str(error))})")
        return
    for where, mapping in tags:
        for key, value in mapping.items():
            found.fields.append((f"tag:{str(key).lower()}", str(value)[:MAX_TEXT_BYTES],
                                 f"{where} tag '{_clean(key, 40)}'"))


# ---------------------------------------------------------------------------------------- C2PA


def trust_anchors(extra_pem: str | None = None) -> tuple[str, list[str]]:
    """The PEM certificates a C2PA signer must chain to for "trusted".

    Parameters
    ----------
    extra_pem : str, optional
        More PEM certificates (library callers, tests); added to the list.

    Returns
    -------
    (str, list of str)
        The concatenated PEM bundle (possibly empty) and reasons for files that could not be read.
        Sources: :data:`TRUST_BUNDLE` (shipped), the files named by :data:`TRUST_ENV`, and
        ``extra_pem``. ``c2pa-rs`` itself trusts nothing by default.
    """
    parts, reasons = [], []
    paths = [TRUST_BUNDLE] + [Path(p) for p in os.environ.get(TRUST_ENV, "").split(os.pathsep) if p.strip()]
    for i, p in enumerate(paths):
        try:
            parts.append(_read_text(str(p), p.stat().st_mtime_ns))
        except OSError as error:
            reasons.append(f"trust list {'(shipped) ' if i == 0 else f'({TRUST_ENV}) '}{p}: unreadable "
                           f"({error.strerror or type(error).__name__})")
    if extra_pem:
        parts.append(extra_pem)
    pem = "\n".join(_pem_blocks(t) for t in parts)
    return pem.strip(), reasons


@functools.lru_cache(maxsize=16)
def _read_text(path: str, _mtime_ns: int) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


@functools.lru_cache(maxsize=32)
def _pem_blocks(text: str) -> str:
    """Only the certificate blocks of a PEM file (comments and labels dropped)."""
    return "\n".join(re.findall(r"-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----", text))


@functools.lru_cache(maxsize=8)
def _c2pa_context(pem_digest: str, pem: str, _pid: int | None = None):
    """A c2pa Context per trust list and process (native handles are not shared across a fork)."""
    import c2pa

    settings: dict = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_trust": True}}
    if pem:
        settings["trust"] = {"trust_anchors": pem}
    return c2pa.Context.from_dict(settings)


_C2PA_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def _term(uri) -> str | None:
    if not isinstance(uri, str) or not uri.strip():
        return None
    term = _clean(uri.rstrip("/").rsplit("/", 1)[-1], 80)
    return None if term in ("", "empty") else term


def _s(value, limit: int = 200) -> str | None:
    """A file-supplied string made safe to print (one line, no control characters), or None."""
    return _clean(str(value), limit) or None if value not in (None, "") else None


def _agent(agent) -> str | None:
    if isinstance(agent, dict):
        return _s(" ".join(str(agent[k]) for k in ("name", "version") if agent.get(k)))
    return _s(agent) if agent else None


def _actions(manifest: dict) -> tuple[C2paAction, ...]:
    out = []
    for assertion in manifest.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for a in (assertion.get("data") or {}).get("actions") or []:
            if isinstance(a, dict):
                out.append(C2paAction(_s(a.get("action")) or "?", _term(a.get("digitalSourceType")),
                                      _agent(a.get("softwareAgent"))))
    return tuple(out)


def _ingredient_terms(store: dict, label, seen: set, depth: int = 0) -> list[str]:
    manifest = (store.get("manifests") or {}).get(label) if label else None
    if not isinstance(manifest, dict) or label in seen or depth > 8:
        return []
    seen.add(label)
    terms = [a.digital_source_type for a in _actions(manifest) if a.digital_source_type]
    for ing in manifest.get("ingredients") or []:
        if isinstance(ing, dict):
            terms += _ingredient_terms(store, ing.get("active_manifest"), seen, depth + 1)
    return terms


def _parse_store(store: dict) -> C2paManifest | None:
    """The active manifest of a ``Reader.json()`` manifest store."""
    active = (store.get("manifests") or {}).get(store.get("active_manifest"))
    if not isinstance(active, dict):
        return None
    generator = active.get("claim_generator")
    if not generator and active.get("claim_generator_info"):
        info = active["claim_generator_info"][0]
        generator = " ".join(str(info[k]) for k in ("name", "version") if info.get(k)) or None
    sig = active.get("signature_info") or {}
    actions = _actions(active)
    ingredients = tuple(
        C2paIngredient(_s(ing.get("title")), _s(ing.get("relationship")), _s(ing.get("format")),
                       tuple(dict.fromkeys(_ingredient_terms(store, ing.get("active_manifest"),
                                                             {store.get("active_manifest")}))))
        for ing in active.get("ingredients") or [] if isinstance(ing, dict))
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = [s.get("code") for s in (results.get("failure") if results else store.get("validation_status")) or []]
    failures = tuple(_clean(str(c), 80) for c in failures if c and c != "signingCredential.untrusted")
    state = str(store.get("validation_state") or ("Invalid" if failures else "Valid")).lower()
    return C2paManifest(
        claim_generator=_s(generator),
        signer=_s(sig.get("common_name")), issuer=_s(sig.get("issuer")), signed_at=_s(sig.get("time")),
        actions=actions,
        digital_source_types=tuple(dict.fromkeys(a.digital_source_type for a in actions if a.digital_source_type)),
        ingredients=ingredients,
        validation_state=state if state in ("trusted", "valid", "invalid") else "invalid",
        validation_failures=failures)


def _read_c2pa(path: str, container: str | None, trust_pem: str | None, reasons: list[str]) -> C2paManifest | None:
    try:
        import c2pa
    except ImportError:
        reasons.append("C2PA not checked: c2pa-python is not installed")
        return None
    pem, trust_reasons = trust_anchors(trust_pem)
    reasons.extend(trust_reasons)
    try:
        context = _c2pa_context(hashlib.sha256(pem.encode()).hexdigest(), pem, os.getpid())
    except Exception as error:
        reasons.append(f"C2PA trust list rejected ({_clean(str(error))}); checked without it")
        context = _c2pa_context("", "", os.getpid())
    try:
        with open(path, "rb") as fh:
            reader = c2pa.Reader.try_create(_C2PA_MIME.get(container or ""), fh, context=context)
            if reader is None:
                return None
            with reader:
                store = json.loads(reader.json())
    except c2pa.C2paError.NotSupported:
        return None
    except Exception as error:
        reasons.append(f"C2PA manifest unreadable ({type(error).__name__.lstrip('_')}: {_clean(str(error))})")
        return None
    try:
        return _parse_store(store)
    except Exception as error:  # a store shaped unlike the SDK's documented JSON
        reasons.append(f"C2PA manifest not understood ({type(error).__name__})")
        return None


# ----------------------------------------------------------------------------------------- read


def _container(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def _software_role(name: str, value: str, generator: bool) -> str:
    if generator:
        return "generator"
    if name in ("exif:make", "exif:model"):
        return "camera"
    return "editor" if marks.EDITOR_SOFTWARE.search(value) else "other"


_SOFTWARE_FIELDS = ("exif:software", "exif:make", "exif:model", "xmp:creatortool", "png:software",
                    "tag:software", "tag:encoder", "tag:encoded_by")


def read_provenance(path: str | os.PathLike, *, rgb: np.ndarray | None = None, watermark: bool = True,
                    trust_pem: str | None = None) -> Provenance:
    """Read every provenance fact of one media file.

    Parameters
    ----------
    path : str or os.PathLike
        An image, audio or video file.
    rgb : np.ndarray, optional
        uint8 ``(H, W, 3)`` RGB pixels of the image as stored (the scanner's decoded frame), to
        decode the watermark without decoding the file again; read with
        :func:`deepscan.media.load_image` when absent.
    watermark : bool
        Decode invisible watermarks (images of 256x256 to 4096x4096 pixels only).
    trust_pem : str, optional
        PEM certificates trusted in addition to :data:`TRUST_BUNDLE` and :data:`TRUST_ENV`.

    Returns
    -------
    Provenance
        Never raises for a bad file: what could not be read is in ``reasons``.
    """
    start = time.perf_counter()
    path = os.fspath(path)
    try:
        return _read(path, rgb, watermark, trust_pem, start)
    except DeepscanError as error:
        reason = f"unreadable ({_clean(error.message, 120)})"
    except Exception as error:  # a bug or a file no reader expected: a reason, never a crash of the batch
        reason = f"provenance not read ({type(error).__name__}: {_clean(str(error), 120)})"
    return Provenance(path, reasons=(reason,), elapsed_s=time.perf_counter() - start)


def _read(path: str, rgb, watermark: bool, trust_pem: str | None, start: float) -> Provenance:
    found = _Found()
    kind = sniff_kind(path)  # UnreadableFileError for a missing file, a directory, a pipe
    container = None
    size = 0
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            container = _container(fh.read(16)) or ("image" if kind == "image" else "av" if kind else None)
            if container == "png":
                _walk_png(fh, found)
            elif container == "jpeg":
                _walk_jpeg(fh, found)
            elif container == "webp":
                _walk_webp(fh, found)
            elif container in ("image", "av"):  # XMP in TIFF, GIF, HEIF, MP4 (moov/uuid), ...
                _search_xmp(fh, size, found)
    except (OSError, struct.error) as error:
        found.reasons.append(f"metadata unreadable ({type(error).__name__})")
    if container == "image":
        try:
            with Image.open(path) as im:
                raw = im.getexif().tobytes()
            if len(raw) > 8:
                found.exif.append((raw, "image EXIF"))
        except Exception:
            pass  # a format Pillow can't open: no EXIF to read
    if container == "av":
        _av_tags(path, found)
    for raw, where in found.exif:
        _parse_exif(raw, where, found)
    declarations: list[SourceTypeDeclaration] = []
    for packet, where in found.xmp:
        declarations += _parse_xmp(packet, where, found)
    for _field, value, where in found.fields:  # source types written outside XMP (tags, text chunks)
        for m in re.finditer(r"(https?://cv\.iptc\.org/newscodes/digitalsourcetype/([A-Za-z]+))", value[:65536]):
            declarations.append(SourceTypeDeclaration(m.group(2), m.group(1), where))
    iptc = next((d for d in declarations if d.term in marks.AI_SOURCE_TYPES), declarations[0] if declarations else None)

    generator_marks: dict[str, GeneratorMark] = {}
    generator_fields = set()
    for name, value, where in found.fields:
        for marker in marks.MARKERS:
            if name in marker.fields and marker.name not in generator_marks and marker.matches(value):
                generator_marks[marker.name] = GeneratorMark(marker.name, marker.generator, name, where,
                                                             _clean(value), marker.documented_at)
                generator_fields.add((name, value))
    software = tuple(dict.fromkeys(
        SoftwareTag(name, _clean(value), _software_role(name, value, (name, value) in generator_fields))
        for name, value, _ in found.fields if name in _SOFTWARE_FIELDS and value.strip()))

    c2pa_manifest = None
    if kind is not None:
        c2pa_manifest = _read_c2pa(path, container, trust_pem, found.reasons)

    match = None
    if watermark and container in ("png", "jpeg", "webp", "image"):
        match, note = _watermark(path, rgb)
        found.reasons.append(f"watermark {note}")
    return Provenance(path, container, c2pa_manifest, iptc, tuple(generator_marks.values()), match, software,
                      tuple(found.reasons), time.perf_counter() - start)


def _watermark(path: str, rgb: np.ndarray | None):
    if rgb is None:
        try:
            with Image.open(path) as im:  # the size, without decoding the pixels
                refusal = wm.size_refusal(im.size[1], im.size[0])
        except Exception:
            refusal = None
        if refusal:
            return None, refusal
        try:
            rgb = load_image(path)
        except DeepscanError as error:
            return None, f"not decoded: {error.reason}"
        except Exception as error:
            return None, f"not decoded: {type(error).__name__}"
    return wm.detect(rgb)


# ------------------------------------------------------------------------------------------ cue


def _c2pa_who(m: C2paManifest) -> str:
    signer = m.signer or m.issuer or "an unnamed signer"
    trust = "on the trust list" if m.validation_state == "trusted" else "not on the trust list"
    return f"signed by {signer} ({trust})"


def _evidence(prov: Provenance) -> list[str]:
    """Reasons for a declared AI origin, strongest first."""
    out = []
    m = prov.c2pa
    if m is not None and m.validation_state in ("trusted", "valid"):
        if m.ai_terms:
            out.append(f"C2PA: created by {m.creator or 'an unnamed generator'}, {m.ai_terms[0]}, {_c2pa_who(m)}")
        elif m.ingredient_ai:
            title, term = m.ingredient_ai[0]
            out.append(f"C2PA: ingredient '{_clean(title, 40)}' declared {term}, {_c2pa_who(m)}")
    if prov.iptc_source_type is not None and prov.iptc_source_type.term in marks.AI_SOURCE_TYPES:
        d = prov.iptc_source_type
        out.append(f"XMP: IPTC digital source type {d.term} ({d.where}, unsigned)")
    for g in prov.generator_marks:
        out.append(f"metadata: {g.generator} ({g.where})")
    if prov.watermark is not None:
        w = prov.watermark
        out.append(f"watermark: {w.scheme} of {w.generator}, {w.bits_matched}/{w.n_bits} bits "
                   f"(false-match rate {w.false_match_rate:.0e})")
    return out


def _notes(prov: Provenance) -> list[str]:
    """Facts that say something but are no evidence either way."""
    m = prov.c2pa
    out = []
    if m is not None:
        if m.validation_state == "invalid":
            failures = ", ".join(m.validation_failures[:2]) or "validation failed"
            out.append(f"C2PA manifest invalid ({failures}): changed after signing, its claims are no evidence")
        elif m.capture_terms and m.validation_state == "trusted":
            who = m.creator or m.signer or "a device"
            out.append(f"C2PA: captured by {who} ({m.capture_terms[0]}), {_c2pa_who(m)}:"
                       " says where the file came from, not that the scene is real")
        elif m.capture_terms:
            out.append(f"C2PA: claims capture ({m.capture_terms[0]}) by {m.creator or 'a device'}, {_c2pa_who(m)}:"
                       " unverified")
        elif not m.ai_terms and not m.ingredient_ai:
            out.append(f"C2PA: manifest by {m.claim_generator or 'an unnamed tool'}, {_c2pa_who(m)}, no AI declared")
    if prov.iptc_source_type is not None and prov.iptc_source_type.term not in marks.AI_SOURCE_TYPES:
        out.append(f"XMP: IPTC digital source type {prov.iptc_source_type.term} (unsigned, no evidence)")
    return out


def cue(prov: Provenance) -> tuple[float | None, str]:
    """The provenance expert's cue.

    Parameters
    ----------
    prov : Provenance

    Returns
    -------
    (float or None, str)
        ``(P_DECLARED_AI, "<declaration>")`` when the file declares an AI origin (the strongest
        declaration first, ``+N more`` when there are others); otherwise ``(None, reason)``:
        a capture claim, an invalid manifest or other facts, or ``"no provenance marks"``. None
        means no evidence either way and must not move the fused p_fake.
    """
    evidence, notes = _evidence(prov), _notes(prov)
    if evidence:
        reason = evidence[0] + (f" (+{len(evidence) - 1} more)" if len(evidence) > 1 else "")
        if prov.c2pa is not None and prov.c2pa.validation_state == "invalid":
            reason += "; " + notes[0]
        return P_DECLARED_AI, reason
    if notes:
        return None, "; ".join(notes)
    if prov.container is None and prov.reasons:
        return None, f"provenance not read: {prov.reasons[0]}"
    editors = [s.value for s in prov.software if s.role == "editor"]
    if editors:
        return None, f"no provenance marks (edited with {_clean(editors[0], 40)}: no evidence)"
    return None, "no provenance marks"


def prov_column(prov: Provenance) -> str:
    """Compact text for the table's ``prov`` column (at most 7 characters).

    ``AI c2pa`` / ``AI xmp`` / ``AI meta`` / ``AI wm`` (declared AI, by the strongest source),
    ``capture`` (trusted capture claim), ``c2pa!`` (invalid manifest), ``c2pa`` (other manifest),
    ``-`` (nothing found).
    """
    m = prov.c2pa
    if m is not None and m.validation_state != "invalid" and (m.ai_terms or m.ingredient_ai):
        return "AI c2pa"
    if prov.iptc_source_type is not None and prov.iptc_source_type.term in marks.AI_SOURCE_TYPES:
        return "AI xmp"
    if prov.generator_marks:
        return "AI meta"
    if prov.watermark is not None:
        return "AI wm"
    if m is not None:
        if m.validation_state == "invalid":
            return "c2pa!"
        return "capture" if m.capture_terms and m.validation_state == "trusted" else "c2pa"
    return "-"


def describe(prov: Provenance) -> list[str]:
    """One line per fact, for ``deepscan probe`` and the HTML report's provenance table."""
    lines = []
    m = prov.c2pa
    if m is not None:
        lines.append(f"C2PA manifest: {m.validation_state}"
                     + (f" ({', '.join(m.validation_failures)})" if m.validation_failures else ""))
        lines.append(f"  claim generator: {m.claim_generator or '-'}; signer: {m.signer or '-'}"
                     f" ({m.issuer or '-'}){'; signed ' + m.signed_at if m.signed_at else ''}")
        for a in m.actions:
            lines.append(f"  action: {a.action}" + (f", {a.digital_source_type}" if a.digital_source_type else "")
                         + (f", by {a.software_agent}" if a.software_agent else ""))
        for i in m.ingredients:
            lines.append(f"  ingredient: {i.title or '-'} ({i.relationship or '-'})"
                         + (f", declares {', '.join(i.digital_source_types)}" if i.digital_source_types else ""))
    if prov.iptc_source_type is not None:
        lines.append(f"IPTC digital source type: {prov.iptc_source_type.term} ({prov.iptc_source_type.where})")
    for g in prov.generator_marks:
        lines.append(f"generator metadata: {g.generator} [{g.marker}] in {g.where}: {g.excerpt}")
    for s in prov.software:
        if s.role != "generator":
            lines.append(f"{s.field}: {s.value} ({s.role}, no evidence)")
    if prov.watermark is not None:
        w = prov.watermark
        lines.append(f"watermark: {w.scheme} ({w.generator}), {w.bits_matched}/{w.n_bits} bits, "
                     f"false-match rate {w.false_match_rate:.1e}, convention {w.convention}")
    lines.extend(f"note: {r}" for r in prov.reasons)
    return lines or ["no provenance marks"]
