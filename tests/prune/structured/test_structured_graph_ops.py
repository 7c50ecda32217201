"""Graph patterns of the residual stream: learned tokens and positions, spatial padding and
rolls, and a hand-written RMSNorm (what ViT, Swin and Llama do, written here in plain PyTorch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from secateurs.prune import structured

from .test_structured_exact import _check_exact


class Tokens(nn.Module):
    """Token embedding + learned positions, 3 learned register tokens concatenated in front,
    an MLP block with a residual, and a head on the first token (no norms: removal is exact
    even when the embedding width is pruned)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.emb = nn.Embedding(30, width)
        self.registers = nn.Parameter(torch.randn(1, 3, width))
        self.pos = nn.Parameter(torch.randn(1, 3 + 9, width))
        self.fc1 = nn.Linear(width, 32)
        self.fc2 = nn.Linear(32, width)
        self.head = nn.Linear(width, 5)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.emb(tokens)
        x = torch.cat([self.registers.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        x = x + self.fc2(F.gelu(self.fc1(x)))
        return self.head(x[:, 0])


def test_learned_tokens_and_positions_follow_the_pruned_width() -> None:
    torch.manual_seed(0)
    tokens = torch.randint(0, 30, (2, 9))
    pruned, _ = _check_exact(Tokens(), tokens, prune_embedding=True)
    width = pruned.emb.embedding_dim
    assert width == 8
    # the parameters are cut along their channel axis, never along tokens or positions
    assert pruned.registers.shape == (1, 3, width) and pruned.pos.shape == (1, 12, width)
    assert pruned.fc1.in_features == pruned.fc2.out_features == pruned.head.in_features == width
    # without prune_embedding the stream keeps its width; the MLP is still pruned
    pruned, _ = _check_exact(Tokens(), tokens)
    assert pruned.emb.embedding_dim == 16 and pruned.fc1.out_features == 16


class Spatial(nn.Module):
    """Channels-last features padded and rolled in space (Swin's shifted windows), pooled,
    then read by a Linear. `roll_channels` rolls along the channels instead."""

    def __init__(self, roll_channels: bool = False) -> None:
        super().__init__()
        self.roll_channels = roll_channels
        self.proj = nn.Linear(3, 24)
        self.mid = nn.Linear(24, 10)
        self.out = nn.Linear(10, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, H, W, 3)
        h = torch.relu(self.proj(x))
        h = F.pad(h, (0, 0, 1, 1, 1, 1))  # pads W and H, not the channels
        dims = (3,) if self.roll_channels else (1, 2)
        h = torch.roll(h, shifts=(1,) * len(dims), dims=dims)
        h = F.avg_pool2d(h.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
        return self.out(torch.relu(self.mid(h)))


def test_padding_pooling_and_rolls_in_space_keep_channels_prunable() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 6, 6, 3)
    pruned, _ = _check_exact(Spatial(), x)
    assert pruned.proj.out_features == pruned.mid.in_features == 12
    # a roll along the channels moves them: they are kept, and the report says why
    model = Spatial(roll_channels=True)
    pruned, report = structured(model, x, ratio=0.5)
    assert pruned.proj.out_features == 24 and pruned.mid.out_features == 5
    assert "roll" in report.kept["proj"]


class RMSModel(nn.Module):
    """Embedding, then two residual MLP blocks with a hand-written RMSNorm (as Llama writes
    it: mean of squares over the channels), a final norm and a head."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.emb = nn.Embedding(30, width)
        self.norms = nn.ParameterList([nn.Parameter(torch.rand(width) + 0.5) for _ in range(3)])
        self.up = nn.ModuleList([nn.Linear(width, 24) for _ in range(2)])
        self.down = nn.ModuleList([nn.Linear(24, width) for _ in range(2)])
        self.head = nn.Linear(width, 7)

    @staticmethod
    def _rms(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.emb(tokens)
        for k in range(2):
            x = x + self.down[k](F.silu(self.up[k](self._rms(x, self.norms[k]))))
        return self.head(self._rms(x, self.norms[2]))


def test_a_hand_written_rms_norm_prunes_the_stream_only_when_asked() -> None:
    torch.manual_seed(0)
    model = RMSModel().eval()
    tokens = torch.randint(0, 30, (2, 9))
    pruned, report = structured(model, tokens, ratio=0.5)
    assert pruned.emb.embedding_dim == 16  # a mean over the channels: not exact, so kept
    assert "mean over the channels" in report.kept["emb"]
    pruned, report = structured(model, tokens, ratio=0.5, prune_embedding=True)
    width = pruned.emb.embedding_dim
    assert width == 8 and pruned.head.in_features == width
    # Independent reference: the same class built at the smaller width with the dense
    # weights of the kept channels (found by matching embedding columns) and MLP units.
    dense_cols = model.emb.weight.T
    keep = [int((dense_cols == c).all(1).nonzero()) for c in pruned.emb.weight.T]
    ref = RMSModel(width).eval()
    with torch.no_grad():
        ref.emb.weight.copy_(model.emb.weight[:, keep])
        for k in range(3):
            ref.norms[k].copy_(model.norms[k][keep])
        for k in range(2):
            rows = [
                int((model.up[k].weight[:, keep] == r).all(1).nonzero()[0])
                for r in pruned.up[k].weight
            ]
            ref.up[k] = nn.Linear(width, len(rows))
            ref.up[k].weight.copy_(model.up[k].weight[rows][:, keep])
            ref.up[k].bias.copy_(model.up[k].bias[rows])
            ref.down[k] = nn.Linear(len(rows), width)
            ref.down[k].weight.copy_(model.down[k].weight[keep][:, rows])
            ref.down[k].bias.copy_(model.down[k].bias[keep])
        ref.head.weight.copy_(model.head.weight[:, keep])
        ref.head.bias.copy_(model.head.bias)
        torch.testing.assert_close(pruned(tokens), ref(tokens), atol=1e-6, rtol=1e-5)
