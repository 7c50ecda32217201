"""Small models covering the patterns structured pruning must handle."""

from __future__ import annotations

import torch
from torch import nn


class DepthwiseConcat(nn.Module):
    """Depthwise-separable block, GroupNorm, a concatenation and flatten into a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 32, 3, padding=1, groups=16)
        self.pw = nn.Conv2d(32, 12, 1)
        self.gn = nn.GroupNorm(4, 12)
        self.side = nn.Conv2d(16, 8, 1)
        self.merge = nn.Conv2d(20, 10, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(40, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        a = self.gn(self.pw(torch.relu(self.dw(x))))
        b = torch.relu(self.side(x))
        y = torch.relu(self.merge(torch.cat([a, b], dim=1)))
        return self.fc(torch.flatten(self.pool(y), 1))


class Recurrent(nn.Module):
    """Embedding -> 2-layer bidirectional LSTM -> GRU -> Linear on the last step."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(30, 12)
        self.proj = nn.Linear(12, 16)
        self.lstm = nn.LSTM(16, 20, num_layers=2, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(40, 18, batch_first=True)
        self.head = nn.Linear(18, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.proj(self.emb(tokens)))
        x, _ = self.lstm(x)
        x, _ = self.gru(x)
        return self.head(x[:, -1])


class Encoder(nn.Module):
    """nn.TransformerEncoder (multi-head attention) over token embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(30, 16)
        layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=48, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.emb(tokens)).mean(1))


class Upsampler(nn.Module):
    """Conv1d + BatchNorm1d features, reshaped to 2-D and upsampled by a transposed conv."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Conv1d(2, 12, 3, padding=1)
        self.bn1 = nn.BatchNorm1d(12)
        self.down = nn.Conv2d(12, 10, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(10, 8, 2, stride=2)
        self.bn2 = nn.BatchNorm2d(8)
        self.out = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.enc(x)))  # (N, 12, 64)
        h = h.reshape(h.shape[0], h.shape[1], 8, 8)
        h = torch.relu(self.down(h))
        return self.out(torch.relu(self.bn2(self.up(h))))
