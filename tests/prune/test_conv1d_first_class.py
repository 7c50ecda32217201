"""transformers' Conv1D (GPT-2) is a first-class layer: unstructured targets, N:M along its
input dimension (its weight's rows), AGC units along its output dimension (its columns)."""

import pytest
import torch

from secateurs.clip import AGC
from secateurs.prune import check_nm, find_targets, nm_

transformers = pytest.importorskip("transformers")
from transformers.pytorch_utils import Conv1D  # noqa: E402


class TwoConv1D(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = Conv1D(16, 8)  # nf=16 outputs, nx=8 inputs: weight (8, 16)
        self.b = Conv1D(4, 16)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.b(torch.relu(self.a(x)))))


def test_conv1d_weights_are_default_targets() -> None:
    names = [t.name for t in find_targets(TwoConv1D())]
    assert names == ["a.weight", "b.weight"]  # the head stays dense by default


def test_nm_groups_run_along_the_input_rows() -> None:
    torch.manual_seed(0)
    model = TwoConv1D()
    nm_(model, n=2, m=4)
    for layer in (model.a, model.b):
        assert check_nm(layer.weight, 2, 4, dim=0)  # along nx (rows)
        # the same weight seen as a Linear (out, in) has 2:4 along its inputs
        assert check_nm(layer.weight.t(), 2, 4, dim=1)


def test_agc_clips_conv1d_columns_like_the_equivalent_linear() -> None:
    torch.manual_seed(0)
    conv = Conv1D(6, 5)
    linear = torch.nn.Linear(5, 6)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.t())
        linear.bias.copy_(conv.bias)
    x = torch.randn(3, 5)
    for m in (conv, linear):
        (m(x).pow(2).sum() * 100).backward()
    AGC(clip=0.01, skip_classifier=False)(conv)
    AGC(clip=0.01, skip_classifier=False)(linear)
    torch.testing.assert_close(conv.weight.grad.t(), linear.weight.grad)
    torch.testing.assert_close(conv.bias.grad, linear.bias.grad)
