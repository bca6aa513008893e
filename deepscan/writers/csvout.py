"""CSV output of scan results: one row per file, flat columns.

``verdict`` is ``fake``, ``uncertain``, ``real`` or ``unknown``; ``margin`` is ``p_fake - threshold``
and ``uncertain_lo``, ``uncertain_hi`` the band of ``p_fake`` where the verdict is ``uncertain``.
"""

from __future__ import annotations

import csv
from typing import IO

from deepscan.experts.runner import CUES
from deepscan.results import MODALITIES, ScanResult
from deepscan.writers.safe import csv_cell

CSV_COLUMNS = (
    ["path", "status", "reason", "verdict", "p_fake", "threshold", "margin", "uncertain_lo", "uncertain_hi",
     "top_modality"]
    + [f"p_fake_{m}" for m in MODALITIES]
    + [f"cue_{name}" for name in CUES] + ["av_sync_lag_ms", "prov", "prov_reason", "cue_reasons"]
    + ["windows", "kind", "duration_s", "frames_with_face", "frames", "detector", "detector_sha256",
       "detector_trained_on", "detector_label"]
)


class CsvWriter:
    """Write results as CSV rows (RFC 4180), header first, flushed per row.

    Every field is quoted and every text cell goes through :func:`deepscan.writers.safe.csv_cell`:
    a file name or reason that starts with ``=``, ``+``, ``-`` or ``@`` is written with a leading
    ``'`` so that no spreadsheet runs it as a formula (OWASP CSV injection).

    Parameters
    ----------
    stream : text stream
        Opened with ``newline=""``.
    """

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS, quoting=csv.QUOTE_ALL)
        self.writer.writeheader()

    def write(self, result: ScanResult) -> None:
        """Write one result as a row."""
        d = result.to_dict()
        row = {k: d.get(k) for k in ("path", "status", "reason", "verdict", "p_fake", "threshold", "margin",
                                     "top_modality")}
        band = d.get("uncertain_band") or (None, None)
        row["uncertain_lo"], row["uncertain_hi"] = band[0], band[1]
        for m in MODALITIES:
            row[f"p_fake_{m}"] = (d["modalities"].get(m) or {}).get("p_fake")
        cues = d.get("cues") or {}
        for name in CUES:
            row[f"cue_{name}"] = (cues.get(name) or {}).get("p_fake")
        row["av_sync_lag_ms"] = (cues.get("av_sync") or {}).get("lag_ms")
        row["prov"] = (cues.get("provenance") or {}).get("column")
        row["prov_reason"] = (cues.get("provenance") or {}).get("reason")
        row["cue_reasons"] = "; ".join(f"{name}: {c['reason']}" for name, c in cues.items() if c.get("reason"))
        row.update(
            windows=len(d["windows"]),
            kind=d["media"].get("kind"),
            duration_s=d["media"].get("duration_s"),
            frames_with_face=d["faces"].get("frames_with_face"),
            frames=d["faces"].get("frames"),
            detector=d["detector"].get("name"),
            detector_sha256=d["detector"].get("sha256"),
            detector_trained_on=d["detector"].get("trained_on"),
            detector_label=d["detector"].get("label"),
        )
        self.writer.writerow({k: csv_cell(v) for k, v in row.items()})
        self.stream.flush()
