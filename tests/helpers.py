"""Test helpers: a demo detector checkpoint matching the debug encoders."""

from __future__ import annotations

from pathlib import Path

import torch

from deepscan.media import VISUAL_FPS, WINDOW_SECONDS
from deepscan.model import CrossModalDetector, DetectorConfig, save_detector


def debug_encoder_ids(dims=None) -> dict:
    """What the debug preset records for each modality: id ``debug``, real dims."""
    dims = dims or {"image": 512, "audio": 768, "video": 512}
    return {m: {"id": "debug", "revision": None, "dim": d} for m, d in dims.items()}


def make_detector(path: Path, trained_on: str = "synthetic", seed: int = 0, threshold: float = 0.5,
                  config: DetectorConfig | None = None, encoders: dict | None = None) -> Path:
    """Write a randomly initialised detector checkpoint for the debug encoders."""
    torch.manual_seed(seed)
    model = CrossModalDetector(config or DetectorConfig())
    provenance = {} if trained_on == "untrained" else {"trained_on": trained_on, "encoders": "debug"}
    save_detector(path, model, encoders=encoders or debug_encoder_ids(),
                  sampling={"window_s": WINDOW_SECONDS, "visual_fps": VISUAL_FPS}, threshold=threshold,
                  provenance=provenance)
    return path
