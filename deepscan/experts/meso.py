"""Meso-4 face-forgery CNN (our own port), with a loader for the published Keras weights.

Afchar, Nozick, Yamagishi & Echizen, "MesoNet: a Compact Facial Video Forgery Detection Network",
WIFS 2018, arXiv:1809.00888. Meso-4 looks at the mesoscopic texture of an aligned face crop: four
convolution blocks and a small dense head, 27,977 parameters::

    conv 3->8 3x3 same, ReLU, BN, max-pool 2        256 -> 128
    conv 8->8 5x5 same, ReLU, BN, max-pool 2        128 -> 64
    conv 8->16 5x5 same, ReLU, BN, max-pool 2        64 -> 32
    conv 16->16 5x5 same, ReLU, BN, max-pool 4       32 -> 8
    flatten in NHWC order (8*8*16 = 1024), dropout, dense 1024->16, LeakyReLU(0.1), dropout,
    dense 16->1, sigmoid

The activation comes *before* batch normalisation, as in the released network. The sigmoid output
is **P(real)**: Keras numbered the training class folders in sorted order, ``df`` (0) before
``real`` (1), so the single output unit predicts "real". :class:`Meso4` returns the logit before the
sigmoid and the 16-dimensional LeakyReLU embedding.

Weights: ``Meso4_DF.h5`` (deepfakes) and ``Meso4_F2F.h5`` (Face2Face), Keras 2 HDF5 files read here
with h5py alone (no TensorFlow, no pickle). Input: aligned RGB face crops 256x256 in [0, 1]
(:func:`deepscan.faces.meso_crop` cuts them: square centred on the nose, side
2.2 x 1.3 x max(eye distance, eye-to-mouth distance), eye -> mouth axis vertical).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepscan.errors import ModelLoadingError

__all__ = ["MESO_INPUT_SIZE", "MESO_EMBED_DIM", "BN_EPS", "Meso4", "load_meso4", "preprocess"]

MESO_INPUT_SIZE = 256  # px, side of the square RGB input (deepscan.faces.MESO_CROP_SIZE)
MESO_EMBED_DIM = 16  # width of the dense layer before the output
BN_EPS = 1e-3  # Keras BatchNormalization's default epsilon
LEAKY_SLOPE = 0.1  # LeakyReLU negative slope of the released network

# (Keras layer-name prefix, expected kernel shape in Keras order) in creation order
_CONV_SHAPES = [(3, 3, 3, 8), (5, 5, 8, 8), (5, 5, 8, 16), (5, 5, 16, 16)]
_DENSE_SHAPES = [(1024, 16), (16, 1)]


class Meso4(nn.Module):
    """Meso-4 (Afchar et al., WIFS 2018): four conv blocks and a dense head; output P(real).

    The architecture is fixed (27,977 parameters) and takes no arguments; load the published
    weights with :func:`load_meso4`.

    Notes
    -----
    Convolutions use "same" zero padding; ReLU precedes BatchNorm (eps :data:`BN_EPS`); the last
    pooling is 4x4; the flatten is in NHWC order so that the Keras dense kernel applies unchanged.
    Dropout (0.5) is a no-op in eval mode.
    """

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(cin, cout, k, padding=k // 2) for k, _, cin, cout in _CONV_SHAPES
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(s[3], eps=BN_EPS) for s in _CONV_SHAPES)
        self.pools = (2, 2, 2, 4)
        self.dropout = nn.Dropout(0.5)
        self.fc1 = nn.Linear(*_DENSE_SHAPES[0])
        self.fc2 = nn.Linear(*_DENSE_SHAPES[1])

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score face crops.

        Parameters
        ----------
        crops : torch.Tensor
            float32 ``(B, 3, 256, 256)``, RGB in [0, 1] (:func:`preprocess`), aligned as
            :func:`deepscan.faces.meso_crop` cuts them.

        Returns
        -------
        logit_real : torch.Tensor
            float32 ``(B,)``; ``sigmoid(logit_real)`` is P(real).
        embedding : torch.Tensor
            float32 ``(B, 16)``, the LeakyReLU output of the first dense layer.

        Raises
        ------
        ValueError
            If ``crops`` is not ``(B, 3, 256, 256)``.
        """
        if crops.ndim != 4 or tuple(crops.shape[1:]) != (3, MESO_INPUT_SIZE, MESO_INPUT_SIZE):
            raise ValueError(
                f"Meso4 expects crops of shape (B, 3, {MESO_INPUT_SIZE}, {MESO_INPUT_SIZE}), "
                f"got {tuple(crops.shape)}"
            )
        x = crops
        for conv, bn, pool in zip(self.convs, self.bns, self.pools):
            x = F.max_pool2d(bn(F.relu(conv(x))), pool)
        x = x.permute(0, 2, 3, 1).flatten(1)  # NHWC flatten, as Keras' Flatten
        embedding = F.leaky_relu(self.fc1(self.dropout(x)), LEAKY_SLOPE)
        logit = self.fc2(self.dropout(embedding)).squeeze(1)
        return logit, embedding


def preprocess(crops: np.ndarray) -> torch.Tensor:
    """Turn uint8 RGB crops into Meso-4's input tensor.

    Parameters
    ----------
    crops : np.ndarray
        uint8 RGB ``(B, 256, 256, 3)`` (e.g. :attr:`deepscan.faces.FaceCrops.meso_crops`).

    Returns
    -------
    torch.Tensor
        float32 ``(B, 3, 256, 256)`` in [0, 1].

    Raises
    ------
    TypeError
        If ``crops`` is not a uint8 numpy array.
    ValueError
        If ``crops`` is not ``(B, 256, 256, 3)``.
    """
    if not isinstance(crops, np.ndarray) or crops.dtype != np.uint8:
        raise TypeError(f"crops must be a uint8 numpy array, got {getattr(crops, 'dtype', type(crops))}")
    if crops.ndim != 4 or crops.shape[1:] != (MESO_INPUT_SIZE, MESO_INPUT_SIZE, 3):
        raise ValueError(
            f"crops must have shape (B, {MESO_INPUT_SIZE}, {MESO_INPUT_SIZE}, 3), got {crops.shape}"
        )
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2)
    return x.float().div_(255.0).contiguous()


def load_meso4(path: str | os.PathLike) -> Meso4:
    """Build :class:`Meso4` with the weights of a Keras 2 HDF5 file (h5py only).

    Parameters
    ----------
    path : str or os.PathLike
        ``Meso4_DF.h5`` or ``Meso4_F2F.h5`` (a ``save_weights`` file, or a whole-model file whose
        weights sit under ``model_weights``).

    Returns
    -------
    Meso4
        In eval mode, on the CPU.

    Raises
    ------
    ModelLoadingError
        If the file is missing, not HDF5, or lacks the four conv, four BatchNorm and two dense
        layers of Meso-4 with the expected shapes; the message names the file.

    Notes
    -----
    Layers are taken in the file's creation order (``layer_names``). Keras conv kernels
    ``(kh, kw, in, out)`` are permuted to ``(out, in, kh, kw)``, dense kernels ``(in, out)``
    transposed; BatchNorm's ``gamma, beta, moving_mean, moving_variance`` map to weight, bias,
    running mean and running variance.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadingError(f"Meso-4 weights file not found: {path}", path=path)
    try:
        import h5py

        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            layers = _keras_layers(root)
    except ModelLoadingError as exc:
        raise ModelLoadingError(f"not Meso-4 Keras weights: {exc.message}", path=path) from None
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ModelLoadingError(f"cannot read Meso-4 Keras weights (HDF5): {exc}", path=path) from exc

    convs = [w for name, w in layers if name.startswith("conv2d")]
    bns = [w for name, w in layers if name.startswith("batch_normalization")]
    denses = [w for name, w in layers if name.startswith("dense")]
    if (len(convs), len(bns), len(denses)) != (4, 4, 2):
        raise ModelLoadingError(
            f"expected 4 conv2d, 4 batch_normalization and 2 dense layers of Meso-4, found "
            f"{len(convs)}, {len(bns)}, {len(denses)}",
            path=path,
        )
    model = Meso4()
    state = {}
    for i, (w, shape) in enumerate(zip(convs, _CONV_SHAPES)):
        kernel, bias = _get(w, "kernel", shape, path), _get(w, "bias", (shape[3],), path)
        state[f"convs.{i}.weight"] = kernel.transpose(3, 2, 0, 1)
        state[f"convs.{i}.bias"] = bias
        n = (shape[3],)
        state[f"bns.{i}.weight"] = _get(bns[i], "gamma", n, path)
        state[f"bns.{i}.bias"] = _get(bns[i], "beta", n, path)
        state[f"bns.{i}.running_mean"] = _get(bns[i], "moving_mean", n, path)
        state[f"bns.{i}.running_var"] = _get(bns[i], "moving_variance", n, path)
    for i, (w, shape) in enumerate(zip(denses, _DENSE_SHAPES)):
        state[f"fc{i + 1}.weight"] = _get(w, "kernel", shape, path).T
        state[f"fc{i + 1}.bias"] = _get(w, "bias", (shape[1],), path)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, np.float32)) for k, v in state.items()}
    for i in range(4):
        tensors[f"bns.{i}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    model.load_state_dict(tensors, strict=True)
    return model.eval()


def _keras_layers(root) -> list[tuple[str, dict[str, np.ndarray]]]:
    """``(layer name, {weight short name: array})`` for each layer with weights, in file order."""
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in root.attrs["layer_names"]]
    out = []
    for name in names:
        group = root[name]
        weight_names = [
            n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])
        ]
        if not weight_names:
            continue
        weights = {}
        for wn in weight_names:
            short = wn.rsplit("/", 1)[-1].split(":", 1)[0]  # "conv2d_5/kernel:0" -> "kernel"
            weights[short] = np.asarray(group[wn])
        out.append((name, weights))
    if not out:
        raise ModelLoadingError("the file holds no layer weights")
    return out


def _get(weights: dict[str, np.ndarray], key: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    if key not in weights:
        raise ModelLoadingError(f"a layer lacks its {key!r} array (has {sorted(weights)})", path=path)
    arr = weights[key]
    if arr.shape != shape:
        raise ModelLoadingError(f"{key} has shape {arr.shape}, expected {shape}", path=path)
    return arr
