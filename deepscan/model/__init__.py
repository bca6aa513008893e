"""The cross-modal detector over frozen encoder features, and its safetensors checkpoints."""

from .attention import CrossModalAttention, MultiHeadAttention, SelfAttentionBlock
from .checkpoint import (
    FORMAT_VERSION,
    DetectorCheckpoint,
    check_encoders,
    load_detector,
    read_metadata,
    save_detector,
    with_threshold,
)
from .config import MODALITIES, DetectorConfig
from .detector import CrossModalDetector, DetectorOutput, FeatureStandardiser, TimeEncoding, masked_mean

__all__ = [
    "MODALITIES",
    "FORMAT_VERSION",
    "DetectorConfig",
    "CrossModalAttention",
    "MultiHeadAttention",
    "SelfAttentionBlock",
    "TimeEncoding",
    "masked_mean",
    "CrossModalDetector",
    "DetectorOutput",
    "FeatureStandardiser",
    "DetectorCheckpoint",
    "save_detector",
    "load_detector",
    "read_metadata",
    "with_threshold",
    "check_encoders",
]
