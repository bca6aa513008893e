"""The detector's dimensions and hyper-parameters, carried by every checkpoint.

:class:`DetectorConfig` plays the part of whisper's ``ModelDimensions``: a checkpoint stores it as
JSON and :func:`deepscan.model.checkpoint.load_detector` rebuilds the model from it, so a
checkpoint never needs pickled code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

MODALITIES = ("image", "audio", "video")  # order of inputs, presence flags and fused features

IMAGE_DIM = 512  # CLIP ViT-B/32 image embedding width
AUDIO_DIM = 768  # wav2vec2-base hidden width
VIDEO_DIM = 512  # frame-pooling segment token width
SEED_CROSS_PAIRS = (("image", "audio"), ("image", "video"), ("audio", "video"))


@dataclass(frozen=True)
class DetectorConfig:
    """Dimensions and hyper-parameters of :class:`~deepscan.model.detector.CrossModalDetector`.

    Parameters
    ----------
    image_dim, audio_dim, video_dim : int
        Feature width of each modality's input tokens (must equal the encoders' output widths).
    d_model : int
        Shared width every modality is projected to.
    n_heads : int
        Attention heads; must divide ``d_model``.
    n_self_layers : int
        Self-attention blocks per modality (0 disables self-attention).
    ff_dim : int
        Hidden width of each block's feed-forward network.
    cross_pairs : tuple of (str, str)
        ``(query, key)`` modality pairs; for each, the query modality's tokens attend to the key
        modality's tokens. The default is the seed's image->audio, image->video, audio->video.
    dropout : float
        Dropout probability in attention, feed-forward and classifier layers, in ``[0, 1)``.
    max_time_s : float
        Longest token time in seconds the time encoding separates; its slowest sinusoid has a
        period of ``2 * max_time_s``.
    min_period_s : float
        Period in seconds of the time encoding's fastest sinusoid (0.04 s is two wav2vec2 frames).
    n_classes : int
        Output logits (2: index 0 = real, index 1 = fake).
    modality_dropout : float
        Training only: probability of dropping each present modality of a sample, in ``[0, 1)``;
        at least one present modality of each sample is always kept.
    sync_channels : int
        Learned channels of the audio-visual synchrony features
        (:class:`~deepscan.model.sync.SyncCorrelation`, after SyncNet); 0 (the default, and what
        checkpoints written before it existed load as) disables them.
    sync_max_lag_s, sync_lag_step_s : float
        Lag search of the synchrony features in seconds.
    sync_kernel_s : float
        Half-width in seconds of the kernel resampling audio tokens onto frame times (0.08 s, the
        spacing of the 12.5 Hz audio tokens).
    fuse_modality_logits : bool
        Add each present modality head's fake-vs-real log-odds to the fused log-odds, so that a
        manipulation one modality's head sees counts in the verdict (evidence adds up, as in a
        product of experts, Hinton 2002); False (the default, and what older checkpoints load as)
        keeps the fused head alone.
    modality_stats_pooling : bool
        Pool each modality's tokens into mean and standard deviation for its head (statistics
        pooling, Snyder et al., "X-vectors", ICASSP 2018), so that a head sees how tokens vary over
        time, not only their average; False (the default) pools the mean alone.
    standardise_inputs : bool
        Standardise each input feature with a per-dimension mean and standard deviation measured on
        the training tokens and stored in the checkpoint (:class:`~deepscan.model.detector.FeatureStandardiser`),
        as a ``StandardScaler`` would; False (the default, and what older checkpoints load as) feeds
        the features as the encoders give them.

    Raises
    ------
    ValueError
        When a value is out of range or a cross pair names an unknown modality.
    """

    image_dim: int = IMAGE_DIM
    audio_dim: int = AUDIO_DIM
    video_dim: int = VIDEO_DIM
    d_model: int = 256
    n_heads: int = 4
    n_self_layers: int = 1
    ff_dim: int = 256
    cross_pairs: tuple[tuple[str, str], ...] = SEED_CROSS_PAIRS
    dropout: float = 0.1
    max_time_s: float = 8.0
    min_period_s: float = 0.04
    n_classes: int = 2
    modality_dropout: float = 0.0
    sync_channels: int = 0
    sync_max_lag_s: float = 1.0
    sync_lag_step_s: float = 0.125
    sync_kernel_s: float = 0.08
    fuse_modality_logits: bool = False
    modality_stats_pooling: bool = False
    standardise_inputs: bool = False

    def __post_init__(self):
        # JSON gives lists; store tuples so the config stays hashable and comparable.
        pairs = tuple(tuple(pair) for pair in self.cross_pairs)
        object.__setattr__(self, "cross_pairs", pairs)
        for name in ("image_dim", "audio_dim", "video_dim", "d_model", "n_heads", "ff_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"DetectorConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"DetectorConfig.d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.d_model % 2:
            raise ValueError(f"DetectorConfig.d_model must be even for the time encoding, got {self.d_model}")
        if not isinstance(self.n_self_layers, int) or self.n_self_layers < 0:
            raise ValueError(f"DetectorConfig.n_self_layers must be >= 0, got {self.n_self_layers!r}")
        if not isinstance(self.n_classes, int) or self.n_classes < 2:
            raise ValueError(f"DetectorConfig.n_classes must be an integer >= 2, got {self.n_classes!r}")
        for name in ("dropout", "modality_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"DetectorConfig.{name} must be in [0, 1), got {value!r}")
        if not 0.0 < self.min_period_s < 2 * self.max_time_s:
            raise ValueError(
                "DetectorConfig needs 0 < min_period_s < 2 * max_time_s, got "
                f"min_period_s={self.min_period_s!r}, max_time_s={self.max_time_s!r}"
            )
        if not isinstance(self.sync_channels, int) or isinstance(self.sync_channels, bool) or self.sync_channels < 0:
            raise ValueError(f"DetectorConfig.sync_channels must be an integer >= 0, got {self.sync_channels!r}")
        for name in ("sync_max_lag_s", "sync_lag_step_s", "sync_kernel_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DetectorConfig.{name} must be > 0 seconds, got {getattr(self, name)!r}")
        if self.sync_lag_step_s > self.sync_max_lag_s:
            raise ValueError("DetectorConfig.sync_lag_step_s must not exceed sync_max_lag_s")
        seen = set()
        for pair in pairs:
            if len(pair) != 2 or any(m not in MODALITIES for m in pair) or pair[0] == pair[1]:
                raise ValueError(
                    f"DetectorConfig.cross_pairs entry {pair!r} must be two different modalities "
                    f"out of {MODALITIES}"
                )
            if pair in seen:
                raise ValueError(f"DetectorConfig.cross_pairs lists {pair!r} twice")
            seen.add(pair)

    @property
    def input_dims(self) -> dict[str, int]:
        """Input feature width per modality, e.g. ``{"image": 512, "audio": 768, "video": 512}``."""
        return {m: getattr(self, f"{m}_dim") for m in MODALITIES}

    def to_dict(self) -> dict:
        """Return the config as a JSON-ready dict (tuples become lists).

        Returns
        -------
        dict
            Field name -> value; :meth:`from_dict` inverts it.
        """
        data = dataclasses.asdict(self)
        data["cross_pairs"] = [list(pair) for pair in self.cross_pairs]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "DetectorConfig":
        """Build a config from :meth:`to_dict`'s output; absent keys take their defaults.

        Parameters
        ----------
        data : dict
            Field name -> value, as read from JSON.

        Returns
        -------
        DetectorConfig

        Raises
        ------
        ValueError
            When ``data`` is not a dict, holds keys that are not config fields (e.g. a config
            written by a newer deepscan), or holds an invalid value.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a detector config must be a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown detector config keys {unknown}; known keys are {sorted(known)} "
                "(was the config written by a newer deepscan?)"
            )
        try:
            return cls(**data)
        except TypeError as error:
            raise ValueError(f"invalid detector config: {error}") from error
