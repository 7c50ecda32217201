"""A tiny Vision Transformer for 8x8 digit images.

Patches are cut by a strided convolution (the usual ViT patch embedding), a learned class
token and position embeddings are added, and pre-norm blocks built from
`nn.MultiheadAttention` and a two-layer MLP follow. Standard modules only, so that pruning
and `secateurs.io.arch` can see every layer.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    """Pre-norm Transformer block: x + attn(ln(x)), then x + mlp(ln(x)).

    With `causal=True` each position attends only to itself and earlier positions.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, causal: bool = False) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        hidden = int(dim * mlp_ratio)
        self.causal = causal
        self.ln1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        mask = None
        if self.causal:
            n = x.shape[1]
            mask = torch.triu(torch.ones(n, n, dtype=torch.bool, device=x.device), diagonal=1)
        a, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False)
        x = x + a
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class TinyViT(nn.Module):
    """ViT classifier for (N, 1, H, W) images cut into `patch` x `patch` patches.

    The classifier reads the mean of the patch tokens (global average pooling, as in many
    small ViTs) rather than a class token. On 8x8 digits, four 4x4 patches (the default)
    leave the initial loss plateau far sooner than sixteen 2x2 patches and end as accurate.
    """

    def __init__(
        self,
        image: int = 8,
        patch: int = 4,
        dim: int = 32,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        num_classes: int = 10,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if patch < 1 or image % patch:
            raise ValueError(f"patch={patch} must divide image={image}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        n = (image // patch) ** 2
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.pos_embed = nn.Parameter(torch.randn(1, n, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, patches, dim)
        h = self.norm(self.blocks(tokens + self.pos_embed))
        return self.head(h.mean(dim=1))


def tiny_vit(
    image: int = 8, patch: int = 4, dim: int = 32, depth: int = 2, heads: int = 4
) -> TinyViT:
    """Factory for `--arch secateurs.zoo.vit:tiny_vit`."""
    return TinyViT(image=image, patch=patch, dim=dim, depth=depth, heads=heads)
