"""Known provenance markers: what generators write into the files they save, and who else writes.

Data only, used by :mod:`deepscan.experts.provenance`. Each :class:`Marker` names the generator
it points to, the metadata fields it is looked for in, the pattern a value must match, and the
page (a source file of the tool, or a parser that documents it) where the field is written.

Field names are lower case, prefixed by where they live:

* ``png:<keyword>``: a PNG ``tEXt``, ``zTXt`` or ``iTXt`` chunk (keyword lower-cased);
* ``exif:software``, ``exif:imagedescription``, ``exif:make``, ``exif:model``, ``exif:artist``,
  ``exif:usercomment``: EXIF tags 0x0131, 0x010E, 0x010F, 0x0110, 0x013B and 0x9286 (JPEG APP1,
  PNG ``eXIf``, WebP ``EXIF``, TIFF);
* ``xmp:creatortool``: ``xmp:CreatorTool`` of an XMP packet;
* ``jpeg:comment``: a JPEG COM segment;
* ``tag:<key>``: a container or stream tag of an audio or video file as FFmpeg (PyAV) reports it.

A marker that editors also write (Photoshop, GIMP, phone photo apps: :data:`EDITOR_SOFTWARE`) is
no evidence: retouching a photograph does not make it generated. Camera makes and models are
reported as facts, never as evidence (they are unsigned and trivially copied).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Marker",
    "MARKERS",
    "EDITOR_SOFTWARE",
    "IPTC_SOURCE_TYPE_BASE",
    "IPTC_SOURCE_TYPES",
    "AI_SOURCE_TYPES",
    "CAPTURE_SOURCE_TYPES",
]


@dataclass(frozen=True)
class Marker:
    """One way a generator labels its output.

    Attributes
    ----------
    name : str
        Stable identifier (``"a1111-parameters"``), reported with every match.
    generator : str
        The tool (and through it the model family) the marker points to.
    fields : tuple of str
        Field names (module docstring) the marker is looked for in.
    pattern : str or None
        Regular expression a value must contain (``re.search``); None: the field's presence
        (non-empty) suffices, for field names only a generator writes.
    documented_at : str or None
        The page that writes or documents the field; None for a marker that is only the
        generator's name in a software field.
    """

    name: str
    generator: str
    fields: tuple[str, ...]
    pattern: str | None
    documented_at: str | None

    def matches(self, value: str) -> bool:
        """Whether a field value carries this marker (only the first 64 KiB are searched)."""
        if self.pattern is None:
            return bool(value.strip())
        return re.search(self.pattern, value[:65536]) is not None


_A1111 = "AUTOMATIC1111 Stable Diffusion web UI (or a fork: Forge, SD.Next)"
_COMFY = "ComfyUI"
_INVOKE = "InvokeAI"
_A1111_PAGE = "https://github.com/AUTOMATIC1111/stable-diffusion-webui/blob/master/modules/images.py"
_COMFY_PNG_PAGE = "https://github.com/comfyanonymous/ComfyUI/blob/master/nodes.py"
_COMFY_WEBP_PAGE = "https://github.com/comfyanonymous/ComfyUI/blob/master/comfy_extras/nodes_images.py"
_COMFY_AV_PAGE = "https://github.com/comfyanonymous/ComfyUI/blob/master/comfy_extras/nodes_audio.py"
_INVOKE_PAGE = "https://github.com/invoke-ai/InvokeAI/blob/main/invokeai/app/services/image_files/image_files_disk.py"
_INVOKE_LEGACY_PAGE = "https://github.com/d3x-at/sd-parsers/tree/master/src/sd_parsers/parsers/_invokeai"

# A1111's infotext: "<prompt>\nNegative prompt: ...\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, ..."
_A1111_INFOTEXT = r"\bSteps: \d+, [^\n]*\bSeed: -?\d+"
# Generator names that only a generator (or its maker's service) puts into a software field.
_GENERATOR_NAMES = (
    r"\b(?:DALL[\u00b7\-\u2027. ]?E|OpenAI Labs|Midjourney|Stable Diffusion|NovelAI|Adobe Firefly|"
    r"Imagen|Ideogram|Leonardo\.Ai|ComfyUI|InvokeAI|Fooocus)\b"
)
_SOFTWARE_FIELDS = ("exif:software", "xmp:creatortool", "png:software", "tag:software", "tag:encoded_by",
                    "tag:encoder", "tag:creation_tool")
_DESCRIPTION_FIELDS = ("exif:imagedescription", "exif:usercomment", "png:description", "png:comment",
                       "png:title", "jpeg:comment", "tag:comment", "tag:description")

MARKERS: tuple[Marker, ...] = (
    Marker("a1111-parameters", _A1111, ("png:parameters", "exif:usercomment", "tag:comment", "tag:parameters"),
           _A1111_INFOTEXT, _A1111_PAGE),
    Marker("comfyui-prompt", _COMFY, ("png:prompt", "tag:prompt"), r'"class_type"\s*:', _COMFY_PNG_PAGE),
    Marker("comfyui-workflow", _COMFY, ("png:workflow", "tag:workflow"), r'"nodes"\s*:\s*\[', _COMFY_PNG_PAGE),
    Marker("comfyui-webp-exif", _COMFY, ("exif:model", "exif:make", "exif:imagedescription"),
           r"^\s*(?:prompt|workflow):\s*\{", _COMFY_WEBP_PAGE),
    Marker("comfyui-av-tags", _COMFY, ("tag:prompt", "tag:workflow"), r"^\s*\{", _COMFY_AV_PAGE),
    Marker("invokeai-metadata", _INVOKE, ("png:invokeai_metadata", "png:invokeai_graph", "png:invokeai_workflow"),
           r"^\s*\{", _INVOKE_PAGE),
    Marker("invokeai-sd-metadata", _INVOKE + " 2.x", ("png:sd-metadata",), r"^\s*\{", _INVOKE_LEGACY_PAGE),
    Marker("invokeai-dream", _INVOKE + " 2.x (dream command line)", ("png:dream",), r"\s-[sSWHCA]\s*\S",
           _INVOKE_LEGACY_PAGE),
    Marker("novelai-software", "NovelAI", ("png:software",), r"^\s*NovelAI\s*$",
           "https://github.com/d3x-at/sd-parsers/blob/master/src/sd_parsers/parsers/_novelai.py"),
    Marker("fooocus-scheme", "Fooocus", ("png:fooocus_scheme",), None,
           "https://github.com/lllyasviel/Fooocus/blob/main/modules/meta_parser.py"),
    Marker("artbot-software", "ArtBot (Stable Diffusion on the AI Horde)", ("exif:software",), r"^\s*ArtBot\b",
           "https://github.com/daveschumaker/artbot-for-stable-diffusion/pull/147"),
    Marker("generator-name", "a generator named in a software field", _SOFTWARE_FIELDS, _GENERATOR_NAMES, None),
    Marker("made-with-generator", "a generator named in a description", _DESCRIPTION_FIELDS,
           r"(?i)^\s*(?:made|created|generated|imagined) (?:with|by|using) (?:OpenAI|DALL[\u00b7\-]?E|Midjourney|"
           r"Stable Diffusion|Adobe Firefly|Google AI|Imagen|Meta AI|NovelAI)\b", None),
)
"""The table of known markers; a field may carry several (the first match per marker is kept)."""

EDITOR_SOFTWARE = re.compile(
    r"(?i)\b(?:Adobe Photoshop|Photoshop|Lightroom|GIMP|Paint\.NET|Affinity|Capture One|Pixelmator|Snapseed|"
    r"darktable|RawTherapee|ImageMagick|GraphicsMagick|PhotoScape|Photos \d|Windows Photo Editor|Picasa|ACDSee|"
    r"Luminar|Corel|PaintShop|Canva|Preview|digiKam|Photopea|Krita|Inkscape|ffmpeg|Lavf|Lavc|HandBrake|"
    r"Premiere|Final Cut|DaVinci Resolve|Audacity|iMovie|CapCut)\b"
)
"""Software that edits or converts media: its name in a file is no evidence of generation."""

IPTC_SOURCE_TYPE_BASE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
"""The IPTC Digital Source Type NewsCodes vocabulary (https://cv.iptc.org/newscodes/digitalsourcetype/)."""

IPTC_SOURCE_TYPES: dict[str, str] = {
    "digitalCapture": "original digital capture of a real-life event",
    "computationalCapture": "computational capture (multi-frame processing) of a real-life event",
    "negativeFilm": "digitised from a negative on film",
    "positiveFilm": "digitised from a positive on film",
    "print": "digitised from a print on non-transparent medium",
    "screenCapture": "screen capture",
    "virtualRecording": "recording of a virtual event",
    "humanEdits": "human-edited media",
    "minorHumanEdits": "minor human edits",
    "compositeCapture": "composite of captured elements",
    "algorithmicallyEnhanced": "algorithmically enhanced",
    "digitalCreation": "created by a human using digital tools",
    "digitalArt": "digital art",
    "dataDrivenMedia": "data-driven media",
    "composite": "composite",
    "compositeSynthetic": "composite including synthetic elements",
    "algorithmicMedia": "created by an algorithm without sampled training data",
    "trainedAlgorithmicMedia": "created by a model trained on sampled content (generative AI)",
    "compositeWithTrainedAlgorithmicMedia": "composite including generative-AI elements",
}
"""Terms of the IPTC vocabulary and what they declare."""

AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})
"""Source types that declare generative-AI content: strong evidence of a fake whoever wrote them."""

CAPTURE_SOURCE_TYPES = frozenset({"digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm",
                                  "print"})
"""Source types that claim a capture of the real world (never a proof of authenticity)."""
