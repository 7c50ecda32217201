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


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, r: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.fc2 = nn.Conv2d(c // r, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * s


class SeparableSE(nn.Module):
    """MobileNet-style blocks: expand, depthwise, squeeze-excitation, project, residual."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.ModuleList()
        for _ in range(2):
            self.blocks.append(
                nn.Sequential(
                    nn.Conv2d(16, 48, 1),
                    nn.BatchNorm2d(48),
                    nn.Hardswish(),
                    nn.Conv2d(48, 48, 3, padding=1, groups=48),
                    nn.BatchNorm2d(48),
                    nn.Hardswish(),
                    SqueezeExcite(48),
                    nn.Conv2d(48, 16, 1),
                    nn.BatchNorm2d(16),
                )
            )
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x.mean((2, 3)))


class UNet(nn.Module):
    """Two-level U-Net: skips concatenated with upsampled features."""

    def __init__(self) -> None:
        super().__init__()

        def conv(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())

        self.enc1, self.enc2, self.mid = conv(3, 16), conv(16, 32), conv(32, 64)
        self.up2 = nn.ConvTranspose2d(64, 32, 2, stride=2)
        self.dec2 = conv(64, 32)
        self.up1 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec1 = conv(32, 16)
        self.out = nn.Conv2d(16, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(nn.functional.max_pool2d(e1, 2))
        m = self.mid(nn.functional.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.out(d1)


class TwoInTwoOut(nn.Module):
    """Two inputs (image, vector), two outputs (class logits, a regression)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
        self.vec = nn.Sequential(nn.Linear(6, 32), nn.GELU())
        self.fuse = nn.Linear(16 + 32, 64)
        self.cls = nn.Linear(64, 4)
        self.reg = nn.Sequential(nn.Linear(64, 24), nn.Tanh(), nn.Linear(24, 1))

    def forward(self, image: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.fuse(torch.cat([self.conv(image).mean((2, 3)), self.vec(v)], 1)))
        return self.cls(h), self.reg(h)


class TiedLM(nn.Module):
    """A small language model whose output layer shares the embedding's weight."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(40, 24)
        self.ff = nn.Sequential(nn.Linear(24, 64), nn.GELU(), nn.Linear(64, 24))
        self.out = nn.Linear(24, 40, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.emb(tokens)
        return self.out(h + self.ff(h))
