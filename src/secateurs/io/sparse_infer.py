"""Sparse inference: run pruned Linear layers with torch.sparse CSR kernels where that pays.

Whether a CSR matrix product beats the dense one depends on the sparsity, the shapes, the
batch and the CPU, so each candidate layer is timed on the input it really receives (captured
from `example_inputs`) and converted only if it is faster by `margin`. The whole model is then
timed once more and left dense if the converted one is not faster, so conversion never slows
the model down (up to timing noise).
"""

from __future__ import annotations

import copy
import functools
import warnings
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from secateurs._inputs import call_model
from secateurs.measure.latency import time_callable


def _to_csr(weight: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        return weight.detach().to_sparse_csr()


class SparseLinear(nn.Module):
    """A Linear whose weight is a CSR tensor: y = (W_csr @ x^T)^T + b. Inference only."""

    weight: torch.Tensor  # CSR buffer
    bias: torch.Tensor | None  # buffer

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.register_buffer("weight", _to_csr(linear.weight))
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        xt = x.reshape(-1, self.in_features).t().contiguous()
        if self.bias is not None:  # bias fused into the CSR product
            y = torch.addmm(self.bias.unsqueeze(1), self.weight, xt).t()
        else:
            y = torch.sparse.mm(self.weight, xt).t()
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        nnz = self.weight._nnz()
        dens = nnz / max(1, self.in_features * self.out_features)
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, density={dens:.3f}"
        )


@dataclass(frozen=True)
class LayerChoice:
    name: str
    sparsity: float
    dense_s: float
    sparse_s: float | None
    converted: bool

    @property
    def speedup(self) -> float | None:
        return self.dense_s / self.sparse_s if self.sparse_s else None


@dataclass
class SparseInferenceReport:
    layers: list[LayerChoice] = field(default_factory=list)
    dense_s: float = 0.0
    converted_s: float = 0.0
    kept_dense: bool = False  # the whole-model check undid the conversion

    @property
    def speedup(self) -> float:
        return self.dense_s / self.converted_s if self.converted_s else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "layers": [c.__dict__ | {"speedup": c.speedup} for c in self.layers],
            "dense_s": self.dense_s,
            "converted_s": self.converted_s,
            "speedup": self.speedup,
            "kept_dense": self.kept_dense,
        }


def _set(root: nn.Module, name: str, child: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, child)


def to_sparse_inference(
    model: nn.Module,
    example_inputs: Any,
    *,
    min_sparsity: float = 0.5,
    margin: float = 1.05,
    runs: int = 15,
    inplace: bool = False,
) -> tuple[nn.Module, SparseInferenceReport]:
    """Return (model with CSR Linear layers where faster, report). Masks are baked in first.

    Only plain `nn.Linear` layers at least `min_sparsity` sparse are candidates; a layer is
    converted when its CSR product is faster than the dense one by `margin` on the input it
    receives from `example_inputs`. The result is for inference (no gradients through CSR).
    """
    from secateurs.prune.permanent import make_permanent

    if not 0.0 <= min_sparsity < 1.0:
        raise ValueError(f"min_sparsity must be in [0, 1), got {min_sparsity}")
    if margin < 1.0:
        raise ValueError(f"margin must be >= 1, got {margin}")
    work = model if inplace else copy.deepcopy(model)
    make_permanent(work)
    work.eval()

    captured: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in work.named_modules():
        if type(module) is nn.Linear:

            def grab(mod: nn.Module, args: tuple, name: str = name) -> None:
                captured.setdefault(name, args[0].detach())

            handles.append(module.register_forward_pre_hook(grab))
    with torch.no_grad():
        try:
            call_model(work, example_inputs)
        finally:
            for h in handles:
                h.remove()

    report = SparseInferenceReport()
    originals: dict[str, nn.Module] = {}
    with torch.no_grad():
        report.dense_s = time_callable(lambda: call_model(work, example_inputs), runs=runs).median
        for name, x in captured.items():
            lin = cast(nn.Linear, work.get_submodule(name))  # captured: Linear layers only
            w = lin.weight
            sparsity = 1.0 - int(torch.count_nonzero(w)) / w.numel()
            dense = time_callable(functools.partial(lin, x), runs=runs).median
            if sparsity < min_sparsity or w.device.type != "cpu":
                report.layers.append(LayerChoice(name, sparsity, dense, None, False))
                continue
            candidate = SparseLinear(lin)
            sparse = time_callable(functools.partial(candidate, x), runs=runs).median
            better = sparse * margin < dense
            report.layers.append(LayerChoice(name, sparsity, dense, sparse, better))
            if better:
                originals[name] = lin
                _set(work, name, candidate)
        report.converted_s = report.dense_s
        if originals:
            report.converted_s = time_callable(
                lambda: call_model(work, example_inputs), runs=runs
            ).median
            if report.converted_s >= report.dense_s:
                for name, original in originals.items():
                    _set(work, name, original)
                report.kept_dense = True
                report.converted_s = report.dense_s
                report.layers = [
                    LayerChoice(c.name, c.sparsity, c.dense_s, c.sparse_s, False)
                    for c in report.layers
                ]
    return work, report
