"""AASIST and AASIST-L: spoofed-speech detectors on raw 16 kHz waveforms.

A clean-room port of the model of Jung et al., "AASIST: Audio Anti-Spoofing using Integrated
Spectro-Temporal Graph Attention Networks", ICASSP 2022 (arXiv:2110.01200), written from the paper
and from the state-dict key lists of the released weights, so that those weights (``AASIST.pth``,
297,866 parameters; ``AASIST-L.pth``, 85,306 parameters; trained on ASVspoof 2019 LA) load with
``strict=True``. No upstream code was used.

Pipeline of one 4.04 s window (64,600 samples at 16 kHz, raw amplitude in [-1, 1])::

    sinc front end   70 fixed band-pass filters, 129 taps  -> |.| -> max-pool 3x3 -> BN -> SELU
                     (B, 64600) -> (B, 1, 23, 21490)         frequency x time "spectrogram"
    encoder          6 residual blocks, max-pool (1, 3) each  -> (B, C, 23, 29)
    graphs           spectral nodes: max_t |e| + pos_S  (B, 23, C) -> GAT -> graph pool
                     temporal nodes: max_f |e|          (B, 29, C) -> GAT -> graph pool
    HS-GAL           two branches of two heterogeneous stacking graph attention layers, each with
                     a learned master node; element-wise maximum of the branches
    readout          [max|T|, mean T, max|S|, mean S, master]  (B, 5 * gat_dims[1]) -> Linear -> 2

Output logits: **index 1 = bona fide, index 0 = spoof**, as the released weights were trained.
Do not peak-normalise the input and do not trim silence: the ASVspoof 2019 training data carries a
silence shortcut, and either operation pushes every file, real or fake, towards "spoof".

These are narrow detectors (ASVspoof 2019 LA: TTS and VC systems of 2019); they do not, for
instance, separate a neural-vocoder copy of LJSpeech from the original. Their score is evidence to
be fused and calibrated, not a verdict.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelLoadingError
from . import mono_waveform, tile_to

__all__ = [
    "SAMPLE_RATE",
    "AASIST_SAMPLES",
    "MIN_TAIL_SAMPLES",
    "SPOOF_INDEX",
    "BONAFIDE_INDEX",
    "AASISTConfig",
    "CONFIGS",
    "SincFrontEnd",
    "sinc_filters",
    "ResidualBlock",
    "GraphAttention",
    "HeteroGraphAttention",
    "GraphPool",
    "AASIST",
    "load_aasist",
    "window_input",
    "windows_of",
    "p_spoof",
]

SAMPLE_RATE = 16_000  # Hz, the rate the released weights were trained at
AASIST_SAMPLES = 64_600  # samples per window, 4.04 s at 16 kHz (the ASVspoof 2019 training crop)
MIN_TAIL_SAMPLES = AASIST_SAMPLES // 2  # a last partial window of >= 2.02 s is scored (tiled); shorter is dropped
SPOOF_INDEX = 0  # logit index of the "spoof" class in the released weights
BONAFIDE_INDEX = 1  # logit index of the "bona fide" class
NFFT = 512  # FFT grid on which the mel band edges of the sinc filters are laid out
BN_EPS = 1e-5  # PyTorch's BatchNorm default, as trained
SELU_ALPHA = 1.6732632423543772848170429916717  # the constants of torch.nn.functional.selu
SELU_SCALE = 1.0507009873554804934193349852946
TILE_ELEMENTS = 1 << 19  # float32 values of one block's conv1 output per time tile (2 MiB) in the fast path


@dataclass(frozen=True)
class AASISTConfig:
    """Hyper-parameters of an AASIST network (those of the released weights in :data:`CONFIGS`).

    Attributes
    ----------
    name : str
        ``"AASIST"`` or ``"AASIST-L"``.
    first_conv : int
        Sinc filter length as configured (128); made odd (129 taps) so the filters are symmetric.
    sinc_channels : int
        Number of fixed sinc band-pass filters (70).
    filts : tuple of (int, int)
        ``(in_channels, out_channels)`` of the 6 residual blocks of the encoder.
    gat_dims : (int, int)
        Node dimension after the homogeneous graph attention layers, and after the heterogeneous
        (HS-GAL) layers; the embedding has ``5 * gat_dims[1]`` values.
    pool_ratios : (float, float, float, float)
        Fractions of nodes kept by the graph pools: spectral, temporal, then those after the first
        HS-GAL layer of each branch (index 2; index 3 is in the released configs but unused).
    temperatures : (float, float, float, float)
        Softmax temperatures of the attention maps: spectral GAT, temporal GAT, first HS-GAL layers,
        second HS-GAL layers.
    n_spectral_nodes : int
        Number of spectral nodes, ``sinc_channels // 3`` after the 3x3 max-pool (23); size of
        ``pos_S``.
    sample_rate : int
        Hz.
    """

    name: str
    filts: tuple[tuple[int, int], ...]
    gat_dims: tuple[int, int]
    pool_ratios: tuple[float, float, float, float]
    temperatures: tuple[float, float, float, float] = (2.0, 2.0, 100.0, 100.0)
    first_conv: int = 128
    sinc_channels: int = 70
    n_spectral_nodes: int = 23
    sample_rate: int = SAMPLE_RATE

    @property
    def sinc_taps(self) -> int:
        """int: taps of each sinc filter, ``first_conv`` made odd (129)."""
        return self.first_conv if self.first_conv % 2 else self.first_conv + 1

    @property
    def embedding_dim(self) -> int:
        """int: length of the vector fed to ``out_layer``, ``5 * gat_dims[1]``."""
        return 5 * self.gat_dims[1]


CONFIGS: dict[str, AASISTConfig] = {
    "AASIST": AASISTConfig(
        name="AASIST",
        filts=((1, 32), (32, 32), (32, 64), (64, 64), (64, 64), (64, 64)),
        gat_dims=(64, 32),
        pool_ratios=(0.5, 0.7, 0.5, 0.5),
    ),
    "AASIST-L": AASISTConfig(
        name="AASIST-L",
        filts=((1, 32), (32, 32), (32, 24), (24, 24), (24, 24), (24, 24)),
        gat_dims=(24, 32),
        pool_ratios=(0.4, 0.5, 0.7, 0.5),
    ),
}


# --------------------------------------------------------------------------------------------------
# Front end
# --------------------------------------------------------------------------------------------------


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def sinc_filters(n_filters: int = 70, taps: int = 129, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The fixed sinc band-pass filters of the AASIST front end (not learned, not in the state dict).

    Band edges are spaced linearly on the mel scale ``2595 log10(1 + f / 700)`` between the lowest
    and highest frequency of an NFFT-512 grid from 0 Hz to the Nyquist frequency (``n_filters + 1``
    edges); filter ``i`` is the ideal band-pass between edges ``i`` and ``i + 1`` (a difference of
    two windowed-sinc low-pass filters), multiplied by a symmetric Hamming window (``np.hamming``;
    the periodic window moves the reference scores by up to 0.04). This is the
    fixed-filter variant of SincNet (Ravanelli & Bengio, SLT 2018) that RawNet2 and AASIST use.

    Parameters
    ----------
    n_filters : int
        Number of filters (70).
    taps : int
        Filter length, odd (129).
    sample_rate : int
        Hz.

    Returns
    -------
    np.ndarray
        float32 ``(n_filters, taps)``, ordered from the lowest band to the highest.

    Raises
    ------
    ValueError
        ``taps`` is even or ``n_filters`` < 1.
    """
    if taps % 2 == 0 or n_filters < 1:
        raise ValueError(f"sinc filters need an odd length and >= 1 filter, got taps={taps}, n={n_filters}")
    grid = np.linspace(0, sample_rate / 2, NFFT // 2 + 1)
    mel = _hz_to_mel(grid)
    edges = _mel_to_hz(np.linspace(mel.min(), mel.max(), n_filters + 1))
    t = np.arange(-(taps - 1) / 2, (taps - 1) / 2 + 1)  # samples, centred
    window = np.hamming(taps)
    bank = np.empty((n_filters, taps), dtype=np.float64)
    for i in range(n_filters):
        lo, hi = edges[i], edges[i + 1]
        high = (2 * hi / sample_rate) * np.sinc(2 * hi * t / sample_rate)
        low = (2 * lo / sample_rate) * np.sinc(2 * lo * t / sample_rate)
        bank[i] = window * (high - low)
    return bank.astype(np.float32)


class SincFrontEnd(nn.Module):
    """Fixed sinc filter bank turned into a 2-D (band x time) map: conv1d, ``|.|``, max-pool 3x3.

    Parameters
    ----------
    n_filters : int
        Number of band-pass filters (70).
    taps : int
        Odd filter length (129).
    sample_rate : int
        Hz.

    Notes
    -----
    The filters are a non-persistent buffer: they are rebuilt from the constants, never loaded.
    Input ``(B, S)`` float32; output ``(B, 1, n_filters // 3, (S - taps + 1) // 3)`` float32, e.g.
    ``(B, 1, 23, 21490)`` for 64,600 samples. The convolution has no padding.
    """

    def __init__(self, n_filters: int = 70, taps: int = 129, sample_rate: int = SAMPLE_RATE):
        super().__init__()
        bank = torch.from_numpy(sinc_filters(n_filters, taps, sample_rate)).unsqueeze(1)
        self.register_buffer("filters", bank, persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Filter, rectify and pool a batch of waveforms.

        Parameters
        ----------
        waveform : torch.Tensor
            float32 ``(B, S)``, 16 kHz raw amplitude.

        Returns
        -------
        torch.Tensor
            float32 ``(B, 1, n_filters // 3, (S - taps + 1) // 3)``.
        """
        x = F.conv1d(waveform.unsqueeze(1), self.filters)  # (B, 70, S - 128)
        return F.max_pool2d(x.abs().unsqueeze(1), (3, 3))


# --------------------------------------------------------------------------------------------------
# Encoder
# --------------------------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """One residual block of the encoder (names ``bn1``, ``conv1``, ``bn2``, ``conv2``,
    ``conv_downsample`` as in the released state dict).

    ``conv1`` (2x3, pad (1, 1)) -> ``bn2`` -> SELU -> ``conv2`` (2x3, pad (0, 1)); the input, through
    a 1x3 ``conv_downsample`` when the channel count changes, is added; then max-pool (1, 3).
    Height (bands) is kept, width (time) is divided by 3.

    Every block but the first also has ``bn1``. In the released model the ``bn1`` + SELU output is
    computed but ``conv1`` is applied to the un-normalised input, so ``bn1`` has no effect on the
    output; this port reproduces that (and skips the dead computation). The weights were trained
    this way, so "fixing" it would break them.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    first : bool
        The first block of the encoder (no ``bn1``).
    """

    def __init__(self, in_channels: int, out_channels: int, first: bool = False):
        super().__init__()
        self.first = first
        if not first:
            self.bn1 = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=(2, 3), padding=(1, 1), stride=1)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=(2, 3), padding=(0, 1), stride=1)
        self.downsample = in_channels != out_channels
        if self.downsample:
            self.conv_downsample = nn.Conv2d(in_channels, out_channels, kernel_size=(1, 3), padding=(0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Parameters
        ----------
        x : torch.Tensor
            float32 ``(B, in_channels, H, W)``.

        Returns
        -------
        torch.Tensor
            float32 ``(B, out_channels, H, W // 3)``.
        """
        # released-model quirk: bn1(x) -> SELU would be computed here and discarded; conv1 sees x.
        out = self.conv1(x)
        out = F.selu(self.bn2(out))
        out = self.conv2(out)
        identity = self.conv_downsample(x) if self.downsample else x
        return F.max_pool2d(out + identity, (1, 3))


def selu_(x: torch.Tensor) -> torch.Tensor:
    """SELU in place, as ``F.selu`` but with ``exp(x) - 1`` for ``expm1(x)``.

    ATen's CPU ``expm1`` (which ``F.selu`` uses) is poorly vectorised, about 10x slower than
    ``exp``; the two forms differ by at most ~1.2e-7 absolute (one float32 ulp of 1.0), which leaves
    the scores unchanged to well under 1e-6.

    Parameters
    ----------
    x : torch.Tensor
        float32, any shape; overwritten (it must not be needed by autograd).

    Returns
    -------
    torch.Tensor
        ``x``, now ``SCALE * (max(x, 0) + ALPHA * (exp(min(x, 0)) - 1))``.
    """
    neg = torch.clamp(x, max=0.0).exp_().sub_(1.0)
    return x.clamp_(min=0.0).mul_(SELU_SCALE).add_(neg, alpha=SELU_ALPHA * SELU_SCALE)


def max_pool_time3(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, (1, 3))`` along the last axis, as two element-wise maxima of strided views.

    Exactly equal to the max-pool (a maximum is exact), and an order of magnitude faster on the CPU
    than ATen's ``max_pool2d_with_indices``.

    Parameters
    ----------
    x : torch.Tensor
        float32 ``(..., W)``.

    Returns
    -------
    torch.Tensor
        float32 ``(..., W // 3)``; the last ``W % 3`` columns are dropped, as by the max-pool.
    """
    w = x.shape[-1] // 3 * 3
    return torch.maximum(torch.maximum(x[..., 0:w:3], x[..., 1:w:3]), x[..., 2:w:3])


@dataclass(frozen=True)
class _FoldedBlock:
    """Inference weights of one :class:`ResidualBlock`: ``bn2`` folded into ``conv1``, and the 1x3
    ``conv_downsample`` (when present) stacked under it as a 2x3 kernel whose top row is zero."""

    w1: torch.Tensor  # (C1, Cin, 2, 3): conv1 * bn2 scale [; 0-row + conv_downsample]
    b1: torch.Tensor  # (C1,)
    w2: torch.Tensor  # (Cout, Cout, 2, 3)
    b2: torch.Tensor  # (Cout,)
    out_channels: int
    downsample: bool


def _fold_block(block: ResidualBlock) -> _FoldedBlock:
    """Fold a block's eval-mode ``bn2`` into ``conv1`` and stack ``conv_downsample`` under it.

    ``bn2(conv1(x))`` is ``conv1(x) * a + (b - mean * a)`` with ``a = weight / sqrt(var + eps)``
    (as ATen computes it in eval mode); that is ``conv(x; W * a) + (bias * a + b - mean * a)``, the
    same value up to float rounding. The downsample conv (1x3, pad (0, 1)) reads input row ``r`` for
    output row ``r``, which is what a 2x3 kernel with pad (1, 1) reads through its bottom row, so
    with a zero top row it shares one convolution call with ``conv1`` (rows ``0 .. H - 1`` of it).
    """
    bn = block.bn2
    a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w1 = block.conv1.weight * a[:, None, None, None]
    b1 = block.conv1.bias * a + (bn.bias - bn.running_mean * a)
    out_channels = block.conv2.out_channels
    if block.downsample:
        wd = F.pad(block.conv_downsample.weight, (0, 0, 1, 0))  # (Cout, Cin, 2, 3), top row 0
        w1 = torch.cat([w1, wd])
        b1 = torch.cat([b1, block.conv_downsample.bias])
    return _FoldedBlock(w1.contiguous(), b1.contiguous(), block.conv2.weight, block.conv2.bias,
                        out_channels, block.downsample)


def _block_tile(p: _FoldedBlock, xs: torch.Tensor, lo: int, width: int) -> torch.Tensor:
    """One residual block on a time tile, from input columns with a 2-column halo on each side.

    Parameters
    ----------
    p : _FoldedBlock
        The block's folded weights.
    xs : torch.Tensor
        float32 ``(1, Cin, H, 3n + 4)``: input columns ``lo - 1 .. lo + 3n + 2`` of a ``width``-column
        input, zeros where outside ``[0, width)`` (the convolutions' zero padding).
    lo : int
        Global column of the first ``conv1`` output of the tile (``3 * first pooled column - 1``).
    width : int
        Width of the whole input (before pooling).

    Returns
    -------
    torch.Tensor
        float32 ``(1, Cout, H, n)``: the block's pooled output for the tile.
    """
    h = F.conv2d(xs, p.w1, p.b1, padding=(1, 0))  # (1, C1, H + 1, 3n + 2): columns lo .. lo + 3n + 1
    if p.downsample:
        identity = h[:, p.out_channels:, :-1, 1:-1]  # conv_downsample(x), columns lo + 1 .. lo + 3n
        h = h[:, : p.out_channels]
    else:
        identity = xs[..., 2:-2]
    selu_(h)
    if lo < 0:  # conv2's zero padding: conv1 outputs outside [0, width) are zeros, not conv1 values
        h[..., :-lo] = 0.0
    if lo + h.shape[-1] > width:
        h[..., width - lo:] = 0.0
    y = F.conv2d(h, p.w2, p.b2)  # (1, Cout, H, 3n)
    return max_pool_time3(y.add_(identity))


def _block_padded(p: _FoldedBlock, xp: torch.Tensor, width: int, tile: int) -> torch.Tensor:
    """A residual block over a whole input held with 2 zero columns on each side, tile by tile.

    Parameters
    ----------
    p : _FoldedBlock
        The block's folded weights.
    xp : torch.Tensor
        float32 ``(1, Cin, H, width + 4)``, the input with 2 zero columns on either side.
    width : int
        Columns of the input.
    tile : int
        Pooled output columns per tile.

    Returns
    -------
    torch.Tensor
        float32 ``(1, Cout, H, width // 3 + 4)``: the output, with 2 zero columns on either side.
    """
    n_out = width // 3
    out = xp.new_zeros(1, p.out_channels, xp.shape[2], n_out + 4)
    for a in range(0, n_out, tile):
        b = min(a + tile, n_out)
        out[..., 2 + a : 2 + b] = _block_tile(p, xp[..., 3 * a : 3 * b + 4], 3 * a - 1, width)
    return out


# --------------------------------------------------------------------------------------------------
# Graph layers
# --------------------------------------------------------------------------------------------------


def _node_bn(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm1d over the feature axis of node tensors ``(B, N, D)``."""
    b, n, d = x.shape
    return bn(x.reshape(b * n, d)).reshape(b, n, d)


class GraphAttention(nn.Module):
    """Graph attention over a fully connected homogeneous graph (the paper's GAT layer, Sec. 2.2).

    For nodes ``h`` ``(B, N, D)``: attention logits ``a_ij = w . tanh(W_a (h_i * h_j)) / T``
    (element-wise product of the node pair), softmax over ``j``; output
    ``SELU(BN(W_1 (sum_j a_ij h_j) + W_2 h_i))``.

    Parameters
    ----------
    in_dim, out_dim : int
        Node dimensions.
    temperature : float
        Softmax temperature ``T``.

    Notes
    -----
    Parameter names (``att_proj``, ``att_weight``, ``proj_with_att``, ``proj_without_att``, ``bn``)
    follow the released state dict.
    """

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0):
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = nn.Parameter(torch.empty(out_dim, 1))
        nn.init.xavier_normal_(self.att_weight)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim, eps=BN_EPS)
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Update every node from all nodes.

        Parameters
        ----------
        x : torch.Tensor
            float32 ``(B, N, in_dim)``.

        Returns
        -------
        torch.Tensor
            float32 ``(B, N, out_dim)``.
        """
        pair = x.unsqueeze(2) * x.unsqueeze(1)  # (B, N, N, D)
        logits = torch.tanh(self.att_proj(pair)) @ self.att_weight  # (B, N, N, 1)
        att = torch.softmax(logits.squeeze(-1) / self.temperature, dim=-1)  # over neighbours j
        out = self.proj_with_att(att @ x) + self.proj_without_att(x)
        return F.selu(_node_bn(self.bn, out))


class HeteroGraphAttention(nn.Module):
    """Heterogeneous stacking graph attention layer (HS-GAL, Sec. 2.3 of the paper).

    The two node types (temporal ``x1``, spectral ``x2``) are projected to a common space by
    ``proj_type1`` / ``proj_type2`` and joined in one graph. Attention logits use the element-wise
    product of node pairs through ``att_proj`` + tanh, then a type-dependent weight vector:
    ``att_weight11`` within type 1, ``att_weight22`` within type 2, ``att_weight12`` across types (both
    directions); divided by the temperature, softmax over all neighbours. A master (stack) node
    attends to all nodes with its own weights (``att_projM``, ``att_weightM``) and is updated as
    ``W_1M (sum_j a_j h_j) + W_2M m``; the other nodes as ``SELU(BN(W_1 (sum_j a_ij h_j) + W_2 h_i))``.
    Both use the nodes after the type projection, before this layer's update.

    Parameters
    ----------
    in_dim, out_dim : int
        Node dimensions.
    temperature : float
        Softmax temperature.
    """

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0):
        super().__init__()
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_projM = nn.Linear(in_dim, out_dim)
        self.att_weight11 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weight22 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weight12 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weightM = nn.Parameter(torch.empty(out_dim, 1))
        for w in (self.att_weight11, self.att_weight22, self.att_weight12, self.att_weightM):
            nn.init.xavier_normal_(w)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_attM = nn.Linear(in_dim, out_dim)
        self.proj_without_attM = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim, eps=BN_EPS)
        self.temperature = float(temperature)

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, master: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Update both node sets and the master node.

        Parameters
        ----------
        x1 : torch.Tensor
            float32 ``(B, N1, in_dim)``, temporal nodes.
        x2 : torch.Tensor
            float32 ``(B, N2, in_dim)``, spectral nodes.
        master : torch.Tensor
            float32 ``(B, 1, in_dim)``.

        Returns
        -------
        (torch.Tensor, torch.Tensor, torch.Tensor)
            ``(B, N1, out_dim)``, ``(B, N2, out_dim)``, ``(B, 1, out_dim)``.
        """
        n1 = x1.shape[1]
        x = torch.cat([self.proj_type1(x1), self.proj_type2(x2)], dim=1)  # (B, N, D)

        # node-to-node attention, one weight vector per pair of node types
        hidden = torch.tanh(self.att_proj(x.unsqueeze(2) * x.unsqueeze(1)))  # (B, N, N, out)
        w11, w22, w12 = self.att_weight11, self.att_weight22, self.att_weight12
        logits = torch.cat(
            [
                torch.cat([hidden[:, :n1, :n1] @ w11, hidden[:, :n1, n1:] @ w12], dim=2),
                torch.cat([hidden[:, n1:, :n1] @ w12, hidden[:, n1:, n1:] @ w22], dim=2),
            ],
            dim=1,
        ).squeeze(-1)  # (B, N, N)
        att = torch.softmax(logits / self.temperature, dim=-1)

        # master node: attends to every node
        m_logits = torch.tanh(self.att_projM(x * master)) @ self.att_weightM  # (B, N, 1)
        m_att = torch.softmax(m_logits / self.temperature, dim=1)
        new_master = self.proj_with_attM(m_att.transpose(1, 2) @ x) + self.proj_without_attM(master)

        out = self.proj_with_att(att @ x) + self.proj_without_att(x)
        out = F.selu(_node_bn(self.bn, out))
        return out[:, :n1], out[:, n1:], new_master


class GraphPool(nn.Module):
    """Graph pooling (Gao & Ji, ICML 2019): keep the top-k nodes by a learned sigmoid score, scaled.

    Parameters
    ----------
    ratio : float
        Fraction of nodes kept, ``k = max(int(N * ratio), 1)``.
    dim : int
        Node dimension.
    """

    def __init__(self, ratio: float, dim: int):
        super().__init__()
        self.ratio = float(ratio)
        self.proj = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Select nodes.

        Parameters
        ----------
        x : torch.Tensor
            float32 ``(B, N, D)``.

        Returns
        -------
        torch.Tensor
            float32 ``(B, k, D)``: the ``k`` highest-scoring nodes times their score, best first.
        """
        scores = torch.sigmoid(self.proj(x))  # (B, N, 1)
        k = max(int(x.shape[1] * self.ratio), 1)
        _, idx = torch.topk(scores, k, dim=1)
        return torch.gather(x * scores, 1, idx.expand(-1, -1, x.shape[-1]))


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------


class AASIST(nn.Module):
    """AASIST / AASIST-L (Jung et al., ICASSP 2022, arXiv:2110.01200).

    Parameters
    ----------
    config : AASISTConfig or str
        A config or the name of one in :data:`CONFIGS` (``"AASIST"``, ``"AASIST-L"``).

    Raises
    ------
    KeyError
        Unknown config name.

    Notes
    -----
    Module names reproduce the released state dict (``first_bn``, ``encoder.i.0``, ``pos_S``,
    ``master1``/``master2``, ``GAT_layer_S``/``_T``, ``HtrgGAT_layer_ST11``/``12``/``21``/``22``,
    ``pool_S``/``_T``/``_hS1``/``_hT1``/``_hS2``/``_hT2``, ``out_layer``). Dropout of the original
    is omitted: it is the identity at inference.

    Choices the key lists do not fix, checked against the reference scores of the released weights
    (``models/README.md``): ``bn1`` does not feed ``conv1`` (feeding it moves the scores of every
    file, e.g. 0.85 -> 0.02); the four HS-GAL pools all keep ``pool_ratios[2]`` (with
    ``pool_ratios[3]`` AASIST-L's means drift by ~0.02 away from the reference); the HS-GAL layers
    take the temporal nodes as type 1.

    The released weights were trained on 64,600-sample windows. In eval mode without autograd the
    front end and encoder run fused and tiled along time (:meth:`_encode_tiled`): about 0.2 s of
    one core per window for either variant (the modules' plain forward, kept as the reference path,
    takes about 1 s: elementwise passes over the 64 MiB first-block activation and ATen's slow
    ``expm1`` and ``max_pool2d`` dominated it). AASIST-L saves parameters, not time.
    """

    def __init__(self, config: AASISTConfig | str = "AASIST"):
        super().__init__()
        if isinstance(config, str):
            if config not in CONFIGS:
                raise KeyError(f"unknown AASIST variant {config!r}; known: {sorted(CONFIGS)}")
            config = CONFIGS[config]
        self.config = config
        c = config
        d0, d1 = c.gat_dims
        enc_dim = c.filts[-1][1]
        t = c.temperatures

        self.front_end = SincFrontEnd(c.sinc_channels, c.sinc_taps, c.sample_rate)
        self.first_bn = nn.BatchNorm2d(1, eps=BN_EPS)
        self.encoder = nn.Sequential(
            *[nn.Sequential(ResidualBlock(i, o, first=(n == 0))) for n, (i, o) in enumerate(c.filts)]
        )
        self.pos_S = nn.Parameter(torch.zeros(1, c.n_spectral_nodes, enc_dim))
        self.master1 = nn.Parameter(torch.zeros(1, 1, d0))
        self.master2 = nn.Parameter(torch.zeros(1, 1, d0))

        self.GAT_layer_S = GraphAttention(enc_dim, d0, temperature=t[0])
        self.GAT_layer_T = GraphAttention(enc_dim, d0, temperature=t[1])
        self.HtrgGAT_layer_ST11 = HeteroGraphAttention(d0, d1, temperature=t[2])
        self.HtrgGAT_layer_ST12 = HeteroGraphAttention(d1, d1, temperature=t[3])
        self.HtrgGAT_layer_ST21 = HeteroGraphAttention(d0, d1, temperature=t[2])
        self.HtrgGAT_layer_ST22 = HeteroGraphAttention(d1, d1, temperature=t[3])

        r = c.pool_ratios
        self.pool_S = GraphPool(r[0], d0)
        self.pool_T = GraphPool(r[1], d0)
        self.pool_hS1 = GraphPool(r[2], d1)
        self.pool_hT1 = GraphPool(r[2], d1)
        self.pool_hS2 = GraphPool(r[2], d1)
        self.pool_hT2 = GraphPool(r[2], d1)

        self.out_layer = nn.Linear(c.embedding_dim, 2)

    @property
    def min_samples(self) -> int:
        """int: shortest input the network accepts: the sinc taps, then 3 x 3**6 time steps (2,315)."""
        return self.config.sinc_taps - 1 + 3 * 3 ** len(self.config.filts)

    def _fast_path(self, waveform: torch.Tensor) -> bool:
        """Whether :meth:`forward` may use the fused, tiled encoder (:meth:`_encode_tiled`).

        It may in eval mode when no gradient is being recorded (under ``torch.inference_mode`` or
        ``torch.no_grad``, or when neither the input nor any parameter requires a gradient): it
        works in place and uses the batch-norm running statistics. Otherwise the modules' own
        ``forward`` run, which compute the same values (up to float rounding) more slowly.
        """
        if self.training:
            return False
        if not torch.is_grad_enabled():
            return True
        return not waveform.requires_grad and not any(p.requires_grad for p in self.parameters())

    def _encode_tiled(self, waveform: torch.Tensor) -> torch.Tensor:
        """Front end and encoder of one window, computed tile by tile along time (eval mode only).

        The same function as ``encoder(selu(first_bn(front_end(waveform))))``, reordered for the
        CPU: the front end and the first residual block run together on time tiles whose
        intermediates stay in cache (the full first-block activation is 64 MiB per window), and
        every block runs on tiles with a 2-column halo, so that no per-tile value differs from the
        whole-input computation but for float rounding (batch norm folded into ``conv1``, the
        downsample conv sharing ``conv1``'s call, ``exp(x) - 1`` for ``expm1`` in SELU, strided
        maxima for the (1, 3) max-pool).

        Parameters
        ----------
        waveform : torch.Tensor
            float32 ``(1, S)``, ``S`` >= :attr:`min_samples`.

        Returns
        -------
        torch.Tensor
            float32 ``(1, C, 23, T)``, as ``encoder`` returns it (e.g. ``(1, 64, 23, 29)``).
        """
        blocks = [_fold_block(seq[0]) for seq in self.encoder]
        filters = self.front_end.filters  # (70, 1, taps), built once at construction
        taps = filters.shape[-1]
        width = (waveform.shape[1] - taps + 1) // 3  # front-end output columns (21,490)
        first = blocks[0]
        tile = max(1, TILE_ELEMENTS // (first.w1.shape[0] * 3 * (self.config.n_spectral_nodes + 1)))
        n_out = width // 3
        xp = waveform.new_zeros(1, first.out_channels, self.config.n_spectral_nodes, n_out + 4)
        for a in range(0, n_out, tile):
            b = min(a + tile, n_out)
            c0, c1 = 3 * a - 2, 3 * b + 2  # front-end columns the tile reads, halo included
            v0, v1 = max(c0, 0), min(c1, width)  # the existing ones
            x = F.conv1d(waveform[:, 3 * v0 : 3 * v1 + taps - 1].unsqueeze(1), filters)  # (1, 70, 3 (v1 - v0))
            x = x.abs_()[:, : 3 * (x.shape[1] // 3)].unflatten(1, (-1, 3))  # (1, 23, 3, 3 (v1 - v0))
            x = torch.maximum(torch.maximum(x[:, :, 0], x[:, :, 1]), x[:, :, 2])  # max-pool 3x3: bands,
            x = max_pool_time3(x).unsqueeze(1)  # then time: (1, 1, 23, v1 - v0)
            x = selu_(self.first_bn(x))
            if (v0, v1) != (c0, c1):
                x = F.pad(x, (v0 - c0, c1 - v1))  # the zero padding of conv1 / conv_downsample
            xp[..., 2 + a : 2 + b] = _block_tile(first, x, 3 * a - 1, width)
        width = n_out
        for p in blocks[1:]:
            tile = max(1, TILE_ELEMENTS // (p.w1.shape[0] * 3 * (xp.shape[2] + 1)))
            xp = _block_padded(p, xp, width, tile)
            width //= 3
        return xp[..., 2:-2]

    def _branch(self, out_t, out_s, master, first, second, pool_s, pool_t):
        """One HS-GAL branch: layer, graph pools, second layer, residual sum of the two outputs.

        Parameters
        ----------
        out_t, out_s : torch.Tensor
            float32 ``(B, Nt, gat_dims[0])`` temporal and ``(B, Ns, gat_dims[0])`` spectral nodes.
        master : torch.Tensor
            float32 ``(B, 1, gat_dims[0])``, the branch's learned master node.
        first, second : HeteroGraphAttention
            The branch's two layers.
        pool_s, pool_t : GraphPool
            Pools applied between them.

        Returns
        -------
        (torch.Tensor, torch.Tensor, torch.Tensor)
            Temporal ``(B, Nt', gat_dims[1])``, spectral ``(B, Ns', gat_dims[1])`` and master
            ``(B, 1, gat_dims[1])`` nodes.
        """
        t1, s1, m1 = first(out_t, out_s, master)
        s1, t1 = pool_s(s1), pool_t(t1)
        t2, s2, m2 = second(t1, s1, m1)
        return t1 + t2, s1 + s2, m1 + m2

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score a batch of 16 kHz waveforms.

        Parameters
        ----------
        waveform : torch.Tensor
            float32 ``(B, S)``, raw amplitude at 16 kHz (not normalised); ``S`` = 64,600 for the
            trained setting (see :func:`window_input`). Any ``S`` >= :attr:`min_samples` (2,315)
            runs, but only 64,600 matches training.

        Returns
        -------
        logits : torch.Tensor
            float32 ``(B, 2)``; index 1 = bona fide, index 0 = spoof.
        embedding : torch.Tensor
            float32 ``(B, 5 * gat_dims[1])``, the vector fed to ``out_layer``.

        Raises
        ------
        ValueError
            ``waveform`` is not 2-D, or has fewer than :attr:`min_samples` samples.
        """
        if waveform.dim() != 2 or waveform.shape[1] < self.min_samples:
            raise ValueError(
                f"AASIST expects a (batch, samples) waveform with >= {self.min_samples} samples "
                f"({AASIST_SAMPLES} as trained), got shape {tuple(waveform.shape)}"
            )
        waveform = waveform.float()
        if self._fast_path(waveform):
            e = torch.cat([self._encode_tiled(waveform[i : i + 1]) for i in range(waveform.shape[0])])
        else:
            x = self.front_end(waveform)  # (B, 1, 23, T0)
            x = F.selu(self.first_bn(x))
            e = self.encoder(x)  # (B, C, 23, T)

        e_s = e.abs().amax(dim=3).transpose(1, 2) + self.pos_S  # (B, 23, C) spectral nodes
        out_s = self.pool_S(self.GAT_layer_S(e_s))
        e_t = e.abs().amax(dim=2).transpose(1, 2)  # (B, T, C) temporal nodes
        out_t = self.pool_T(self.GAT_layer_T(e_t))

        b = waveform.shape[0]
        m1 = self.master1.expand(b, -1, -1)
        m2 = self.master2.expand(b, -1, -1)
        t1, s1, m1 = self._branch(
            out_t, out_s, m1, self.HtrgGAT_layer_ST11, self.HtrgGAT_layer_ST12, self.pool_hS1, self.pool_hT1
        )
        t2, s2, m2 = self._branch(
            out_t, out_s, m2, self.HtrgGAT_layer_ST21, self.HtrgGAT_layer_ST22, self.pool_hS2, self.pool_hT2
        )
        out_t = torch.maximum(t1, t2)
        out_s = torch.maximum(s1, s2)
        master = torch.maximum(m1, m2)

        embedding = torch.cat(
            [
                out_t.abs().amax(dim=1),
                out_t.mean(dim=1),
                out_s.abs().amax(dim=1),
                out_s.mean(dim=1),
                master.squeeze(1),
            ],
            dim=1,
        )
        return self.out_layer(embedding), embedding


# --------------------------------------------------------------------------------------------------
# Loading and input handling
# --------------------------------------------------------------------------------------------------


def load_aasist(path: str | os.PathLike, variant: str = "AASIST") -> AASIST:
    """Load released AASIST weights into a model in eval mode.

    Parameters
    ----------
    path : str or os.PathLike
        A plain state-dict file (``AASIST.pth`` or ``AASIST-L.pth``), read with
        ``torch.load(weights_only=True)``: no arbitrary pickle is ever executed.
    variant : str
        ``"AASIST"`` or ``"AASIST-L"``, the key of :data:`CONFIGS`.

    Returns
    -------
    AASIST
        The model, on the CPU, in eval mode, weights loaded with ``strict=True``.

    Raises
    ------
    ModelLoadingError
        Unknown variant; the file is missing, unreadable, corrupt or not a weights-only state dict;
        or its keys or shapes do not match the variant. The message names the file.
    """
    if variant not in CONFIGS:
        raise ModelLoadingError(f"unknown AASIST variant {variant!r}; known: {sorted(CONFIGS)}", path)
    try:
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ModelLoadingError(f"{variant} weights not found ({exc.strerror})", path) from exc
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... on bad files
        raise ModelLoadingError(
            f"cannot read {variant} weights: not a weights-only PyTorch state dict or corrupt "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
            path,
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadingError(f"{variant} weights file does not hold a plain state dict of tensors", path)
    model = AASIST(CONFIGS[variant])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadingError(
            f"weights do not match the {variant} architecture (wrong variant or file?): "
            f"{str(exc).splitlines()[0]}",
            path,
        ) from exc
    return model.eval()


def window_input(waveform: np.ndarray) -> np.ndarray:
    """Fit a waveform to one AASIST window of :data:`AASIST_SAMPLES` samples.

    Shorter audio is tiled (repeated from its start) to the length, longer audio is cut to its first
    64,600 samples, as in ASVspoof evaluation. No normalisation and no silence trimming.

    Parameters
    ----------
    waveform : np.ndarray
        ``(S,)`` mono samples at 16 kHz, raw amplitude.

    Returns
    -------
    np.ndarray
        float32 ``(64600,)``.

    Raises
    ------
    ValueError
        ``waveform`` is not 1-D or is empty.
    """
    return tile_to(waveform, AASIST_SAMPLES)


def windows_of(waveform: np.ndarray, min_tail: int = MIN_TAIL_SAMPLES) -> np.ndarray:
    """Cut a waveform into consecutive, non-overlapping AASIST windows.

    Rule: windows start at 0, 64,600, 129,200, ... samples. A last partial window is kept, tiled to
    full length by :func:`window_input`, when it has at least ``min_tail`` samples (half a window,
    32,300 samples = 2.02 s, by default, so at most 2 s at the end go unscored); a shorter tail is
    dropped. Audio shorter than one window always gives one tiled window, whatever ``min_tail``.

    ``min_tail=AASIST_SAMPLES`` keeps full windows only: that is how the reference means in
    ``models/README.md`` were computed (a tiled tail changes a file's mean noticeably, e.g. the
    8.0 s talking-face clip: 0.85 with one full window, 0.92 with its 3.96 s tail tiled, AASIST).

    Parameters
    ----------
    waveform : np.ndarray
        ``(S,)`` mono samples at 16 kHz, raw amplitude.
    min_tail : int
        Samples a last partial window needs to be scored; ``AASIST_SAMPLES`` or more keeps full
        windows only.

    Returns
    -------
    np.ndarray
        float32 ``(N, 64600)``, ``N >= 1``.

    Raises
    ------
    ValueError
        ``waveform`` is not 1-D or is empty.
    """
    wave = mono_waveform(waveform)
    full = wave.size // AASIST_SAMPLES
    windows = [wave[i * AASIST_SAMPLES : (i + 1) * AASIST_SAMPLES] for i in range(full)]
    tail = wave[full * AASIST_SAMPLES :]
    if tail.size and (tail.size >= min_tail or full == 0):
        windows.append(window_input(tail))
    return np.stack(windows).astype(np.float32, copy=False)


def p_spoof(logits: torch.Tensor | np.ndarray) -> np.ndarray:
    """Probability of "spoof": softmax of the two logits, index :data:`SPOOF_INDEX` (0).

    Parameters
    ----------
    logits : torch.Tensor or np.ndarray
        ``(B, 2)`` (or ``(2,)``) logits from :class:`AASIST`.

    Returns
    -------
    np.ndarray
        float64 ``(B,)`` (or a 0-d array) in [0, 1].
    """
    z = torch.as_tensor(logits).detach().double()
    return torch.softmax(z, dim=-1)[..., SPOOF_INDEX].cpu().numpy()
