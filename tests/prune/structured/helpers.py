"""Shared test helpers: zero whole units so that removing them must not change the outputs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from secateurs.prune.structural import find_groups, select, surgery
from secateurs.prune.structural.surgery import parameter_slices


def call(model: nn.Module, x: Any) -> Any:
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, tuple):
        return model(*x)
    return model(x)


def zero_units(model: nn.Module, example: Any, ratio: float, seed: int = 0, **find: Any) -> int:
    """Zero every parameter of the units that a random-importance selection at `ratio` removes.

    The selection is the library's own (equal query heads per key/value head, whole groups
    first), so an L1-ranked pruning of the zeroed model must remove exactly these units.
    Returns how many units were zeroed.
    """
    groups, _, _ = find_groups(model, example, **find)
    gen = torch.Generator().manual_seed(seed)
    for g in groups:
        for u in g.units + [p for p, _ in g.parents if p is not None]:
            u.importance = float(torch.rand((), generator=gen))
    chosen = select.select(groups, ratio)
    total = 0
    with torch.no_grad():
        for gi, idx in chosen.items():
            for s in groups[gi].removed_slices(idx):
                m = model.get_submodule(s.module)
                _zero(m, s.role, list(s.positions))
                assert all(
                    float(t.abs().sum()) == 0
                    for t in parameter_slices(m, s.role, list(s.positions))
                )
            total += len(idx)
    return total


def _zero(m: nn.Module, role: str, positions: list[int]) -> None:
    # parameter_slices returns copies (advanced indexing), so zero by index on the originals.
    idx = torch.as_tensor(positions)
    if role.startswith("param:"):
        _, attr, axis = role.split(":")
        getattr(m, attr).index_fill_(int(axis), idx, 0)
        return
    if isinstance(m, nn.Linear):
        if role == "out":
            m.weight[idx] = 0
            if m.bias is not None:
                m.bias[idx] = 0
        else:
            m.weight[:, idx] = 0
    elif surgery.is_conv1d(m):
        if role == "out":
            m.weight[:, idx] = 0
            m.bias[idx] = 0
        else:
            m.weight[idx] = 0
    elif isinstance(m, nn.modules.conv._ConvNd):
        out_dim, in_dim = (1, 0) if m.transposed else (0, 1)
        if role == "out":
            m.weight.index_fill_(out_dim, idx, 0)
            if m.bias is not None:
                m.bias[idx] = 0
        elif role == "in":
            m.weight.index_fill_(in_dim, idx, 0)
    elif isinstance(m, nn.modules.batchnorm._BatchNorm | nn.LayerNorm | nn.GroupNorm):
        for name in ("weight", "bias"):
            t = getattr(m, name, None)
            if t is not None:
                t[idx] = 0
    elif isinstance(m, nn.Embedding):
        m.weight[:, idx] = 0
    elif isinstance(m, nn.RNNBase):
        _zero_rnn(m, role, positions)
    elif isinstance(m, nn.MultiheadAttention) and role == "heads":
        hd = m.head_dim
        cols = torch.as_tensor([h * hd + i for h in positions for i in range(hd)])
        e = m.embed_dim
        for k in range(3):
            m.in_proj_weight[k * e + cols] = 0
            m.in_proj_bias[k * e + cols] = 0
        m.out_proj.weight[:, cols] = 0


def _zero_rnn(m: nn.RNNBase, role: str, positions: list[int]) -> None:
    idx = torch.as_tensor(positions)
    if role == "in":
        for sfx in surgery.rnn_suffixes(m):
            getattr(m, f"weight_ih_l0{sfx}")[:, idx] = 0
        return
    layer = int(role.split(":")[1])
    rows = surgery.gate_rows(m, positions)
    for sfx in surgery.rnn_suffixes(m):
        getattr(m, f"weight_ih_l{layer}{sfx}")[rows] = 0
        getattr(m, f"weight_hh_l{layer}{sfx}")[rows] = 0
        getattr(m, f"weight_hh_l{layer}{sfx}")[:, idx] = 0
        if m.bias:
            getattr(m, f"bias_ih_l{layer}{sfx}")[rows] = 0
            getattr(m, f"bias_hh_l{layer}{sfx}")[rows] = 0
        if layer + 1 < m.num_layers:
            getattr(m, f"weight_ih_l{layer + 1}{sfx}")[:, surgery.next_cols(m, positions)] = 0
