"""The ``face_forgery`` expert: Meso-4 fine-tuned on the harvest's manipulated faces and self-blended images.

A learned expert (issue 12): Meso-4 (Afchar, Nozick, Yamagishi & Echizen, "MesoNet: a Compact Facial
Video Forgery Detection Network", WIFS 2018, arXiv:1809.00888; our port in
:mod:`deepscan.experts.meso`), initialised from the published ``Meso4_DF.h5`` weights and fine-tuned
by :mod:`deepscan.training.expert_face` on face crops of the harvest -- face swaps (DFDC,
roop/inswapper), lip-sync (Wav2Lip, SadTalker, video-retalking, SadTalker-Video-Lip-Sync), diffusion
talking heads (MuseV) against real faces -- and on self-blended images made from the real faces
(Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022). Its output unit
is the logit of **fake** (the published Meso-4's is of real).

Input: RGB face crops, uint8 ``(N, S, S, 3)``, of the kind named by ``config["crop"]``
(:attr:`FaceForgeryExpert.crop`):

- ``"clip"`` (the shipped weights): :attr:`deepscan.faces.FaceCrops.crops`, the 224x224 crop of
  the tracked face box made square and grown by 25 % on each side, upright, not rotated;
- ``"meso"``: :attr:`deepscan.faces.FaceCrops.meso_crops`, the 256x256 crop of the Meso-4 README
  (square centred on the nose, side 2.2 x 1.3 x max(eye distance, eye-to-mouth distance), eye ->
  mouth axis vertical).

Crops are resized to the network's input side (``config["size"]``: 128 px for the shipped weights,
area interpolation) -- at 128 px the last pooling of Meso-4 is 2x2 instead of 4x4 so that the
published dense layer still applies (:class:`FaceForgeryNet`). Out of fold on the harvest the
224 CLIP crop beat the aligned crop (AUC 0.81 against 0.77 with the same recipe; the model card
has the numbers). A file's score is the mean of its frames' ``p_fake``, as the training measured it.

Weights: ``deepscan/experts/weights/face_forgery.safetensors`` (shipped in the package, about
270 kB, most of it the provenance), its metadata holding ``config`` and ``provenance`` as JSON: the
training files by SHA-256 with their licences, the augmentations, the leave-generator-out and
out-of-fold metrics, the seed. Model card: ``docs/model-cards/face_forgery.md``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepscan.errors import ModelLoadingError
from deepscan.experts.meso import LEAKY_SLOPE, MESO_EMBED_DIM, MESO_INPUT_SIZE, Meso4

__all__ = [
    "CUE",
    "DEFAULT_WEIGHTS",
    "INPUT_SIZE",
    "TOKEN_DIM",
    "FaceForgeryNet",
    "FaceForgeryExpert",
    "load_face_expert",
    "save_face_expert",
    "crops_to_tensor",
]

CUE = "face_forgery"  # cue name in results
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "face_forgery.safetensors"
INPUT_SIZE = MESO_INPUT_SIZE  # px, side of the aligned crops the expert takes (deepscan.faces.MESO_CROP_SIZE)
SIZES = (128, 256)  # px, network input sides: crops are resized to the model's own
TOKEN_DIM = MESO_EMBED_DIM + 1  # 16-d penultimate embedding and the logit of fake
SCORE_BATCH = 64  # crops per forward pass in :meth:`FaceForgeryExpert.score`
FORMAT = "deepscan-face-forgery-1"  # metadata "format" of the safetensors file


class FaceForgeryNet(nn.Module):
    """Meso-4 whose single output is the logit of *fake*, on 256 or 128 px crops.

    The layers are those of :class:`deepscan.experts.meso.Meso4` (27,977 parameters), kept under
    ``body.``, so that the published weights, which predict P(real), load unchanged
    (:meth:`from_meso4`) and start as a sensible fake detector once the output is negated. At
    ``size=128`` the last max-pooling is 2x2 instead of 4x4, so the flattened map is still
    8 x 8 x 16 and the published dense layer applies; each convolution then sees twice as much
    of the face, and a training step costs about a seventh of one at 256 px on a CPU.

    Parameters
    ----------
    size : int
        Input side in pixels: 256 (Meso-4 as published) or 128.

    Raises
    ------
    ValueError
        For another ``size``.
    """

    def __init__(self, size: int = INPUT_SIZE) -> None:
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {size}")
        self.size = int(size)
        self.pools = (2, 2, 2, self.size // 64)
        self.body = Meso4()

    @classmethod
    def from_meso4(cls, meso: Meso4, size: int = INPUT_SIZE) -> "FaceForgeryNet":
        """A net initialised with the weights of a loaded :class:`Meso4` (copied).

        Parameters
        ----------
        meso : Meso4
            E.g. ``deepscan.experts.meso.load_meso4("Meso4_DF.h5")``.
        size : int
            Input side (:data:`SIZES`).

        Returns
        -------
        FaceForgeryNet
            In train mode.
        """
        net = cls(size)
        net.body.load_state_dict(meso.state_dict())
        return net.train()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score a batch.

        Parameters
        ----------
        x : torch.Tensor
            float32 ``(B, 3, size, size)``, RGB in [0, 1] (:func:`crops_to_tensor`).

        Returns
        -------
        logit_fake : torch.Tensor
            float32 ``(B,)``; ``sigmoid(logit_fake)`` is P(fake).
        embedding : torch.Tensor
            float32 ``(B, 16)``, the penultimate (LeakyReLU) layer.

        Raises
        ------
        ValueError
            If ``x`` is not ``(B, 3, size, size)``.
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, self.size, self.size):
            raise ValueError(f"FaceForgeryNet expects (B, 3, {self.size}, {self.size}), got {tuple(x.shape)}")
        b = self.body
        for conv, bn, pool in zip(b.convs, b.bns, self.pools):
            x = F.max_pool2d(bn(F.relu(conv(x))), pool)
        x = x.permute(0, 2, 3, 1).flatten(1)  # NHWC flatten, as the published dense kernel expects
        embedding = F.leaky_relu(b.fc1(b.dropout(x)), LEAKY_SLOPE)
        logit_real = b.fc2(b.dropout(embedding)).squeeze(1)
        return -logit_real, embedding


def crops_to_tensor(crops: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 RGB crops -> the network's float input, resized to ``size`` where needed.

    Parameters
    ----------
    crops : np.ndarray
        uint8 RGB ``(N, S, S, 3)``, any ``S >= 1``.
    size : int
        Side of the output in pixels.

    Returns
    -------
    torch.Tensor
        float32 ``(N, 3, size, size)`` in [0, 1]. Shrinking uses area interpolation, enlarging
        bicubic (as :mod:`deepscan.faces` does).

    Raises
    ------
    TypeError
        If ``crops`` is not a uint8 numpy array.
    ValueError
        If ``crops`` is not ``(N, S, S, 3)`` with square crops.
    """
    if not isinstance(crops, np.ndarray) or crops.dtype != np.uint8:
        raise TypeError(f"crops must be a uint8 numpy array, got {getattr(crops, 'dtype', type(crops))}")
    if crops.ndim != 4 or crops.shape[3] != 3 or crops.shape[1] != crops.shape[2] or crops.shape[1] < 1:
        raise ValueError(f"crops must have shape (N, S, S, 3), got {crops.shape}")
    if crops.shape[1] != size:
        interp = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_CUBIC
        crops = np.stack([cv2.resize(c, (size, size), interpolation=interp) for c in crops]) if len(crops) \
            else np.zeros((0, size, size, 3), np.uint8)
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2)
    return x.float().div_(255.0).contiguous()


@dataclass
class FaceForgeryExpert:
    """A loaded ``face_forgery`` expert.

    Attributes
    ----------
    model : FaceForgeryNet
        In eval mode, on the CPU.
    config : dict
        How it was trained (``crop``, ``steps``, ``batch``, ``lr``, augmentations...).
    provenance : dict
        Training files (name, SHA-256, label, system, licence), licences, metrics, seed.
    path : Path or None
        The weights file it came from.
    sha256 : str or None
        That file's SHA-256.
    """

    model: FaceForgeryNet
    config: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    path: Path | None = None
    sha256: str | None = None

    @property
    def crop(self) -> str:
        """Which face crops :meth:`score` expects: ``"clip"`` (:attr:`deepscan.faces.FaceCrops.crops`)
        or ``"meso"`` (:attr:`deepscan.faces.FaceCrops.meso_crops`)."""
        return str(self.config.get("crop", "meso"))

    @torch.inference_mode()
    def score(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P(fake) and tokens of each face crop.

        Parameters
        ----------
        crops : np.ndarray
            uint8 RGB ``(N, S, S, 3)`` face crops of the kind :attr:`crop` names
            (:attr:`deepscan.faces.FaceCrops.crops`, ``S = 224``, for the shipped weights), resized
            to the net's input side (``model.size``) with area interpolation. ``N = 0`` gives
            empty outputs.

        Returns
        -------
        p_fake : np.ndarray
            float32 ``(N,)`` in [0, 1], per crop. A file's score is the mean over its crops.
        tokens : np.ndarray
            float32 ``(N, 17)``: the 16-d penultimate embedding and the logit of fake.

        Raises
        ------
        TypeError, ValueError
            As :func:`crops_to_tensor`.
        """
        x_all = crops
        if not isinstance(x_all, np.ndarray) or x_all.dtype != np.uint8:
            raise TypeError(f"crops must be a uint8 numpy array, got {getattr(x_all, 'dtype', type(x_all))}")
        if x_all.ndim != 4 or x_all.shape[3] != 3 or x_all.shape[1] != x_all.shape[2]:
            raise ValueError(f"crops must have shape (N, S, S, 3), got {x_all.shape}")
        self.model.eval()
        p, tokens = [], []
        for i in range(0, len(x_all), SCORE_BATCH):
            logit, embedding = self.model(crops_to_tensor(x_all[i:i + SCORE_BATCH], self.model.size))
            p.append(torch.sigmoid(logit).numpy())
            tokens.append(torch.cat([embedding, logit[:, None]], 1).numpy())
        if not p:
            return np.zeros(0, np.float32), np.zeros((0, TOKEN_DIM), np.float32)
        return np.concatenate(p).astype(np.float32), np.concatenate(tokens).astype(np.float32)


def save_face_expert(model: FaceForgeryNet, path: str | os.PathLike, config: dict, provenance: dict) -> Path:
    """Write a trained net as safetensors with its config and provenance in the metadata.

    Parameters
    ----------
    model : FaceForgeryNet
        The trained net (its BatchNorm running statistics included).
    path : str or os.PathLike
        Output ``.safetensors`` (parent folders are created).
    config, provenance : dict
        JSON-serialisable; stored as the metadata strings ``config`` and ``provenance``.

    Returns
    -------
    Path
        ``path``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    config = {**config, "size": model.size}
    metadata = {"format": FORMAT, "cue": CUE, "config": json.dumps(config, sort_keys=True),
                "provenance": json.dumps(provenance, sort_keys=True)}
    save_file(state, str(path), metadata=metadata)
    return path


def load_face_expert(path: str | os.PathLike | None = None) -> FaceForgeryExpert:
    """Load the ``face_forgery`` expert.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A ``.safetensors`` written by :func:`save_face_expert`; default :data:`DEFAULT_WEIGHTS`,
        the weights shipped in the package.

    Returns
    -------
    FaceForgeryExpert
        Model in eval mode on the CPU, with its config, provenance, path and SHA-256.

    Raises
    ------
    ModelLoadingError
        If the file is missing, not safetensors, not a face-forgery file (``format`` metadata), or
        its tensors do not match :class:`FaceForgeryNet` exactly (names and shapes).
    """
    from deepscan.weights import read_weights, sha256_of

    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    metadata, state = read_weights(path, "face-forgery")
    if metadata.get("format") != FORMAT:
        raise ModelLoadingError(f"not face-forgery weights: metadata format {metadata.get('format')!r}, "
                                f"expected {FORMAT!r}", path=path)
    try:
        config = json.loads(metadata.get("config", "{}"))
        provenance = json.loads(metadata.get("provenance", "{}"))
    except json.JSONDecodeError as error:
        raise ModelLoadingError(f"face-forgery metadata is not JSON: {error}", path=path) from error
    size = config.get("size", INPUT_SIZE)
    if size not in SIZES:
        raise ModelLoadingError(f"face-forgery config has input size {size!r}, not one of {SIZES}", path=path)
    model = FaceForgeryNet(size)
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or extra or wrong:
        raise ModelLoadingError(f"face-forgery tensors do not match the network: missing {missing[:4]}, "
                                f"unexpected {extra[:4]}, wrong shape {wrong[:4]}", path=path)
    model.load_state_dict(state, strict=True)
    return FaceForgeryExpert(model.eval(), config, provenance, path, sha256_of(path))
