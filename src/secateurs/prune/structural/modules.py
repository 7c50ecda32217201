"""`HeadPrunedAttention`: what an nn.MultiheadAttention becomes when heads are removed.

torch's MultiheadAttention ties the number of heads to its embedding width (``head_dim *
num_heads == embed_dim``), so it cannot hold fewer heads of the same size. This module takes
the same call (``query, key, value, key_padding_mask, need_weights, attn_mask,
average_attn_weights, is_causal``) and returns the same ``(output, weights)``, with separate
q/k/v projections to ``num_heads * head_dim`` and an output projection back to ``embed_dim``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class HeadPrunedAttention(nn.Module):
    """Multi-head attention with any number of heads of size `head_dim` (no fast path)."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        head_dim: int,
        kdim: int | None = None,
        vdim: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        batch_first: bool = False,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        inner = num_heads * head_dim
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, head_dim
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self.dropout, self.batch_first, self.bias = float(dropout), batch_first, bias
        # nn.TransformerEncoderLayer reads these to decide on its fused fast path: never take it.
        self._qkv_same_embed_dim = False
        self.in_proj_bias = None
        self.q_proj = nn.Linear(embed_dim, inner, bias=bias, **kw)
        self.k_proj = nn.Linear(self.kdim, inner, bias=bias, **kw)
        self.v_proj = nn.Linear(self.vdim, inner, bias=bias, **kw)
        self.out_proj = nn.Linear(inner, embed_dim, bias=bias, **kw)

    @classmethod
    def from_mha(cls, mha: nn.MultiheadAttention, keep_heads: list[int]) -> HeadPrunedAttention:
        """The heads `keep_heads` of `mha`, with its weights."""
        hd = mha.head_dim
        e = mha.embed_dim
        w = mha.weight_dtype if hasattr(mha, "weight_dtype") else mha.out_proj.weight.dtype
        new = cls(
            e,
            len(keep_heads),
            hd,
            mha.kdim,
            mha.vdim,
            bias=mha.in_proj_bias is not None,
            dropout=mha.dropout,
            batch_first=mha.batch_first,
            device=mha.out_proj.weight.device,
            dtype=w,
        )
        rows = torch.as_tensor([h * hd + i for h in keep_heads for i in range(hd)])
        if mha._qkv_same_embed_dim:
            q_w, k_w, v_w = mha.in_proj_weight.chunk(3)
        else:
            q_w, k_w, v_w = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
        with torch.no_grad():
            for proj, weight, k in (
                (new.q_proj, q_w, 0),
                (new.k_proj, k_w, 1),
                (new.v_proj, v_w, 2),
            ):
                proj.weight.copy_(weight[rows])
                if mha.in_proj_bias is not None:
                    proj.bias.copy_(mha.in_proj_bias[k * e : (k + 1) * e][rows])
            new.out_proj.weight.copy_(mha.out_proj.weight[:, rows])
            if mha.out_proj.bias is not None:
                new.out_proj.bias.copy_(mha.out_proj.bias)
        return new

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batched = query.dim() == 3
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if not self.batch_first or not batched:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n, lq, _ = query.shape
        s = key.shape[1]
        q = self.q_proj(query).view(n, lq, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(key).view(n, s, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(value).view(n, s, self.num_heads, self.head_dim).transpose(1, 2)
        mask = _additive_mask(attn_mask, key_padding_mask, n, lq, s, q.dtype, is_causal)
        scores = q @ k.transpose(-2, -1) * self.head_dim**-0.5
        if mask is not None:
            scores = scores + mask
        weights = torch.softmax(scores, dim=-1)
        weights = F.dropout(weights, p=self.dropout, training=self.training)
        out = (weights @ v).transpose(1, 2).reshape(n, lq, self.num_heads * self.head_dim)
        out = self.out_proj(out)
        if not self.batch_first or not batched:
            out = out.transpose(0, 1)
        if not batched:
            out = out.squeeze(1)
        if not need_weights:
            return out, None
        w = weights.mean(1) if average_attn_weights else weights
        return out, (w if batched else w.squeeze(0))


def _additive_mask(
    attn_mask: torch.Tensor | None,
    key_padding_mask: torch.Tensor | None,
    n: int,
    lq: int,
    s: int,
    dtype: torch.dtype,
    is_causal: bool,
) -> torch.Tensor | None:
    def to_float(m: torch.Tensor) -> torch.Tensor:
        if m.dtype == torch.bool:
            return torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill(m, float("-inf"))
        return m.to(dtype)

    mask = None
    if attn_mask is None and is_causal:
        attn_mask = torch.ones(lq, s, dtype=torch.bool).triu(1)
    if attn_mask is not None:
        if attn_mask.dim() == 3:
            raise ValueError(
                "HeadPrunedAttention takes a 2-D attn_mask (per-head masks refer to the "
                "removed heads); pass one mask shared by all heads"
            )
        mask = to_float(attn_mask).view(1, 1, lq, s)
    if key_padding_mask is not None:
        pad = to_float(key_padding_mask).view(n, 1, 1, s)
        mask = pad if mask is None else mask + pad
    return mask
