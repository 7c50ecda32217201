"""MACs on PyTorch's fused paths: TransformerEncoder's inference fast path and CPU SDPA."""

import torch
from torch import nn

from secateurs.measure import count_macs


def test_transformer_encoder_fast_path_is_counted_by_hand_formula() -> None:
    d, heads, ff, batch, length, layers = 32, 4, 64, 2, 10, 2
    layer = nn.TransformerEncoderLayer(d, heads, ff, batch_first=True)
    enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False).eval()
    tokens = batch * length
    linear = tokens * (4 * d * d + 2 * d * ff)  # q, k, v, out projections and the MLP
    attention = 2 * batch * length * length * d  # q @ k^T and weights @ v over all heads
    assert count_macs(enc, torch.randn(batch, length, d)) == layers * (linear + attention)
    assert torch.backends.mha.get_fastpath_enabled()  # restored afterwards


def test_cpu_scaled_dot_product_attention_is_counted() -> None:
    class Attend(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            return nn.functional.scaled_dot_product_attention(q, q, q)

    q = torch.randn(2, 3, 5, 8)
    assert count_macs(Attend(), q) == 2 * (2 * 3 * 5 * 5 * 8)


def test_cpu_lstm_and_gru_count_every_layer_and_step() -> None:
    batch, steps, inp, hidden = 3, 7, 5, 6
    x = torch.randn(batch, steps, inp)
    lstm = nn.LSTM(inp, hidden, num_layers=2, batch_first=True)
    per_token = 4 * hidden * (inp + hidden) + 4 * hidden * (hidden + hidden)
    assert count_macs(lstm, x) == batch * steps * per_token
    gru = nn.GRU(inp, hidden, batch_first=True)
    assert count_macs(gru, x) == batch * steps * 3 * hidden * (inp + hidden)
