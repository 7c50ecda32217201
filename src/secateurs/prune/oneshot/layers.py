"""The weights a one-shot method prunes, seen as ``[out, in]`` matrices with their inputs.

A one-shot rule needs, for every pruned matrix, the inputs that multiply it. One `Unit` is a
row range of one prunable tensor together with a way to read those inputs off a forward pass:

- `nn.Linear` (and subclasses): ``weight`` is ``[out, in]``, the input is the module's input.
- Hugging Face ``Conv1D`` (GPT-2): ``weight`` is stored transposed, ``[in, out]``.
- `nn.MultiheadAttention`: ``in_proj_weight`` is three ``[d, d]`` row blocks fed by query,
  key and value; ``out_proj`` is a Linear that PyTorch never calls as a module (the attention
  reads its weight directly), so its input, the attention context, is recomputed with an
  identity projection.

Anything else that `find_targets` returns (embeddings, convolutions) is not a one-shot unit
and is reported as such by the caller.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from secateurs.prune.targets import Target

# Called with the unit's inputs, shaped (tokens, in_features).
Sink = Callable[[torch.Tensor], None]


def conv1d_type() -> type | None:
    """transformers' Conv1D class if transformers is already imported (a model that holds one
    has imported it), else None: secateurs never imports transformers for this."""
    mod = sys.modules.get("transformers.pytorch_utils")
    return getattr(mod, "Conv1D", None)


def one_shot_types(model: nn.Module) -> list[type]:
    """The module types holding one-shot units that occur in `model`."""
    wanted = [nn.Linear, nn.MultiheadAttention]
    conv1d = conv1d_type()
    if conv1d is not None:
        wanted.append(conv1d)
    present = {type(m) for m in model.modules()}
    return [t for t in wanted if any(issubclass(p, t) for p in present)]


@dataclass
class Unit:
    """Rows ``rows`` of one prunable tensor, as an ``[out, in]`` matrix, and its input source."""

    target: Target
    rows: slice
    transposed: bool  # stored as [in, out] (Conv1D)
    source: nn.Module  # the module whose forward pass shows the input
    which: str  # "input", "query", "key", "value" or "context"

    @property
    def in_features(self) -> int:
        p = self.target.param
        return p.shape[0] if self.transposed else p.shape[1]

    def matrix(self) -> torch.Tensor:
        """The stored weights of these rows as a float32 ``[out, in]`` copy."""
        p = self.target.param.detach()
        w = p.t() if self.transposed else p
        return w[self.rows].float().contiguous().clone()

    def write(self, full: torch.Tensor, part: torch.Tensor) -> None:
        """Put `part` (``[out, in]``, these rows) into `full` (shaped like the stored tensor)."""
        view = full.t() if self.transposed else full
        view[self.rows] = part.to(full.dtype)


def units(target: Target, attention_of: dict[int, nn.MultiheadAttention]) -> list[Unit] | None:
    """The one-shot units of `target`, or None when its weight is not a matrix product.

    `attention_of` maps id(out_proj) to its attention (see `attention_owners`)."""
    module, attr = target.module, target.attr
    conv1d = conv1d_type()
    if isinstance(module, nn.MultiheadAttention):
        if attr != "in_proj_weight":
            return None  # separate q/k/v weights (kdim != embed_dim): not handled
        d = module.embed_dim
        return [
            Unit(target, slice(i * d, (i + 1) * d), False, module, which)
            for i, which in enumerate(("query", "key", "value"))
        ]
    if attr != "weight" or target.param.dim() != 2:
        return None
    if conv1d is not None and isinstance(module, conv1d):
        return [Unit(target, slice(None), True, module, "input")]
    if isinstance(module, nn.Linear):
        parent = attention_of.get(id(module))
        if parent is not None:
            return [Unit(target, slice(None), False, parent, "context")]
        return [Unit(target, slice(None), False, module, "input")]
    return None


def attention_owners(model: nn.Module) -> dict[int, nn.MultiheadAttention]:
    """id(out_proj) -> the attention that owns it, for every attention of `model`."""
    return {id(m.out_proj): m for m in model.modules() if isinstance(m, nn.MultiheadAttention)}


class _Identity(nn.Module):
    """Stands in for an attention's out_proj: weight I, bias 0 (so the output is the context)."""

    def __init__(self, like: nn.Module) -> None:
        super().__init__()
        w = like.weight
        assert isinstance(w, torch.Tensor)
        self.weight = torch.eye(w.shape[1], dtype=w.dtype, device=w.device)
        self.bias = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)


def _mha_inputs(args: tuple, kwargs: dict) -> dict[str, torch.Tensor]:
    names = ("query", "key", "value")
    got = dict(zip(names, args, strict=False))
    got.update({k: kwargs[k] for k in names if k in kwargs})
    return got


@contextlib.contextmanager
def recording(all_units: list[Unit], sinks: list[Sink]) -> Iterator[None]:
    """Feed each unit's inputs to its sink during forward passes inside this block."""
    handles = []
    by_source: dict[int, list[tuple[Unit, Sink]]] = {}
    for u, s in zip(all_units, sinks, strict=True):
        by_source.setdefault(id(u.source), []).append((u, s))
    for pairs in by_source.values():
        source = pairs[0][0].source
        if isinstance(source, nn.MultiheadAttention):
            handles.append(source.register_forward_hook(_mha_hook(source, pairs), with_kwargs=True))
        else:
            handles.append(source.register_forward_pre_hook(_input_hook(pairs)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _flat(x: torch.Tensor, n: int) -> torch.Tensor:
    return x.detach().reshape(-1, n)


def _input_hook(pairs: list[tuple[Unit, Sink]]) -> Callable:
    def hook(module: nn.Module, args: tuple) -> None:
        for u, sink in pairs:
            sink(_flat(args[0], u.in_features))

    return hook


def _mha_hook(mha: nn.MultiheadAttention, pairs: list[tuple[Unit, Sink]]) -> Callable:
    def hook(module: nn.Module, args: tuple, kwargs: dict, output: object) -> None:
        inputs = _mha_inputs(args, kwargs)
        context = None
        for u, sink in pairs:
            if u.which == "context":
                if context is None:
                    context = _context(mha, args, kwargs)
                sink(_flat(context, u.in_features))
            else:
                sink(_flat(inputs[u.which], u.in_features))

    return hook


def _context(mha: nn.MultiheadAttention, args: tuple, kwargs: dict) -> torch.Tensor:
    """The attention's output before its out_proj: the same call with an identity projection."""
    real = mha.out_proj
    mha.out_proj = _Identity(real)  # type: ignore[assignment]
    try:
        out = mha.forward(*args, **kwargs)  # forward, not __call__: no hooks re-entered
    finally:
        mha.out_proj = real
    return out[0]
