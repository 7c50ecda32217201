"""A recurrent classifier that reads a digit image one row at a time.

Each 8x8 image becomes a sequence of 8 steps with 8 features; the last hidden state
classifies. This is the classic "sequential MNIST" set-up, small enough for a CPU.
"""

from __future__ import annotations

import torch
from torch import nn


class RowRNN(nn.Module):
    """LSTM or GRU over image rows followed by a linear classifier."""

    def __init__(
        self,
        cell: str = "lstm",
        rows: int = 8,
        features: int = 8,
        hidden: int = 64,
        layers: int = 1,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        kinds = {"lstm": nn.LSTM, "gru": nn.GRU}
        if cell not in kinds:
            raise ValueError(f"cell must be one of {sorted(kinds)}, got {cell!r}")
        self.cell = cell
        self.rows = rows
        self.features = features
        self.rnn = kinds[cell](features, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.reshape(x.shape[0], self.rows, self.features)
        out, _ = self.rnn(seq)
        return self.fc(out[:, -1])


def row_lstm(hidden: int = 64, layers: int = 1) -> RowRNN:
    """Factory for `--arch secateurs.zoo.recurrent:row_lstm`."""
    return RowRNN("lstm", hidden=hidden, layers=layers)


def row_gru(hidden: int = 64, layers: int = 1) -> RowRNN:
    """Factory for `--arch secateurs.zoo.recurrent:row_gru`."""
    return RowRNN("gru", hidden=hidden, layers=layers)
