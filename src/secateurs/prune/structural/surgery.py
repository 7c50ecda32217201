"""Physical removal: rewrite each module's parameters with the kept positions only.

Works in place on the (copied) model: parameters are replaced by smaller ones and the shape
attributes (``out_features``, ``num_features``, ``hidden_size``, ...) updated, so the module
classes, their forward code and any other attributes stay as they were.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import torch
from torch import nn

from secateurs._conv1d import is_conv1d
from secateurs.prune.structural.groups import Slice
from secateurs.prune.structural.modules import HeadPrunedAttention


def _rnn_gates(m: nn.RNNBase) -> int:
    return {"LSTM": 4, "GRU": 3}.get(m.mode, 1)


def rnn_suffixes(m: nn.RNNBase) -> list[str]:
    return ["", "_reverse"] if m.bidirectional else [""]


def parameter_slices(m: nn.Module, role: str, pos: list[int]) -> list[torch.Tensor]:
    """The parameter entries that unit positions `pos` of `role` own in module `m` (views)."""
    idx = torch.as_tensor(pos, dtype=torch.long)
    out: list[torch.Tensor] = []
    bias = getattr(m, "bias", None)
    if role.startswith("param:"):
        _, attr, axis = role.split(":")
        t = getattr(m, attr)
        return [t.index_select(int(axis), idx)] if isinstance(t, torch.Tensor) else []
    if isinstance(m, nn.Linear):
        out.append(m.weight[idx] if role == "out" else m.weight[:, idx])
        if role == "out" and bias is not None:
            out.append(bias[idx])
    elif is_conv1d(m):
        out.append(m.weight[:, idx] if role == "out" else m.weight[idx])
        if role == "out":
            out.append(m.bias[idx])
    elif isinstance(m, nn.modules.conv._ConvNd):
        out_dim, in_dim = (1, 0) if m.transposed else (0, 1)
        if role == "out":
            out.append(m.weight.index_select(out_dim, idx))
            if bias is not None:
                out.append(bias[idx])
        elif role == "in":
            out.append(m.weight.index_select(in_dim, idx))
    elif isinstance(m, nn.modules.batchnorm._BatchNorm | nn.LayerNorm | nn.GroupNorm):
        for p in (getattr(m, "weight", None), bias):
            if p is not None:
                out.append(p[idx])
    elif isinstance(m, nn.Embedding):
        out.append(m.weight[:, idx])
    elif isinstance(m, nn.RNNBase):
        out.extend(_rnn_slices(m, role, pos))
    elif isinstance(m, nn.MultiheadAttention) and role == "heads":
        rows = _head_rows(m, pos)
        e = m.embed_dim
        if m._qkv_same_embed_dim:
            weights = list(m.in_proj_weight.chunk(3))
        else:
            weights = [m.q_proj_weight, m.k_proj_weight, m.v_proj_weight]
        out.extend(w[rows] for w in weights)
        if m.in_proj_bias is not None:
            out.extend(m.in_proj_bias[k * e : (k + 1) * e][rows] for k in range(3))
        out.append(m.out_proj.weight[:, rows])
    return out


def _head_rows(m: nn.MultiheadAttention, heads: list[int]) -> torch.Tensor:
    hd = m.head_dim
    return torch.as_tensor([h * hd + i for h in heads for i in range(hd)], dtype=torch.long)


def gate_rows(m: nn.RNNBase, pos: list[int]) -> torch.Tensor:
    h = m.hidden_size
    return torch.as_tensor([g * h + p for g in range(_rnn_gates(m)) for p in pos], dtype=torch.long)


def next_cols(m: nn.RNNBase, pos: list[int]) -> torch.Tensor:
    h = m.hidden_size
    cols = list(pos) + ([h + p for p in pos] if m.bidirectional else [])
    return torch.as_tensor(cols, dtype=torch.long)


def _rnn_slices(m: nn.RNNBase, role: str, pos: list[int]) -> list[torch.Tensor]:
    idx = torch.as_tensor(pos, dtype=torch.long)
    out = []
    if role == "in":
        for sfx in rnn_suffixes(m):
            out.append(getattr(m, f"weight_ih_l0{sfx}")[:, idx])
        return out
    layer = int(role.split(":")[1])
    rows = gate_rows(m, pos)
    for sfx in rnn_suffixes(m):
        out.append(getattr(m, f"weight_ih_l{layer}{sfx}")[rows])
        hh = getattr(m, f"weight_hh_l{layer}{sfx}")
        out.append(hh[rows])
        out.append(hh[:, idx])
        if m.bias:
            out.append(getattr(m, f"bias_ih_l{layer}{sfx}")[rows])
            out.append(getattr(m, f"bias_hh_l{layer}{sfx}")[rows])
        if layer + 1 < m.num_layers:
            out.append(getattr(m, f"weight_ih_l{layer + 1}{sfx}")[:, next_cols(m, pos)])
    return out


def _keep(n: int, removed: set[int]) -> torch.Tensor:
    return torch.as_tensor([i for i in range(n) if i not in removed], dtype=torch.long)


def _param(old: torch.Tensor, new: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(new.detach().clone().contiguous(), requires_grad=old.requires_grad)


def _set(m: nn.Module, name: str, new: torch.Tensor) -> None:
    old = getattr(m, name)
    if isinstance(old, nn.Parameter):
        setattr(m, name, _param(old, new))
    else:
        setattr(m, name, new.detach().clone().contiguous())


def _shrink_linear(m: nn.Linear, out_rm: set[int], in_rm: set[int]) -> None:
    ko, ki = _keep(m.out_features, out_rm), _keep(m.in_features, in_rm)
    _set(m, "weight", m.weight[ko][:, ki])
    if m.bias is not None:
        _set(m, "bias", m.bias[ko])
    m.out_features, m.in_features = len(ko), len(ki)


def _shrink_conv1d(m: nn.Module, out_rm: set[int], in_rm: set[int]) -> None:
    ko, ki = _keep(m.nf, out_rm), _keep(m.nx, in_rm)
    _set(m, "weight", m.weight[ki][:, ko])
    _set(m, "bias", m.bias[ko])
    m.nf, m.nx = len(ko), len(ki)


def _shrink_conv(m: nn.modules.conv._ConvNd, roles: dict[str, set[int]]) -> None:
    out_rm, in_rm, dw_rm = roles.get("out", set()), roles.get("in", set()), roles.get("dw", set())
    ko = _keep(m.out_channels, out_rm)
    w = m.weight
    if m.transposed:
        w = w[:, ko] if m.groups == 1 else w
        if m.groups == 1:
            w = w[_keep(m.in_channels, in_rm)]
    else:
        w = w[ko]
        if m.groups == 1:
            w = w[:, _keep(m.in_channels, in_rm)]
    _set(m, "weight", w)
    if m.bias is not None:
        _set(m, "bias", m.bias[ko])
    m.out_channels = len(ko)
    if m.groups == 1:
        m.in_channels -= len(in_rm)
    else:  # depthwise: the removed input channels take their groups with them
        m.in_channels -= len(dw_rm)
        m.groups -= len(dw_rm)


def _shrink_norm(m: nn.Module, removed: set[int]) -> None:
    if isinstance(m, nn.GroupNorm):
        n = m.num_channels
    elif isinstance(m, nn.LayerNorm):
        n = m.normalized_shape[-1]
    else:
        n = m.num_features
    keep = _keep(n, removed)
    for name in ("weight", "bias", "running_mean", "running_var"):
        t = getattr(m, name, None)
        if t is not None:
            _set(m, name, t[keep])
    if isinstance(m, nn.GroupNorm):
        per = m.num_channels // m.num_groups
        m.num_groups -= len(removed) // per
        m.num_channels = len(keep)
    elif isinstance(m, nn.LayerNorm):
        m.normalized_shape = (len(keep),)
    else:
        m.num_features = len(keep)


def _shrink_embedding(m: nn.Embedding, removed: set[int]) -> None:
    keep = _keep(m.embedding_dim, removed)
    _set(m, "weight", m.weight[:, keep])
    m.embedding_dim = len(keep)


def _shrink_rnn(m: nn.RNNBase, roles: dict[str, set[int]]) -> None:
    h = m.hidden_size
    per_layer = {int(r.split(":")[1]): rm for r, rm in roles.items() if r.startswith("hidden:")}
    counts = {len(per_layer.get(layer, set())) for layer in range(m.num_layers)}
    if len(counts) != 1:
        raise RuntimeError(f"RNN {m} needs the same number of hidden units removed per layer")
    in_rm = roles.get("in", set())
    dirs = 2 if m.bidirectional else 1
    for layer in range(m.num_layers):
        keep_h = _keep(h, per_layer.get(layer, set()))
        rows = torch.cat([g * h + keep_h for g in range(_rnn_gates(m))])
        if layer == 0:
            cols = _keep(m.input_size, in_rm)
        else:
            prev = _keep(h, per_layer.get(layer - 1, set()))
            cols = torch.cat([prev + d * h for d in range(dirs)])
        for sfx in rnn_suffixes(m):
            _set(
                m, f"weight_ih_l{layer}{sfx}", getattr(m, f"weight_ih_l{layer}{sfx}")[rows][:, cols]
            )
            _set(
                m,
                f"weight_hh_l{layer}{sfx}",
                getattr(m, f"weight_hh_l{layer}{sfx}")[rows][:, keep_h],
            )
            if m.bias:
                for b in ("bias_ih", "bias_hh"):
                    _set(m, f"{b}_l{layer}{sfx}", getattr(m, f"{b}_l{layer}{sfx}")[rows])
    m.hidden_size = h - counts.pop()
    m.input_size -= len(in_rm)
    m._init_flat_weights()


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, leaf, new)


def apply(model: nn.Module, slices: Iterable[Slice]) -> None:
    """Remove every slice's positions from its module, in place."""
    plan: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for s in slices:
        plan[s.module][s.role].update(s.positions)
    for name, roles in plan.items():
        m = model.get_submodule(name)
        for role in [r for r in roles if r.startswith("param:")]:
            _, attr, axis = role.split(":")
            t = getattr(m, attr)
            _set(m, attr, t.index_select(int(axis), _keep(t.shape[int(axis)], roles.pop(role))))
        if not roles:
            continue
        if isinstance(m, nn.Linear):
            _shrink_linear(m, roles.get("out", set()), roles.get("in", set()))
        elif is_conv1d(m):
            _shrink_conv1d(m, roles.get("out", set()), roles.get("in", set()))
        elif isinstance(m, nn.modules.conv._ConvNd):
            _shrink_conv(m, roles)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm | nn.LayerNorm | nn.GroupNorm):
            _shrink_norm(m, roles.get("norm", set()))
        elif isinstance(m, nn.Embedding):
            _shrink_embedding(m, roles.get("out", set()))
        elif isinstance(m, nn.RNNBase):
            _shrink_rnn(m, roles)
        elif isinstance(m, nn.MultiheadAttention):
            removed = roles.get("heads", set())
            keep = [h for h in range(m.num_heads) if h not in removed]
            _replace(model, name, HeadPrunedAttention.from_mha(m, keep).train(m.training))
        else:
            raise RuntimeError(f"no surgery for module {name!r} ({type(m).__name__})")
