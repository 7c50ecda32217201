"""The adding problem and a tanh RNN: the long-sequence task of Pascanu et al. (2013).

Each input is a sequence of `length` pairs (value, marker): values uniform in [0, 1], the marker
1 at exactly two positions and 0 elsewhere; the target is the sum of the two marked values.
The markers lie in the last `span` steps (default: the whole sequence): the first in the first
half of that span, the second in its second half (Hochreiter and Schmidhuber's placement), so
the model must carry a value across up to `span` steps while reading all `length` inputs.
Predicting the mean (1.0) gives a mean squared error of 1/6 ~ 0.167. Data are generated
procedurally from a seed (nothing is downloaded).
"""

from __future__ import annotations

import math

import torch
from torch import nn

BASELINE_MSE = 1.0 / 6.0  # variance of the sum of two independent U[0, 1]


def adding_problem(
    n: int, length: int = 100, *, span: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` sequences of the adding problem: inputs (n, length, 2), targets (n,)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if length < 2:
        raise ValueError(f"length must be >= 2, got {length}")
    span = length if span is None else span
    if not 2 <= span <= length:
        raise ValueError(f"span must be between 2 and length={length}, got {span}")
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(n, length, generator=g)
    start, half = length - span, span // 2
    first = torch.randint(start, start + half, (n,), generator=g)
    second = torch.randint(start + half, length, (n,), generator=g)
    markers = torch.zeros(n, length)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)
    y = values[rows, first] + values[rows, second]
    return x, y


class TanhRNN(nn.Module):
    """A single-layer tanh RNN reading the whole sequence; a linear readout of the last state.

    h_t = tanh(W_ih x_t + W_hh h_{t-1} + b), output = w . h_T + b_out (`nn.RNN` underneath).
    `recurrent_scale` sets the scale of the recurrent weights (Gaussian entries of standard
    deviation scale / sqrt(hidden)): near and above 1 the dynamics are close to chaotic and
    gradients can explode, the regime where clipping matters (Pascanu et al. 2013).
    """

    def __init__(
        self,
        hidden: int = 50,
        inputs: int = 2,
        recurrent_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.rnn = nn.RNN(inputs, hidden, nonlinearity="tanh", batch_first=True)
        self.head = nn.Linear(hidden, 1)
        g = generator
        rnn = dict(self.rnn.named_parameters())
        with torch.no_grad():
            rnn["weight_hh_l0"].copy_(
                torch.randn(hidden, hidden, generator=g) * (recurrent_scale / math.sqrt(hidden))
            )
            rnn["weight_ih_l0"].copy_(torch.randn(hidden, inputs, generator=g))
            rnn["bias_hh_l0"].zero_()
            rnn["bias_ih_l0"].zero_()
            self.head.weight.copy_(torch.randn(1, hidden, generator=g) / math.sqrt(hidden))
            self.head.bias.fill_(1.0)  # start at the mean of the target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, length, inputs) -> (batch,)."""
        out, _ = self.rnn(x)
        return self.head(out[:, -1]).squeeze(-1)


def tanh_rnn(hidden: int = 50, recurrent_scale: float = 1.0) -> TanhRNN:
    """Factory for the adding-problem model (used by `secateurs.io.arch` descriptions)."""
    return TanhRNN(hidden=hidden, recurrent_scale=recurrent_scale)
