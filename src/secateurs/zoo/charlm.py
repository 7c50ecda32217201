"""A character-level Transformer language model (decoder-only, causal attention)."""

from __future__ import annotations

import math

import torch
from torch import nn

from secateurs.zoo.text import VOCAB
from secateurs.zoo.vit import Block


class CharLM(nn.Module):
    """Token + position embeddings, causal pre-norm blocks, a linear head over the vocabulary.

    `forward(ids)` takes (N, T) int64 ids and returns (N, T, vocab) logits.
    """

    def __init__(
        self,
        vocab: int = len(VOCAB),
        context: int = 64,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        self.context = context
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(context, dim)
        self.blocks = nn.Sequential(
            *[Block(dim, heads, mlp_ratio, causal=True) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        if t > self.context:
            raise ValueError(f"sequence length {t} exceeds the model's context {self.context}")
        pos = torch.arange(t, device=ids.device)
        h = self.tok(ids) + self.pos(pos)
        return self.head(self.norm(self.blocks(h)))


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-character cross-entropy (nats) over all positions."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


@torch.no_grad()
def perplexity(model: nn.Module, windows: torch.Tensor, batch_size: int = 256) -> float:
    """exp(mean cross-entropy per character) over windows of ids (N, T + 1), in float64."""
    if windows.ndim != 2 or windows.shape[0] == 0 or windows.shape[1] < 2:
        raise ValueError(
            f"windows must be a non-empty (N, T + 1) tensor, got {tuple(windows.shape)}"
        )
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    count = 0
    try:
        for i in range(0, len(windows), batch_size):
            w = windows[i : i + batch_size]
            logits = model(w[:, :-1])
            ce = nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).double(), w[:, 1:].reshape(-1), reduction="sum"
            )
            total += ce
            count += w[:, 1:].numel()
    finally:
        model.train(was_training)
    return math.exp(float(total) / count)


def char_lm(context: int = 64, dim: int = 64, depth: int = 2, heads: int = 4) -> CharLM:
    """Factory for `--arch secateurs.zoo.charlm:char_lm`."""
    return CharLM(context=context, dim=dim, depth=depth, heads=heads)
