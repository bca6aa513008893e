"""CSV output of scan results: one row per file, flat columns."""

from __future__ import annotations

import csv
from typing import IO

from deepscan.results import MODALITIES, ScanResult

CSV_COLUMNS = (
    ["path", "status", "reason", "verdict", "p_fake", "threshold", "top_modality"]
    + [f"p_fake_{m}" for m in MODALITIES]
    + ["windows", "kind", "duration_s", "frames_with_face", "frames", "detector", "detector_sha256",
       "detector_trained_on", "detector_label"]
)


class CsvWriter:
    """Write results as CSV rows (RFC 4180), header first, flushed per row.

    Parameters
    ----------
    stream : text stream
        Opened with ``newline=""``.
    """

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS)
        self.writer.writeheader()

    def write(self, result: ScanResult) -> None:
        """Write one result as a row."""
        d = result.to_dict()
        row = {k: d.get(k) for k in ("path", "status", "reason", "verdict", "p_fake", "threshold", "top_modality")}
        for m in MODALITIES:
            row[f"p_fake_{m}"] = (d["modalities"].get(m) or {}).get("p_fake")
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
        self.writer.writerow(row)
        self.stream.flush()
