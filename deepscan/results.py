"""Per-file scan results: window scores aggregated into one verdict, with the reasons behind it.

A :class:`ScanResult` is what every writer renders (table, JSON, JSON Lines, CSV, JUnit, HTML). Its
``to_dict()`` is the stable, documented record: ``path``, ``status``, ``reason``, ``verdict``,
``p_fake``, ``threshold``, ``margin``, ``uncertain_band``, ``modalities``, ``cues``, ``windows``,
``media``, ``faces``, ``detector``.

Verdicts (:func:`decide`): ``fake`` above the uncertain band around the threshold, ``real`` below it
("no sign of manipulation found by these cues", not a proof that a file is authentic), ``uncertain``
within it (the evidence is too weak to call either way), ``unknown`` where no cue applies.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

MODALITIES = ("image", "audio", "video")

STATUS_OK = "ok"
STATUS_ERROR = "error"

VERDICT_REAL = "real"
VERDICT_FAKE = "fake"
VERDICT_UNKNOWN = "unknown"
VERDICT_UNCERTAIN = "uncertain"
VERDICTS = (VERDICT_FAKE, VERDICT_UNCERTAIN, VERDICT_REAL, VERDICT_UNKNOWN)
# What each verdict means, in the words a person reads (the table's closing lines, the README).
VERDICT_MEANINGS = {
    VERDICT_FAKE: "signs of manipulation found by these cues",
    VERDICT_UNCERTAIN: "too close to its threshold to call either way",
    VERDICT_REAL: "no sign of manipulation found by these cues (not a proof that the file is authentic)",
    VERDICT_UNKNOWN: "no cue applies, or the detector cannot judge this kind of file",
}
# Half-width of the narrowest uncertain band: a result within this of its threshold is never a plain
# ``real`` or ``fake``, whatever the detector's checkpoint records.
MIN_UNCERTAIN_MARGIN = 0.05


@dataclass
class WindowScore:
    """The detector's score of one window.

    Attributes
    ----------
    index : int
        Window number within the file, from 0.
    start_s, end_s : float
        Window bounds in seconds.
    p_fake : float
        Calibrated probability that the window is manipulated, in [0, 1].
    logit : float
        Calibrated log-odds of fake vs real (``log p_fake - log (1 - p_fake)``).
    modalities : dict[str, float or None]
        Per-modality ``p_fake`` from the detector's modality heads; ``None`` where absent.
    frames : int
        Frames sampled in the window.
    frames_with_face : int
        Of those, frames where a face was found.
    cues : dict
        Cue name (``aasist``, ``meso4``, ``av_sync``, ...) -> ``{"p_fake": float or None, "reason":
        str or None, ...}``: each expert's own score of the window, or why it does not apply.
    speech : float or None
        Fraction of the window's audio with speech (silero-vad); ``None`` without audio.
    """

    index: int
    start_s: float
    end_s: float
    p_fake: float
    logit: float
    modalities: dict = field(default_factory=dict)
    frames: int = 0
    frames_with_face: int = 0
    cues: dict = field(default_factory=dict)
    speech: float | None = None


@dataclass
class ScanResult:
    """Everything deepscan says about one file.

    Attributes
    ----------
    path : str
        The file as given (or as found inside a given directory).
    status : str
        ``"ok"`` when the file was scanned, ``"error"`` when it could not be.
    reason : str or None
        Why the file could not be scanned or judged (e.g. ``"empty file"``, ``"no face"``).
    verdict : str or None
        ``"fake"``, ``"uncertain"``, ``"real"`` or ``"unknown"`` (with ``reason``); ``None`` for
        ``status="error"`` (see :func:`decide`).
    p_fake : float or None
        File-level calibrated probability of manipulation (see :func:`aggregate_windows`).
    threshold : float or None
        Decision threshold on ``p_fake`` stored in the detector checkpoint.
    margin : float or None
        ``p_fake - threshold``, signed (positive: on the fake side); filled in from ``p_fake`` and
        ``threshold`` when not given, ``None`` without both.
    uncertain_band : list of float or None
        ``[lo, hi]`` on ``p_fake``: where the verdict is ``"uncertain"`` (:func:`uncertain_band`), set
        whenever the detector gives ``threshold``.
    modalities : dict
        Per modality (``image``, ``audio``, ``video``): ``{"present": bool, "p_fake": float|None,
        "reason": str|None}``.
    top_modality : str or None
        The present modality with the highest ``p_fake``: the one that gave it away.
    windows : list of WindowScore
        Scores per window, in time order.
    media : dict
        The probe facts (:class:`deepscan.media.MediaInfo`).
    faces : dict
        ``{"frames": int, "frames_with_face": int, "max_faces": int, "no_face": bool, "detector": str}``.
    cues : dict
        Per cue (``aasist``, ``meso4``, ``av_sync``, ...): ``{"p_fake": float or None, "reason": str or
        None, "windows": int, "expert", "weights_sha256", "trained_on", ...}``; the file-level score of
        each expert (mean over the windows where it applies) with its provenance, or why it does not
        apply (``"no face"``, ``"no speech"``, ``"no audio stream"``, ``"weights not available"``).
    detector : dict
        ``{"name", "sha256", "trained_on", "synthetic": bool, "label"}``.
    elapsed_s : float
        Wall-clock seconds from the file's first decoded message (its probe, a cache hit or its
        error) to its result; decoding in a worker overlaps the scoring of the files before it.
    thumbnails : list of dict
        Face crops of the most suspicious windows: ``{"window", "start_s", "end_s", "p_fake",
        "jpeg_base64"}`` (112x112 JPEG), highest ``p_fake`` first.
    """

    path: str
    status: str
    reason: str | None = None
    verdict: str | None = None
    p_fake: float | None = None
    threshold: float | None = None
    margin: float | None = None
    uncertain_band: list | None = None
    modalities: dict = field(default_factory=dict)
    top_modality: str | None = None
    windows: list = field(default_factory=list)
    media: dict = field(default_factory=dict)
    faces: dict = field(default_factory=dict)
    detector: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    thumbnails: list = field(default_factory=list)
    cues: dict = field(default_factory=dict)

    @classmethod
    def error(cls, path: str, reason: str, message: str | None = None, **facts) -> "ScanResult":
        """A result for a file that could not be scanned.

        Parameters
        ----------
        path : str
            The file.
        reason : str
            Short stable reason (an error class's ``reason``).
        message : str, optional
            Longer explanation, stored under ``media["error"]``.
        **facts
            Other fields to set (``media``, ``detector``, ...).
        """
        result = cls(path=path, status=STATUS_ERROR, reason=reason, **facts)
        if message:
            result.media = {**result.media, "error": message}
        return result

    @property
    def is_fake(self) -> bool:
        """True when the verdict is ``"fake"``."""
        return self.verdict == VERDICT_FAKE

    @property
    def is_uncertain(self) -> bool:
        """True when the verdict is ``"uncertain"``."""
        return self.verdict == VERDICT_UNCERTAIN

    def __post_init__(self):
        if self.margin is None:
            self.margin = self.margin_of(self.p_fake, self.threshold)

    @staticmethod
    def margin_of(p_fake, threshold) -> float | None:
        """``p_fake - threshold``; ``None`` unless both are numbers."""
        if not isinstance(p_fake, (int, float)) or not isinstance(threshold, (int, float)):
            return None
        return float(p_fake) - float(threshold)

    def to_dict(self) -> dict:
        """The result as a JSON-ready dict (floats rounded to 6 decimals, NaN as ``None``).

        ``margin`` is filled in from ``p_fake`` and ``threshold`` where it is missing.
        """
        record = asdict(self)
        if record["margin"] is None:
            record["margin"] = self.margin_of(self.p_fake, self.threshold)
        return _clean(record)

    @classmethod
    def from_dict(cls, data: dict) -> "ScanResult":
        """Rebuild a result written by :meth:`to_dict` (unknown keys are ignored).

        Raises
        ------
        KeyError
            When ``path`` or ``status`` is missing.
        """
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["path"], kwargs["status"] = data["path"], data["status"]
        kwargs["windows"] = [WindowScore(**w) for w in data.get("windows") or []]
        return cls(**kwargs)


def _clean(value):
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def logit_to_p(logit: float) -> float:
    """Logistic function, numerically safe: ``1 / (1 + exp(-logit))``."""
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    z = math.exp(logit)
    return z / (1.0 + z)


def aggregate_windows(logits: list[float]) -> float:
    """File-level log-odds from window log-odds: their mean.

    The mean of window logits (equivalently the geometric mean of odds) treats every window as
    evidence of equal weight, so one noisy window does not flip a long file; the per-window
    scores stay in the result to show *when* a file looks manipulated. Evaluation and threshold
    fitting use this same rule, so the threshold is calibrated for it.

    Parameters
    ----------
    logits : list of float
        Calibrated fake-vs-real log-odds per window, at least one.

    Returns
    -------
    float
        File-level log-odds.

    Raises
    ------
    ValueError
        When ``logits`` is empty.
    """
    if not logits:
        raise ValueError("aggregate_windows needs at least one window")
    return sum(logits) / len(logits)


def uncertain_band(threshold: float, band=None) -> tuple[float, float]:
    """The interval of ``p_fake`` around a threshold where the verdict is ``"uncertain"``.

    Parameters
    ----------
    threshold : float
        The decision threshold.
    band : sequence of two floats, optional
        ``(lo, hi)`` as a detector checkpoint records it (set from out-of-fold data); ``None`` for a
        checkpoint that records none.

    Returns
    -------
    (float, float)
        ``(lo, hi)``, never narrower than :data:`MIN_UNCERTAIN_MARGIN` on either side of
        ``threshold``, within [0, 1].
    """
    lo = threshold - MIN_UNCERTAIN_MARGIN
    hi = threshold + MIN_UNCERTAIN_MARGIN
    if band is not None:
        lo, hi = min(lo, float(band[0])), max(hi, float(band[1]))
    return max(0.0, lo), min(1.0, hi)


def decide(p_fake: float, threshold: float, band=None) -> str:
    """The verdict of a ``p_fake``: ``"fake"`` above the uncertain band, ``"real"`` below it, else ``"uncertain"``.

    Parameters
    ----------
    p_fake : float
        The file's calibrated probability of manipulation.
    threshold : float
        Its media kind's threshold.
    band : sequence of two floats, optional
        The checkpoint's band (:func:`uncertain_band` widens it to at least
        :data:`MIN_UNCERTAIN_MARGIN` each side; ``None``: that minimum).

    Returns
    -------
    str
        ``"fake"`` when ``p_fake > hi``, ``"real"`` when ``p_fake < lo``, ``"uncertain"`` when
        ``lo <= p_fake <= hi``. ``"real"`` means no sign of manipulation found by these cues.
    """
    lo, hi = uncertain_band(threshold, band)
    if p_fake > hi:
        return VERDICT_FAKE
    if p_fake < lo:
        return VERDICT_REAL
    return VERDICT_UNCERTAIN


def summarize(results) -> dict:
    """Counts over results: ``files``, ``fake``, ``uncertain``, ``real``, ``unknown``, ``errors``.

    Parameters
    ----------
    results : iterable of ScanResult

    Returns
    -------
    dict
    """
    counts = {"files": 0, "fake": 0, "uncertain": 0, "real": 0, "unknown": 0, "errors": 0}
    for result in results:
        counts["files"] += 1
        if result.status == STATUS_ERROR:
            counts["errors"] += 1
        elif result.verdict in VERDICTS:
            counts[result.verdict] += 1
    return counts


def counts_line(counts: dict) -> str:
    """``summarize``'s counts as a sentence: ``"1 file, 0 fake, 0 uncertain, 1 real, 0 unknown, 0 errors"``.

    Parameters
    ----------
    counts : dict
        :func:`summarize`'s result.

    Returns
    -------
    str
    """
    nouns = {"files": ("file", "files"), "errors": ("error", "errors")}
    return ", ".join(f"{v} {nouns[k][v != 1] if k in nouns else k}" for k, v in counts.items())
