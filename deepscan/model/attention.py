"""Masked multi-head attention blocks: self-attention within a modality, cross-attention between two.

Blocks are pre-LayerNorm transformer blocks (Xiong et al. 2020, "On Layer Normalization in the
Transformer Architecture", arXiv:2002.04745) around scaled dot-product attention (Vaswani et al.
2017, "Attention Is All You Need", arXiv:1706.03762, section 3.2). Every block takes a boolean
key padding mask ``(B, Tk)`` with ``True`` for a real token. A row whose keys are all padding
(a missing modality) would make softmax divide zero by zero; such rows are computed against a
dummy mask and then replaced by the unchanged query, so no NaN can appear, forward or backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _safe_key_mask(key_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Return ``(mask, has_key)``: ``key_mask`` with all-padding rows opened, and which rows had keys.

    Parameters
    ----------
    key_mask : Tensor
        bool ``(B, Tk)``, ``True`` = real token.

    Returns
    -------
    mask : Tensor
        bool ``(B, Tk)``; rows without any real key are all ``True`` (their output is discarded).
    has_key : Tensor
        bool ``(B,)``.
    """
    has_key = key_mask.any(dim=1)
    return key_mask | ~has_key[:, None], has_key


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention with a key padding mask (Vaswani et al. 2017, 3.2.2).

    Parameters
    ----------
    d_model : int
        Token width.
    n_heads : int
        Number of heads; must divide ``d_model``.
    dropout : float
        Dropout on attention weights during training.

    Raises
    ------
    ValueError
        When ``n_heads`` does not divide ``d_model``.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"n_heads ({n_heads}) must divide d_model ({d_model})")
        self.n_heads = n_heads
        self.dropout = dropout
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, context: Tensor, key_mask: Tensor) -> Tensor:
        """Attend from ``x`` to ``context``.

        Parameters
        ----------
        x : Tensor
            float ``(B, Tq, d_model)`` queries.
        context : Tensor
            float ``(B, Tk, d_model)`` keys and values.
        key_mask : Tensor
            bool ``(B, Tk)``, ``True`` = attend; every row needs at least one ``True``.

        Returns
        -------
        Tensor
            ``(B, Tq, d_model)``.
        """
        batch, n_q, width = x.shape
        n_k = context.shape[1]
        head = width // self.n_heads
        q = self.query(x).view(batch, n_q, self.n_heads, head).transpose(1, 2)
        k = self.key(context).view(batch, n_k, self.n_heads, head).transpose(1, 2)
        v = self.value(context).view(batch, n_k, self.n_heads, head).transpose(1, 2)
        attended = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=key_mask[:, None, None, :],
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(attended.transpose(1, 2).reshape(batch, n_q, width))


class FeedForward(nn.Sequential):
    """Position-wise feed-forward network ``Linear -> GELU -> Dropout -> Linear`` (Vaswani et al. 2017, 3.3).

    Parameters
    ----------
    d_model : int
        Token width in and out.
    ff_dim : int
        Hidden width.
    dropout : float
        Dropout after the activation during training.
    """

    def __init__(self, d_model: int, ff_dim: int, dropout: float = 0.0):
        super().__init__(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model))


class CrossModalAttention(nn.Module):
    """Cross-attention from a query modality to a key/value modality, with residuals and LayerNorm.

    ``h = q + Attn(LN(q), LN(kv)); out = h + FF(LN(h))``. For a row whose key modality is entirely
    padding (missing), ``out = q`` exactly.

    Parameters
    ----------
    d_model : int
        Token width of both modalities (after projection).
    n_heads : int
        Attention heads; must divide ``d_model``.
    dropout : float
        Dropout probability in attention, residual branches and feed-forward.
    ff_dim : int, optional
        Feed-forward hidden width (default ``2 * d_model``).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, ff_dim: int | None = None):
        super().__init__()
        self.norm_query = nn.LayerNorm(d_model)
        self.norm_context = nn.LayerNorm(d_model)
        self.attention = MultiHeadAttention(d_model, n_heads, dropout)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, ff_dim or 2 * d_model, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, query: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        """Update ``query`` tokens with what they find in ``context``.

        Parameters
        ----------
        query : Tensor
            float ``(B, Tq, d_model)`` tokens of the query modality (padding rows are allowed;
            they never influence real tokens).
        context : Tensor
            float ``(B, Tk, d_model)`` tokens of the key/value modality.
        context_mask : Tensor
            bool ``(B, Tk)``, ``True`` = real token; a row may be all ``False``.

        Returns
        -------
        Tensor
            ``(B, Tq, d_model)``; equal to ``query`` in rows whose ``context_mask`` is all ``False``.
        """
        mask, has_key = _safe_key_mask(context_mask)
        h = query + self.drop(self.attention(self.norm_query(query), self.norm_context(context), mask))
        h = h + self.drop(self.ff(self.norm_ff(h)))
        return torch.where(has_key[:, None, None], h, query)


class SelfAttentionBlock(nn.Module):
    """Masked self-attention block within one modality: ``h = x + Attn(LN(x)); out = h + FF(LN(h))``.

    Padding tokens never influence real tokens; a row with no real token is returned unchanged.

    Parameters
    ----------
    d_model : int
        Token width.
    n_heads : int
        Attention heads; must divide ``d_model``.
    dropout : float
        Dropout probability in attention, residual branches and feed-forward.
    ff_dim : int, optional
        Feed-forward hidden width (default ``2 * d_model``).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, ff_dim: int | None = None):
        super().__init__()
        self.norm_attention = nn.LayerNorm(d_model)
        self.attention = MultiHeadAttention(d_model, n_heads, dropout)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, ff_dim or 2 * d_model, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Apply the block.

        Parameters
        ----------
        x : Tensor
            float ``(B, T, d_model)``.
        mask : Tensor
            bool ``(B, T)``, ``True`` = real token; a row may be all ``False``.

        Returns
        -------
        Tensor
            ``(B, T, d_model)``; equal to ``x`` in rows whose ``mask`` is all ``False``.
        """
        safe, has_key = _safe_key_mask(mask)
        normed = self.norm_attention(x)
        h = x + self.drop(self.attention(normed, normed, safe))
        h = h + self.drop(self.ff(self.norm_ff(h)))
        return torch.where(has_key[:, None, None], h, x)
