"""Video encoder: parameter-free temporal-change tokens over per-frame CLIP embeddings.

Appearance is already in the image tokens; what the video modality adds is how the face changes
over time: mouth motion that should follow the speech, and the frame-to-frame flicker of per-frame
face swaps. Following the RGB-difference stream of Temporal Segment Networks (Wang et al., "Temporal
Segment Networks: Towards Good Practices for Deep Action Recognition", ECCV 2016, sec. 3.2), which
feeds stacked differences of consecutive frames instead of frames, each token summarises the
differences of consecutive (unit-normalised) CLIP embeddings within a segment.

The segmentation: segment ``k`` spans frames ``k*S .. min((k+1)*S, T-1)`` with ``S =``
:data:`VIDEO_SEGMENT_FRAMES` (consecutive segments share their boundary frame, so no difference is
dropped); ``Tv = ceil((T - 1) / S)``, 8 tokens for a 4 s window at 8 fps. Its time is the centre of
its first and last frame times.

The token: with ``d_j = (e_{j+1} - e_j) / (t_{j+1} - t_j)`` the per-second rate of change of the
unit-normalised embedding between frames ``j`` and ``j+1`` (timestamps, not frame indices, so a
variable frame rate is handled), the token is, per dimension,
``sign(sum_j d_j) * sqrt(mean_j d_j^2)``: the root-mean-square rate keeps the energy of back-and-forth
changes (a mean of differences would telescope to the net displacement and cancel a mouth that opens
and closes within a segment, or swap flicker), and the sign of the net change keeps the direction
(opening vs closing) that lines up with the audio. Static frames give zero tokens; ties take ``+``.

A single frame (an image, or a window with one frame) has no temporal change to measure and gives
zero tokens ``(0, D)``: the detector masks the video modality, as for a missing one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["VIDEO_SEGMENT_FRAMES", "VideoEncoder"]

VIDEO_SEGMENT_FRAMES = 4  # frame-to-frame differences per token (0.5 s at 8 fps)


class VideoEncoder:
    """Temporal-change tokens from per-frame embeddings: ``(T, D)`` + times -> ``(Tv, D)`` + times.

    Parameter-free and stateless (see the module docstring for the method and its source).

    Parameters
    ----------
    dim : int
        Embedding size ``D`` of the image encoder (512 for CLIP ViT-B/32).
    segment_frames : int
        Frame-to-frame differences per token.
    """

    method = "signed-rms-rate-v1"

    def __init__(self, dim: int, segment_frames: int = VIDEO_SEGMENT_FRAMES):
        if segment_frames < 1:
            raise ValueError(f"segment_frames must be >= 1, got {segment_frames}")
        self.dim = int(dim)
        self.segment_frames = int(segment_frames)

    @property
    def config(self) -> dict:
        """Parameters that change the tokens (JSON-ready)."""
        return {"source": "image", "method": self.method, "segment_frames": self.segment_frames}

    def __call__(self, embeddings: torch.Tensor, times_s) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute segment tokens.

        Parameters
        ----------
        embeddings : torch.Tensor
            float ``(T, D)`` per-frame image embeddings.
        times_s : array-like
            ``(T,)`` frame times in seconds, strictly increasing.

        Returns
        -------
        tokens : torch.Tensor
            float32 ``(Tv, D)``, ``Tv = ceil((T - 1) / segment_frames)`` (0 when ``T <= 1``), in
            units of (unit-sphere distance) per second.
        times_s : torch.Tensor
            float32 ``(Tv,)`` segment centres in seconds.

        Raises
        ------
        ValueError
            If shapes disagree, ``D`` is not :attr:`dim`, or times are not strictly increasing or not
            finite.
        """
        emb = torch.as_tensor(embeddings).detach().cpu().float()
        times = torch.as_tensor(times_s, dtype=torch.float64).detach().cpu()
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise ValueError(f"embeddings must have shape (T, {self.dim}), got {tuple(emb.shape)}")
        if times.shape != (emb.shape[0],):
            raise ValueError(f"times_s must have shape ({emb.shape[0]},), got {tuple(times.shape)}")
        count = emb.shape[0]
        if count <= 1:
            return torch.zeros((0, self.dim)), torch.zeros((0,), dtype=torch.float32)
        dt = times[1:] - times[:-1]
        if not torch.isfinite(times).all() or (dt <= 0).any():
            raise ValueError("frame times must be finite and strictly increasing")
        unit = F.normalize(emb, dim=1)
        rate = (unit[1:] - unit[:-1]) / dt.float().unsqueeze(1)  # (T-1, D), per second
        size = self.segment_frames
        groups = -(-(count - 1) // size)
        index = torch.arange(count - 1) // size
        n = torch.zeros(groups).index_add_(0, index, torch.ones(count - 1)).unsqueeze(1)
        net = torch.zeros(groups, self.dim).index_add_(0, index, rate)
        rms = torch.sqrt(torch.zeros(groups, self.dim).index_add_(0, index, rate * rate) / n)
        tokens = torch.where(net >= 0, rms, -rms)
        first = torch.arange(groups) * size
        last = torch.clamp(first + size, max=count - 1)
        centres = (times[first] + times[last]) / 2
        return tokens, centres.float()
