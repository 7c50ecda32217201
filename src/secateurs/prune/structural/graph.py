"""Channel dependency analysis on the ATen graph that `torch.export` produces.

Every axis of every parameter that can shrink (a Linear's rows and columns, a convolution's
output and input channels, a norm's entries, an embedding's width, any other parameter's axes)
becomes a list of *elements*, one per position. Propagating elements through the exported
graph records which positions must disappear together: a residual addition, a concatenation,
a depthwise convolution, the reshape of a projection into heads, a matmul between queries and
keys or ``scaled_dot_product_attention`` *unite* elements (union-find); a parameter reading an
activation unites its input axis with the elements that activation carries. Whatever the
analysis does not understand *freezes* the elements that reach it: a frozen element is never
removed, so an unknown operation can cost compression but can never produce a wrong model.
Model inputs and outputs are frozen the same way (every output keeps its shape).

Heads need no rules: a view that splits a pruned dimension into ``(heads, head_dim)`` unites
the positions of each head, so a head is removed whole; the ``expand`` + ``reshape`` that
repeats key/value heads for grouped-query attention records which query heads read which
key/value head (an *expansion*), so that query heads can be removed within a group.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from secateurs._conv1d import is_conv1d
from secateurs.prune.structural.modules import HeadPrunedAttention


class UnionFind:
    """Elements with a union-find and a freeze reason per root."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.frozen: dict[int, str] = {}

    def make(self, n: int) -> list[int]:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return list(range(start, start + n))

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        self.parent[rb] = ra
        if rb in self.frozen and ra not in self.frozen:
            self.frozen[ra] = self.frozen[rb]

    def freeze(self, ids: Sequence[int], reason: str) -> None:
        for i in ids:
            self.frozen.setdefault(self.find(i), reason)

    def reason(self, i: int) -> str | None:
        return self.frozen.get(self.find(i))


@dataclass
class Usage:
    """Module `module` uses elements `ids` (in order) along the axis that `role` names."""

    module: str
    role: str
    ids: list[int]


@dataclass
class Tracked:
    """A tensor whose dimension `dim` carries the elements `ids` (others carry none).

    `expanded` holds the dimensions made by broadcasting a size-1 dimension (``expand``):
    merging the element dimension with them repeats each element for several consumers.
    """

    ids: list[int]
    dim: int
    ndim: int
    expanded: frozenset[int] = frozenset()


@dataclass
class Uniform:
    """A value with no elements that is the same at every position of the dimensions `dims`
    (a tensor of zeros, or a mask broadcast over heads). Combined with channels along one of
    those dimensions, it does not tell them apart: only its size must follow the pruning,
    which it does when the code creates it from an attribute (T5's zero position bias of
    ``n_heads`` heads); `structured` checks that the pruned model runs."""

    dims: frozenset[int]
    ndim: int


@dataclass
class Poison:
    """A value that depends on elements in a way we do not model: any use freezes them."""

    ids: list[int]
    reason: str


@dataclass
class ParamRef:
    """A parameter or buffer of module `module` (attribute `attr`) used in the graph."""

    module: str
    attr: str
    axes: list[list[int]]  # element ids per axis


@dataclass
class Analysis:
    """The result: elements, their usages, head structure, and why frozen ones are frozen."""

    uf: UnionFind = field(default_factory=UnionFind)
    usages: list[Usage] = field(default_factory=list)
    expansions: list[tuple[int, list[int]]] = field(default_factory=list)
    heads: dict[int, int] = field(default_factory=dict)  # element of a whole head: head_dim
    traced: bool = True
    trace_error: str | None = None
    prune_embedding: bool = False


# Modules whose inside the graph must not prune: their own rules handle them (or nothing).
OWN_RULE = (nn.MultiheadAttention, HeadPrunedAttention, nn.RNNBase)

_A = torch.ops.aten


def _ops(*names: str) -> set[Any]:
    """ATen operator packets by name (names a PyTorch version lacks are skipped)."""
    return {getattr(_A, n) for n in names if hasattr(_A, n)}


_UNARY = _ops(
    "relu",
    "relu_",
    "gelu",
    "silu",
    "silu_",
    "tanh",
    "sigmoid",
    "neg",
    "abs",
    "exp",
    "sqrt",
    "rsqrt",
    "clamp",
    "clamp_min",
    "clamp_max",
    "hardtanh",
    "hardtanh_",
    "hardswish",
    "hardswish_",
    "hardsigmoid",
    "leaky_relu",
    "leaky_relu_",
    "elu",
    "elu_",
    "mish",
    "softplus",
    "dropout",
    "clone",
    "contiguous",
    "to",
    "_to_copy",
    "alias",
    "detach",
    "erf",
    "log",
    "sin",
    "cos",
    "type_as",
    "relu6",
    "gelu_",
    "selu",
    "celu",
    "log_sigmoid",
    "square",
    "reciprocal",
    "feature_dropout",
    "alpha_dropout",
    "native_dropout",
    "lift_fresh_copy",
    "tanh_",
    "sigmoid_",
    "silu",
    "pow",
)
_ELEMENTWISE = _ops(
    "add",
    "add_",
    "sub",
    "sub_",
    "mul",
    "mul_",
    "div",
    "div_",
    "maximum",
    "minimum",
    "where",
    "masked_fill",
    "masked_fill_",
    "rsub",
    "lerp",
    "addcmul",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "logical_not",
    "logical_and",
    "logical_or",
    "bitwise_not",
    "bitwise_and",
    "bitwise_or",
    "isinf",
    "isnan",
)
_POOL = _ops(
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_pool2d_with_indices",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "_adaptive_avg_pool2d",
    "upsample_nearest1d",
    "upsample_nearest2d",
    "upsample_bilinear2d",
    "upsample_nearest3d",
    "upsample_linear1d",
    "upsample_bicubic2d",
    "constant_pad_nd",
    "pad",
    "reflection_pad2d",
    "replication_pad2d",
)
_CONSTANT = _ops(
    "zeros", "ones", "full", "zeros_like", "ones_like", "full_like", "new_zeros", "new_ones",
    "new_full", "scalar_tensor",
)  # fmt: skip
_COPY = _ops(
    "to", "_to_copy", "clone", "contiguous", "alias", "detach", "type_as", "lift_fresh_copy"
)  # fmt: skip
_REDUCE = {_A.mean, _A.sum, _A.amax, _A.amin, _A.var, _A.std, _A.max, _A.min, _A.var_mean}
_STATISTICS = {_A.mean, _A.var, _A.std, _A.var_mean}
_VIEW = {_A.view, _A.reshape, _A._unsafe_view, _A.flatten, _A.unflatten}
_NO_TENSOR = _ops(
    "sym_size",
    "_assert_tensor_metadata",
    "_assert_async",
    "sym_numel",
    "sym_stride",
    "arange",
    "zeros",
    "ones",
    "full",
    "empty",
    "scalar_tensor",
    "zeros_like",
    "ones_like",
    "full_like",
    "empty_like",
    "tril",
    "triu",
    "item",
    "_local_scalar_dense",
    "argmax",
    "argmin",
    "rand",
    "randn",
    "randint",
    "bernoulli",
    "new_zeros",
    "new_ones",
    "new_full",
    "new_empty",
    "linspace",
    "cumsum",
    "diff",
    "any",
    "all",
)
_CONV = _ops(
    "conv1d",
    "conv2d",
    "conv3d",
    "convolution",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "_convolution",
)
_BATCH_NORM = _ops(
    "batch_norm",
    "_native_batch_norm_legit_no_training",
    "native_batch_norm",
    "_native_batch_norm_legit",
    "_batch_norm_with_update",
    "instance_norm",
    "_native_batch_norm_legit_functional",
    "_batch_norm_no_update",
)
_RNN = {_A.lstm: "LSTM", _A.gru: "GRU", _A.rnn_tanh: "RNN_TANH", _A.rnn_relu: "RNN_RELU"}


def _moved_dims(node: fx.Node, ndim: int) -> set[int] | None:
    """The dimensions along which a pooling, padding, resampling or roll moves values.

    Pools and resamplings work on the last 1, 2 or 3 dimensions (their name says which);
    a pad on the dimensions its non-zero pad widths name, from the last one backwards;
    a roll on its ``dims``. None when it cannot be told (a roll of the flattened tensor).
    """
    p = _packet(node.target)
    name = str(p).rpartition(".")[2]
    if p is _A.roll:
        dims = node.args[2] if len(node.args) > 2 else node.kwargs.get("dims", ())
        dims = [dims] if isinstance(dims, int) else list(dims or ())
        return {int(d) % ndim for d in dims} or None
    if p in (_A.constant_pad_nd, _A.pad):
        pad = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad", ())
        if not all(isinstance(v, int) for v in pad):
            return None
        return {ndim - 1 - i for i in range(len(pad) // 2) if pad[2 * i] or pad[2 * i + 1]}
    for k in (1, 2, 3):
        if f"{k}d" in name:
            return set(range(ndim - k, ndim))
    return None


def _packet(target: Any) -> Any:
    return getattr(target, "overloadpacket", target)


def _meta_shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, fx.Node):
        value = value.meta.get("val")
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    try:
        return tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        return None


def _param_roles(module: nn.Module, attr: str, ndim: int) -> list[str]:
    """The role of each axis of parameter `attr` of `module` (how surgery slices it)."""
    if isinstance(module, nn.Linear) and attr in ("weight", "bias"):
        return ["out", "in"][:ndim]
    if is_conv1d(module):
        return ["in", "out"] if attr == "weight" else ["out"]
    if isinstance(module, nn.modules.conv._ConvNd) and attr in ("weight", "bias"):
        if attr == "bias":
            return ["out"]
        roles = ["in", "out"] if module.transposed else ["out", "in"]
        return roles + [f"kernel:{k}" for k in range(ndim - 2)]
    norms = nn.modules.batchnorm._BatchNorm | nn.LayerNorm | nn.GroupNorm
    if isinstance(module, norms) and ndim == 1:
        return ["norm"]
    if isinstance(module, nn.Embedding) and attr == "weight":
        return ["vocab", "out"]
    return [f"param:{attr}:{axis}" for axis in range(ndim)]


class _Propagator:
    def __init__(
        self,
        model: nn.Module,
        ep: torch.export.ExportedProgram,
        analysis: Analysis,
        prune_embedding: bool,
    ) -> None:
        self.model = model
        self.gm = ep.graph_module
        self.a = analysis
        self.uf = analysis.uf
        self.prune_embedding = prune_embedding
        self.env: dict[fx.Node, Any] = {}
        self.modules = dict(model.named_modules())
        sig = ep.graph_signature
        # Buffers are constants to the analysis, except a BatchNorm's running statistics.
        norm_buffers = {
            n: fqn
            for n, fqn in sig.inputs_to_buffers.items()
            if isinstance(self.modules.get(fqn.rpartition(".")[0]), nn.modules.batchnorm._BatchNorm)
        }
        self.targets = {**sig.inputs_to_parameters, **norm_buffers}
        self.axis_ids: dict[tuple[str, str], list[int]] = {}
        self.own_rule = [n for n, m in self.modules.items() if isinstance(m, OWN_RULE)]

    # -- elements of parameters --------------------------------------------------------------
    def _param(self, fqn: str) -> ParamRef:
        module, _, attr = fqn.rpartition(".")
        m = self.modules.get(module)
        t = getattr(m, attr, None) if m is not None else None
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else ()
        roles = _param_roles(m, attr, len(shape)) if m is not None else []
        axes = []
        for axis, size in enumerate(shape):
            key = (module, roles[axis] if axis < len(roles) else f"param:{attr}:{axis}")
            ids = self.axis_ids.get(key)
            if ids is None or len(ids) != size:
                ids = self.uf.make(size)
                self.axis_ids[key] = ids
                self.a.usages.append(Usage(module, key[1], ids))
                if key[1] in ("vocab",) or key[1].startswith("kernel:"):
                    self.uf.freeze(ids, f"{key[1]} axis of {module!r}")
                if any(module == o or module.startswith(o + ".") for o in self.own_rule):
                    self.uf.freeze(ids, f"inside {module!r}, which has its own rule")
                if isinstance(t, torch.Tensor) and not t.is_floating_point():
                    self.uf.freeze(ids, f"integer tensor {fqn!r}")
            axes.append(ids)
        return ParamRef(module, attr, axes)

    # -- helpers -----------------------------------------------------------------------------
    def _freeze_value(self, value: Any, reason: str) -> None:
        if isinstance(value, Tracked | Poison):
            self.uf.freeze(value.ids, reason)
        elif isinstance(value, ParamRef):
            for ids in value.axes:
                self.uf.freeze(ids, reason)
        elif isinstance(value, tuple | list):
            for v in value:
                self._freeze_value(v, reason)
        elif isinstance(value, dict):
            for v in value.values():
                self._freeze_value(v, reason)

    def _val(self, arg: Any) -> Any:
        if isinstance(arg, fx.Node):
            return self.env.get(arg)
        if isinstance(arg, tuple | list):
            return type(arg)(self._val(a) for a in arg)
        return None

    def _unknown(self, node: fx.Node, what: str) -> None:
        for a in list(node.args) + list(node.kwargs.values()):
            self._freeze_value(self._val(a), f"used by {what}, which the analysis does not model")
        self.env[node] = None

    def _as_tracked(self, value: Any, ndim: int) -> Tracked | None:
        """A tracked view of `value`; a parameter counts as tracked along its only pruned axis."""
        if isinstance(value, Tracked):
            return value
        if isinstance(value, Poison):
            self.uf.freeze(value.ids, value.reason)
            return None
        if isinstance(value, ParamRef):
            axes = [i for i, ids in enumerate(value.axes) if len(ids) > 1]
            for i in axes[1:]:
                self.uf.freeze(value.axes[i], f"{value.module}.{value.attr} used directly")
            if not axes:
                return None
            return Tracked(value.axes[axes[0]], axes[0] + ndim - len(value.axes), ndim)
        return None

    def _param_along(self, value: ParamRef, ndim: int, out_ndim: int, target: int | None) -> Any:
        """`value` (a parameter of `ndim` dims broadcast to `out_ndim`) tracked along `target`.

        Its axis under `target` carries its elements; any other axis longer than 1 is read
        as it is and frozen. Without a target, its only (first) long axis is tracked.
        """
        if target is None:
            return self._as_tracked(value, ndim)
        axis = target - (out_ndim - len(value.axes))
        if not 0 <= axis < len(value.axes) or len(value.axes[axis]) <= 1:
            self._freeze_value(value, f"{value.module}.{value.attr} used directly")
            return None
        for i, ids in enumerate(value.axes):
            if i != axis and len(ids) > 1:
                self.uf.freeze(ids, f"{value.module}.{value.attr} used directly")
        return Tracked(value.axes[axis], axis + ndim - len(value.axes), ndim)

    def _use_in(self, t: Any, ids: list[int], ndim: int, dim: int, what: str) -> None:
        """A layer reads the elements of `t` at `dim` with its input axis `ids`."""
        if isinstance(t, Poison):
            self.uf.freeze(t.ids, t.reason)
        if (
            isinstance(t, Tracked)
            and t.dim % max(t.ndim, 1) == dim % ndim
            and len(t.ids) == len(ids)
        ):
            for i, j in zip(t.ids, ids, strict=True):
                self.uf.union(i, j)
            return
        if isinstance(t, Tracked):
            self.uf.freeze(t.ids, f"{what} reads these channels along another dimension")
        self.uf.freeze(ids, f"the input of {what} is not a pruned channel")

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> None:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                fqn = self.targets.get(node.name)
                self.env[node] = self._param(fqn) if fqn is not None else None
            elif node.op == "get_attr":
                self.env[node] = None
            elif node.op == "output":
                self._freeze_value(self._val(node.args[0]), "reaches the model output")
            elif node.op == "call_function":
                self._function(node)

    def _function(self, node: fx.Node) -> None:
        fn = node.target
        if fn is operator.getitem:
            value = self._val(node.args[0])
            idx = node.args[1]
            if isinstance(value, tuple | list) and isinstance(idx, int) and idx < len(value):
                self.env[node] = value[idx]
            else:
                self._freeze_value(value, "an item of an untracked result")
                self.env[node] = None
            return
        p = _packet(fn)
        args = node.args
        x = self._val(args[0]) if args else None
        shape = _meta_shape(args[0]) if args else None
        ndim = len(shape) if shape is not None else 0
        out_shape = _meta_shape(node)
        name = str(p).replace("aten.", "")
        if p in _NO_TENSOR:
            out = _meta_shape(node)
            full = p in _CONSTANT and out is not None
            self.env[node] = Uniform(frozenset(range(len(out))), len(out)) if full else None
        elif p in _UNARY:
            for a in list(args[1:]) + list(node.kwargs.values()):
                self._freeze_value(self._val(a), f"argument of {name}")
            if isinstance(x, ParamRef) and p in _COPY:
                self.env[node] = x  # still the parameter, in another dtype or memory
                return
            if isinstance(x, ParamRef):
                x = self._as_tracked(x, ndim)
            self.env[node] = x if isinstance(x, Tracked | Uniform) else self._poisoned(x)
            if p is _A.native_dropout:
                self.env[node] = (self.env[node], None)
        elif p in _ELEMENTWISE:
            self._elementwise(node)
        elif p in (_A.linear,):
            self._linear(node, x, ndim, args[1], args[2] if len(args) > 2 else None)
        elif p in (_A.addmm,):
            self._addmm(node)
        elif p in (_A.matmul, _A.bmm, _A.mm):
            self._matmul(node, args[0], args[1])
        elif p in _CONV:
            self._conv(node, x, ndim)
        elif p in (_A.layer_norm, _A.native_layer_norm, _A.rms_norm):
            self._layer_norm(node, x, ndim)
        elif p in (_A.group_norm, _A.native_group_norm):
            self._group_norm(node, x, ndim)
        elif p in _BATCH_NORM:
            self._batch_norm(node, x, ndim)
        elif p is _A.embedding:
            self._embedding(node)
        elif p in _RNN:
            self._rnn(node, _RNN[p])
        elif p is _A.scaled_dot_product_attention:
            self._sdpa(node)
        elif p in _POOL or p is _A.roll:
            t = self._keep_dim(x, _moved_dims(node, ndim), name)
            self.env[node] = (t, None) if p is _A.max_pool2d_with_indices else t
        elif p in _VIEW:
            self.env[node] = self._reshape(x, shape, out_shape, name)
        elif p in (_A.transpose, _A.permute, _A.t, _A.swapaxes, _A.movedim):
            self._permute(node, x, ndim)
        elif p is _A.unsqueeze:
            self._unsqueeze(node, x, ndim)
        elif p is _A.squeeze:
            self._squeeze(node, x, shape, out_shape)
        elif p in (_A.expand, _A.expand_as, _A.repeat):
            self._expand(node, x, shape, out_shape, p is _A.repeat)
        elif p is _A.cat:
            dim = args[1] if len(args) > 1 else node.kwargs.get("dim", 0)
            self._cat(node, list(args[0]), dim)
        elif p in (_A.split, _A.split_with_sizes, _A.chunk, _A.unbind, _A.tensor_split):
            self._split(node, x, ndim, p)
        elif p is _A.slice:
            self._slice(node, x, ndim, shape)
        elif p is _A.select:
            self._select(node, x, ndim)
        elif p in (_A.index, _A.index_select):
            self._index(node, x, ndim, p)
        elif p in (_A.softmax, _A._softmax, _A.log_softmax, _A._log_softmax):
            dim = args[1] if len(args) > 1 else node.kwargs.get("dim")
            self.env[node] = self._softmax(x, dim, ndim, name)
        elif p in _REDUCE:
            self._reduce(node, x, ndim, shape, out_shape, name)
        else:
            self._unknown(node, name)

    def _poisoned(self, x: Any) -> Any:
        if isinstance(x, Poison):
            self.uf.freeze(x.ids, x.reason)
        if isinstance(x, ParamRef):
            self._freeze_value(x, f"{x.module}.{x.attr} used by an unmodelled operation")
        return None

    def _keep_dim(self, x: Any, moved: set[int] | None, what: str) -> Any:
        """`x` through an operation that moves values along the dimensions `moved` only."""
        if not isinstance(x, Tracked):
            return self._poisoned(x)
        if moved is None or x.dim % x.ndim in moved:
            self.uf.freeze(x.ids, f"{what} mixes these channels' positions")
            return None
        return x

    # -- layers ------------------------------------------------------------------------------
    def _linear(self, node: fx.Node, x: Any, ndim: int, w_arg: Any, b_arg: Any) -> None:
        w, b = self._val(w_arg), self._val(b_arg)
        out_shape = _meta_shape(node) or ()
        if not isinstance(w, ParamRef) or len(w.axes) != 2:
            self._matmul_like_unknown(node)
            return
        self._use_in(x, w.axes[1], ndim, -1, f"{w.module!r}")
        out = w.axes[0]
        if isinstance(b, ParamRef):
            self._unite(b.axes[0], out)
        elif b is not None:
            self._poisoned(b)
        self.env[node] = Tracked(out, len(out_shape) - 1, len(out_shape))

    def _matmul_like_unknown(self, node: fx.Node) -> None:
        self._unknown(node, f"{_packet(node.target)} with a computed weight")

    def _unite(self, a: list[int], b: list[int]) -> None:
        if len(a) != len(b):
            self.uf.freeze(a + b, "combined with a different number of channels")
            return
        for i, j in zip(a, b, strict=True):
            self.uf.union(i, j)

    def _addmm(self, node: fx.Node) -> None:
        bias, x_arg, w_arg = node.args[:3]
        w = self._val(w_arg)
        if isinstance(w, ParamRef) and len(w.axes) == 2:
            x = self._val(x_arg)
            self._use_in(x, w.axes[0], 2, -1, f"{w.module!r}")
            b = self._val(bias)
            if isinstance(b, ParamRef):
                self._unite(b.axes[-1], w.axes[1])
            else:
                self._poisoned(b)
            self.env[node] = Tracked(w.axes[1], 1, 2)
            return
        self._matmul(node, x_arg, w_arg, bias)

    def _matmul(self, node: fx.Node, a_arg: Any, b_arg: Any, bias: Any = None) -> None:
        out_shape = _meta_shape(node)
        sa, sb = _meta_shape(a_arg), _meta_shape(b_arg)
        if out_shape is None or sa is None or sb is None or len(sa) < 2 or len(sb) < 2:
            self._unknown(node, "matmul of vectors")
            return
        nd = len(out_shape)
        if bias is not None:
            self._poisoned(self._val(bias))
        a = self._as_tracked(self._val(a_arg), len(sa))
        b = self._as_tracked(self._val(b_arg), len(sb))
        # Positions counted from the end: -1 columns, -2 rows, below that batch dimensions.
        ra = a.dim % len(sa) - len(sa) if a is not None else 0
        rb = b.dim % len(sb) - len(sb) if b is not None else 0
        a_in, b_in = a is not None and ra == -1, b is not None and rb == -2
        if a_in and b_in:
            self._unite(a.ids, b.ids)  # removing position k from both drops one product term
        elif a_in or b_in:
            t = a if a_in else b
            self.uf.freeze(t.ids, "contracted by a matmul with a fixed operand")
        a, b = (None if a_in else a), (None if b_in else b)
        if a is not None and b is not None and ra == rb and ra <= -3:
            self._unite(a.ids, b.ids)
            b = None
        found: list[tuple[Tracked, int]] = []
        for t, r, other in ((a, ra, sb), (b, rb, sa)):
            if t is None:
                continue
            k = len(other) + r
            if r <= -3 and 0 <= k < len(other) and other[k] != 1:
                self.uf.freeze(t.ids, "batched matmul with a fixed-size operand")
                continue
            found.append((t, r))
        for t, _ in found[1:]:
            self.uf.freeze(t.ids, "a second pruned dimension of a matmul")
        self.env[node] = Tracked(found[0][0].ids, nd + found[0][1], nd) if found else None

    def _conv(self, node: fx.Node, x: Any, ndim: int) -> None:
        w = self._val(node.args[1])
        if not isinstance(w, ParamRef):
            self._unknown(node, "a convolution with a computed weight")
            return
        m = self.modules[w.module]
        b = self._val(node.args[2]) if len(node.args) > 2 else None
        if not isinstance(m, nn.modules.conv._ConvNd):
            self._unknown(node, f"a convolution with the weight of {w.module!r}")
            return
        out_ids = w.axes[1] if m.transposed else w.axes[0]
        in_ids = w.axes[0] if m.transposed else w.axes[1]
        if isinstance(b, ParamRef):
            self._unite(b.axes[0], out_ids)
        if m.groups == 1:
            self._use_in(x, in_ids, ndim, 1, f"{w.module!r}")
        elif m.groups == m.in_channels and not m.transposed:
            # Depthwise: output channel j reads input channel j // k; they go together.
            k = m.out_channels // m.in_channels
            dw = self._dw_ids(w.module, m.in_channels)
            t = x if isinstance(x, Tracked) and x.dim % ndim == 1 else None
            if t is None:
                self._poisoned(x)
                self.uf.freeze(
                    out_ids + dw, f"depthwise {w.module!r} whose input channels are fixed"
                )
            else:
                self._unite(t.ids, dw)
                for j, o in enumerate(out_ids):
                    self.uf.union(dw[j // k], o)
        else:
            reason = f"grouped convolution {w.module!r} (groups={m.groups}) keeps its channels"
            self.uf.freeze(out_ids + in_ids, reason)
            self._freeze_value(x, reason)
        self.env[node] = Tracked(out_ids, 1, ndim)

    def _dw_ids(self, module: str, n: int) -> list[int]:
        key = (module, "dw")
        if key not in self.axis_ids:
            self.axis_ids[key] = self.uf.make(n)
            self.a.usages.append(Usage(module, "dw", self.axis_ids[key]))
        return self.axis_ids[key]

    def _norm_params(self, params: list[Any], ids: list[int] | None, reason: str | None) -> None:
        for p in params:
            if isinstance(p, ParamRef):
                if ids is not None:
                    self._unite(p.axes[0], ids)
                if reason is not None:
                    self.uf.freeze(p.axes[0], reason)

    def _layer_norm(self, node: fx.Node, x: Any, ndim: int) -> None:
        args = node.args
        normalized = args[1] if len(args) > 1 else ()
        k = len(normalized) if isinstance(normalized, list | tuple) else 1
        params = [self._val(a) for a in args[2:4]]
        tuple_out = _packet(node.target) is _A.native_layer_norm
        if _packet(node.target) is _A.rms_norm:
            params = [self._val(args[2])] if len(args) > 2 else []
        result: Any = None
        if isinstance(x, Tracked) and x.dim % ndim >= ndim - k:
            if k == 1 and self.prune_embedding:
                self._norm_params(params, x.ids, None)
                result = x
            else:
                why = (
                    "a LayerNorm normalizes over these channels "
                    "(prune_embedding=True prunes them; the result is then approximate)"
                )
                self._norm_params(params, x.ids, why)
                self.uf.freeze(x.ids, why)
        else:
            self._norm_params(params, None, "a norm over a dimension that is not pruned")
            result = x if isinstance(x, Tracked) else self._poisoned(x)
        self.env[node] = (result, None, None) if tuple_out else result

    def _group_norm(self, node: fx.Node, x: Any, ndim: int) -> None:
        args = node.args
        native = _packet(node.target) is _A.native_group_norm
        groups = args[6] if native else args[1]
        params = [self._val(a) for a in (args[1:3] if native else args[2:4])]
        t = x if isinstance(x, Tracked) and x.dim % ndim == 1 else None
        if t is None:
            self._poisoned(x)
            self._norm_params(params, None, "GroupNorm of a fixed input")
        else:
            per = len(t.ids) // int(groups)
            for g in range(int(groups)):
                for i in t.ids[g * per + 1 : (g + 1) * per]:
                    self.uf.union(t.ids[g * per], i)
            self._norm_params(params, t.ids, None)
        self.env[node] = (t, None, None) if native else t

    def _batch_norm(self, node: fx.Node, x: Any, ndim: int) -> None:
        params = [self._val(a) for a in node.args[1:5]]
        t = x if isinstance(x, Tracked) and x.dim % ndim == 1 else None
        if t is None:
            self._poisoned(x)
            self._norm_params(params, None, "BatchNorm of a fixed input")
        else:
            self._norm_params(params, t.ids, None)
        p = _packet(node.target)
        if p in (_A.batch_norm, _A.instance_norm):
            self.env[node] = t
        else:
            self.env[node] = (t, None, None, None, None)

    def _embedding(self, node: fx.Node) -> None:
        w = self._val(node.args[0])
        out_shape = _meta_shape(node) or ()
        if not isinstance(w, ParamRef):
            self._unknown(node, "embedding of a computed table")
            return
        self._poisoned(self._val(node.args[1]))
        self.env[node] = Tracked(w.axes[1], len(out_shape) - 1, len(out_shape))

    def _rnn(self, node: fx.Node, mode: str) -> None:
        args = node.args
        x = self._val(args[0])
        shape = _meta_shape(args[0]) or ()
        ndim = len(shape)
        weights = self._val(args[2])
        first = weights[0] if isinstance(weights, list | tuple) and weights else None
        if not isinstance(first, ParamRef):
            self._unknown(node, f"{mode} with computed weights")
            return
        m = self.modules[first.module]
        name = first.module
        self._freeze_value(self._val(args[1]), f"initial state of {name!r}")
        in_ids = self._rnn_ids(name, "in", m.input_size)
        self._use_in(x, in_ids, ndim, -1, repr(name))
        if isinstance(m, nn.LSTM) and m.proj_size:
            out = self.uf.make(m.proj_size * (2 if m.bidirectional else 1))
            self.uf.freeze(out, f"LSTM {name!r} with proj_size keeps its width")
            self.env[node] = (Tracked(out, ndim - 1, ndim), None, None)
            return
        hidden = self._rnn_ids(name, f"hidden:{m.num_layers - 1}", m.hidden_size)
        out_ids = hidden + hidden if m.bidirectional else hidden
        poison = Poison(hidden, f"the final hidden state of {name!r} is used")
        self.env[node] = (Tracked(out_ids, ndim - 1, ndim), poison, poison)

    def _rnn_ids(self, module: str, role: str, n: int) -> list[int]:
        key = (module, role)
        if key not in self.axis_ids:
            self.axis_ids[key] = self.uf.make(n)
            self.a.usages.append(Usage(module, role, self.axis_ids[key]))
        return self.axis_ids[key]

    def _sdpa(self, node: fx.Node) -> None:
        args = list(node.args) + [None] * 4
        q, k, v = (self._val(a) for a in args[:3])
        mask_arg = args[3] if args[3] is not None else node.kwargs.get("attn_mask")
        shapes = [_meta_shape(a) for a in args[:3]]
        nd = len(shapes[0] or ())
        heads: list[Tracked] = []
        for t, s in zip((q, k, v), shapes, strict=True):
            if isinstance(t, Tracked) and s is not None and t.dim % len(s) == len(s) - 3:
                heads.append(t)
            else:
                self._freeze_value(t, "queries, keys or values of attention along head_dim")
        ok = len(heads) == 3 and len({len(t.ids) for t in heads}) == 1
        if ok:
            for t in heads[1:]:
                self._unite(heads[0].ids, t.ids)
        else:
            for t in heads:
                self.uf.freeze(t.ids, "attention whose heads the analysis could not follow")
        mask = self._val(mask_arg)
        ms = _meta_shape(mask_arg)
        if (
            ok
            and isinstance(mask, Tracked)
            and ms is not None
            and mask.dim % len(ms) == len(ms) - 3
        ):
            self._unite(heads[0].ids, mask.ids)
        elif (
            ok
            and ms is not None
            and len(ms) >= 3
            and ms[-3] != 1
            and not (isinstance(mask, Uniform) and len(ms) - 3 in mask.dims)
        ):
            self.uf.freeze(heads[0].ids, "an attention mask with one entry per head")
            self._freeze_value(mask, "an attention mask with one entry per head")
        else:
            self._freeze_value(mask, "an attention mask")
        self.env[node] = Tracked(heads[2].ids, nd - 3, nd) if ok else None

    # -- elementwise -------------------------------------------------------------------------
    def _elementwise(self, node: fx.Node) -> None:
        out_shape = _meta_shape(node)
        if out_shape is None:
            self._unknown(node, "an operation on non-tensors")
            return
        nd = len(out_shape)
        operands = [a for a in list(node.args) + list(node.kwargs.values())]
        # The dimension that carries elements, from the first activation operand: parameters
        # (a position embedding, a layer scale) are then read along that same dimension.
        target = next(
            (
                (v.dim % v.ndim) + nd - v.ndim
                for v in (self._val(a) for a in operands)
                if isinstance(v, Tracked)
            ),
            None,
        )
        vals = []
        for a in operands:
            v = self._val(a)
            s = _meta_shape(a)
            if isinstance(v, ParamRef):
                v = self._param_along(v, len(s or ()), nd, target)
            elif isinstance(v, Poison):
                self.uf.freeze(v.ids, v.reason)
                v = None
            vals.append((v, s))
        tracked = [(v, (v.dim % v.ndim) + nd - v.ndim) for v, _ in vals if isinstance(v, Tracked)]
        if not tracked:
            self.env[node] = self._uniform_result(vals, nd)
            return
        first, out_dim = tracked[0]
        expanded = first.expanded
        for v, d in tracked[1:]:
            if d != out_dim or len(v.ids) != len(first.ids):
                self.uf.freeze(first.ids + v.ids, "combined with other channels elementwise")
                self.env[node] = None
                return
            self._unite(first.ids, v.ids)
        for v, s in vals:
            if isinstance(v, Tracked) or s is None:
                continue
            k = out_dim - (nd - len(s))
            if 0 <= k < len(s) and s[k] != 1 and not (isinstance(v, Uniform) and k in v.dims):
                self.uf.freeze(first.ids, "combined elementwise with a fixed-size tensor")
        self.env[node] = Tracked(first.ids, out_dim, nd, expanded)

    @staticmethod
    def _uniform_result(vals: list[tuple[Any, Any]], nd: int) -> Uniform | None:
        """The dimensions along which an elementwise result of untracked operands is uniform:
        those where every operand is uniform or broadcast (size 1, or missing)."""
        dims = set(range(nd))
        for v, s in vals:
            if s is None:
                continue  # a Python number
            off = nd - len(s)
            mine = {d for d in range(nd) if d < off or s[d - off] == 1}
            if isinstance(v, Uniform):
                mine |= {d + off for d in v.dims}
            dims &= mine
        return Uniform(frozenset(dims), nd) if dims else None

    # -- shapes ------------------------------------------------------------------------------
    def _cat(self, node: fx.Node, items: list[Any], dim: int) -> None:
        out_shape = _meta_shape(node)
        nd = len(out_shape) if out_shape else 0
        dim = dim % nd if nd else dim
        if not any(isinstance(self._val(i), Tracked | ParamRef | Poison) for i in items):
            self.env[node] = None
            return
        ids: list[int] = []
        others: list[Tracked] = []
        target = next(
            (
                v.dim % v.ndim
                for v in (self._val(i) for i in items)
                if isinstance(v, Tracked) and v.ndim == nd
            ),
            None,
        )
        for item in items:
            v = self._val(item)
            s = _meta_shape(item)
            if isinstance(v, ParamRef):
                v = self._param_along(v, len(s or ()), nd, target)
            if isinstance(v, Tracked) and v.dim % v.ndim == dim:
                ids.extend(v.ids)
                continue
            if isinstance(v, Tracked):
                others.append(v)
            else:
                self._poisoned(v)
            width = s[dim] if s is not None and len(s) > dim else 0
            fixed = self.uf.make(width)
            self.uf.freeze(fixed, "concatenated with a fixed-size tensor")
            ids.extend(fixed)
        if others:
            # Along another dimension: every input carries the same channels (tied together).
            base = others[0]
            same = len(others) == len(items) and all(
                len(v.ids) == len(base.ids) and v.dim % v.ndim == base.dim % base.ndim
                for v in others
            )
            if same:
                for v in others[1:]:
                    self._unite(base.ids, v.ids)
                self.env[node] = Tracked(base.ids, base.dim % base.ndim, nd)
            else:
                self.uf.freeze([i for v in others for i in v.ids], "concatenated with other data")
                self.env[node] = None
            return
        self.env[node] = Tracked(ids, dim, nd)

    def _split(self, node: fx.Node, x: Any, ndim: int, p: Any) -> None:
        out_shapes = node.meta.get("val")
        if not isinstance(x, Tracked) or not isinstance(out_shapes, list | tuple):
            self._poisoned(x)
            self.env[node] = None
            return
        if p is _A.unbind:
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        elif p is _A.chunk or p is _A.tensor_split:
            dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
        else:
            dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
        dim = int(dim) % ndim
        if dim != x.dim % ndim:
            if p is _A.unbind:
                nd = ndim - 1
                new = x.dim - (1 if x.dim % ndim > dim else 0)
                self.env[node] = tuple(Tracked(x.ids, new, nd) for _ in out_shapes)
            else:
                self.env[node] = tuple(Tracked(x.ids, x.dim, ndim) for _ in out_shapes)
            return
        if p is _A.unbind:
            self.uf.freeze(x.ids, "unbound along the channels")
            self.env[node] = None
            return
        sizes = [int(v.shape[dim]) for v in out_shapes]
        parts, start = [], 0
        for s in sizes:
            parts.append(x.ids[start : start + s])
            start += s
        if len(set(sizes)) == 1 and len(sizes) > 1:
            # Equal parts (a fused gate/up projection, q/k/v): the split point moves with
            # pruning only if every part loses the same positions.
            for part in parts[1:]:
                self._unite(parts[0], part)
        else:
            self.uf.freeze(x.ids, "split into unequal parts (their sizes are fixed in the code)")
        self.env[node] = tuple(Tracked(part, x.dim, ndim) for part in parts)

    def _slice(self, node: fx.Node, x: Any, ndim: int, shape: tuple[int, ...] | None) -> None:
        if not isinstance(x, Tracked) or shape is None:
            self.env[node] = self._poisoned(x)
            return
        dim = int(node.args[1]) % ndim if len(node.args) > 1 else 0
        if dim != x.dim % ndim:
            self.env[node] = x
            return
        start = node.args[2] if len(node.args) > 2 else 0
        end = node.args[3] if len(node.args) > 3 else None
        step = node.args[4] if len(node.args) > 4 else 1
        if step != 1 or not isinstance(start, int | None) or not isinstance(end, int | None):
            self.uf.freeze(x.ids, "sliced along the channels")
            self.env[node] = None
            return
        rng = range(len(x.ids))[slice(start, end)]
        if len(rng) == len(x.ids):
            self.env[node] = x
            return
        if self._partition(node, dim, len(x.ids)):
            # The slices cut the channels into consecutive pieces (a fused projection such as
            # Phi-3's qkv_proj): each piece keeps its own elements. The bounds in the code
            # must follow the pruning (they come from attributes and the config, which are
            # updated); `structured` checks the pruned model runs and keeps the group if not.
            self.env[node] = Tracked(x.ids[rng.start : rng.stop], x.dim, x.ndim, x.expanded)
            return
        self.uf.freeze(x.ids, "sliced along the channels (the bounds are fixed in the code)")
        self.env[node] = None

    @staticmethod
    def _partition(node: fx.Node, dim: int, n: int) -> bool:
        """Whether the slices of node's input along `dim` cut it into consecutive pieces."""
        src = node.args[0]
        ranges = []
        for user in src.users:
            if _packet(user.target) is not _A.slice:
                return False
            args = list(user.args) + [0, None, 1][len(user.args) - 2 :]
            if int(args[1]) % max(len(_meta_shape(src) or ()), 1) != dim or args[4] != 1:
                return False
            r = range(n)[slice(args[2], args[3])]
            ranges.append((r.start, r.stop))
        ranges.sort()
        return (
            len(ranges) > 1
            and ranges[0][0] == 0
            and ranges[-1][1] == n
            and all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
        )

    def _select(self, node: fx.Node, x: Any, ndim: int) -> None:
        if not isinstance(x, Tracked):
            self.env[node] = self._poisoned(x)
            return
        dim = int(node.args[1]) % ndim
        if dim == x.dim % ndim:
            self.uf.freeze(x.ids, "one channel selected")
            self.env[node] = None
            return
        new = x.dim % ndim - (1 if dim < x.dim % ndim else 0)
        self.env[node] = Tracked(x.ids, new, ndim - 1)

    def _index(self, node: fx.Node, x: Any, ndim: int, p: Any) -> None:
        out_shape = _meta_shape(node) or ()
        if isinstance(x, ParamRef):
            x = self._as_tracked(x, ndim) if len(x.axes) == 1 else self._table(x)
        if not isinstance(x, Tracked):
            self.env[node] = self._poisoned(x)
            return
        d = x.dim % ndim
        if p is _A.index_select:
            dim = int(node.args[1]) % ndim
            self.env[node] = x if dim != d else self._freeze_none(x, "indexed along the channels")
            return
        indices = list(node.args[1])
        used = [i for i, ix in enumerate(indices) if ix is not None]
        if d in used or not used:
            self.env[node] = self._freeze_none(x, "indexed along the channels")
            return
        if used == list(range(len(used))) and d >= len(used):
            idx_nd = len(_meta_shape(indices[0]) or ())
            self.env[node] = Tracked(x.ids, d - len(used) + idx_nd, len(out_shape))
            return
        if max(used) < d and used == list(range(used[0], used[-1] + 1)):
            self.env[node] = Tracked(x.ids, len(out_shape) - (ndim - d), len(out_shape))
            return
        self.env[node] = self._freeze_none(x, "advanced indexing around the channels")

    def _table(self, x: ParamRef) -> Tracked | None:
        """A 2-D parameter indexed by rows (a bias table): its columns stay tracked."""
        if len(x.axes) != 2:
            self._poisoned(x)
            return None
        self.uf.freeze(x.axes[0], f"rows of {x.module}.{x.attr} are looked up")
        return Tracked(x.axes[1], 1, 2)

    def _freeze_none(self, x: Tracked, reason: str) -> None:
        self.uf.freeze(x.ids, reason)
        return None

    def _reshape(
        self, x: Any, in_shape: tuple[int, ...] | None, out_shape: tuple[int, ...] | None, what: str
    ) -> Any:
        if isinstance(x, ParamRef):
            x = self._as_tracked(x, len(in_shape or ()))
        if not isinstance(x, Tracked):
            return self._poisoned(x)
        if in_shape is None or out_shape is None:
            self.uf.freeze(x.ids, f"{what} of unknown shape")
            return None
        d = x.dim % len(in_shape)
        n = in_shape[d]
        pre = math.prod(in_shape[:d])
        post = math.prod(in_shape[d + 1 :])
        prefix = [math.prod(out_shape[:k]) for k in range(len(out_shape) + 1)]
        # Case 1: the element dimension maps onto output dims i..j (kept or split).
        if pre in prefix:
            i = prefix.index(pre)
            while i < len(out_shape) and out_shape[i] == 1 and prefix[i + 1] == pre and n != 1:
                i += 1
            if pre * n in prefix[i + 1 :]:
                j = prefix.index(pre * n, i + 1) - 1
                if j == i:
                    return Tracked(x.ids, i, len(out_shape))
                inner = math.prod(out_shape[i + 1 : j + 1])
                if all(x.ids[t] == x.ids[t % inner] for t in range(n)):
                    if j == i + 1:
                        return Tracked(x.ids[:inner], i + 1, len(out_shape))
                elif j == i + 1 or inner > 1:
                    # Split into (outer, inner): each block of `inner` goes together (a head).
                    ids = []
                    for blk in range(out_shape[i]):
                        block = x.ids[blk * inner : (blk + 1) * inner]
                        for e in block[1:]:
                            self.uf.union(block[0], e)
                        if len(set(block)) > 1 or inner > 1:
                            self.a.heads[block[0]] = inner
                        ids.append(block[0])
                    return Tracked(ids, i, len(out_shape))
        # Case 2: merged with neighbouring dims into one output dim.
        for i in range(len(out_shape)):
            if pre % prefix[i] or (prefix[i + 1] % (pre * n)):
                continue
            before = pre // prefix[i]
            after = prefix[i + 1] // (pre * n)
            # `after` must be whole trailing dims of the input
            tail, k = 1, d + 1
            while tail < after and k < len(in_shape):
                tail *= in_shape[k]
                k += 1
            if tail != after or after > post:
                continue
            merged = set(range(d + 1, k))
            if after > 1 and merged and merged <= set(x.expanded) and before == 1:
                ids = []
                for e in x.ids:
                    children = self.uf.make(after)
                    self.a.expansions.append((e, children))
                    ids.extend(children)
                return Tracked(ids, i, len(out_shape))
            ids = [e for _ in range(before) for e in x.ids for _ in range(after)]
            return Tracked(ids, i, len(out_shape))
        self.uf.freeze(x.ids, f"{what} reshapes the channels")
        return None

    def _permute(self, node: fx.Node, x: Any, ndim: int) -> None:
        if isinstance(x, ParamRef):
            x = self._as_tracked(x, ndim)
        if not isinstance(x, Tracked):
            self.env[node] = self._poisoned(x)
            return
        p = _packet(node.target)
        d = x.dim % ndim
        if p is _A.t:
            perm = [1, 0] if ndim == 2 else [0]
        elif p in (_A.transpose, _A.swapaxes):
            a, b = (int(v) % ndim for v in node.args[1:3])
            perm = list(range(ndim))
            perm[a], perm[b] = perm[b], perm[a]
        elif p is _A.movedim:
            src, dst = node.args[1], node.args[2]
            src = [src] if isinstance(src, int) else list(src)
            dst = [dst] if isinstance(dst, int) else list(dst)
            order = list(range(ndim))
            perm = [-1] * ndim
            for s_, t_ in zip(src, dst, strict=True):
                perm[t_ % ndim] = s_ % ndim
            rest = [o for o in order if o not in [s_ % ndim for s_ in src]]
            for pos in range(ndim):
                if perm[pos] == -1:
                    perm[pos] = rest.pop(0)
        else:
            perm = [int(v) % ndim for v in node.args[1]]
        expanded = frozenset(perm.index(e) for e in x.expanded)
        self.env[node] = Tracked(x.ids, perm.index(d), ndim, expanded)

    def _unsqueeze(self, node: fx.Node, x: Any, ndim: int) -> None:
        if isinstance(x, ParamRef):
            # Still the parameter, with one more axis of size 1: which axis carries the
            # elements is decided where it meets an activation.
            dim = int(node.args[1]) % (ndim + 1)
            self.env[node] = ParamRef(x.module, x.attr, [*x.axes[:dim], [], *x.axes[dim:]])
            return
        if not isinstance(x, Tracked):
            self.env[node] = self._poisoned(x)
            return
        dim = int(node.args[1]) % (ndim + 1)
        shift = lambda e: e + 1 if e >= dim else e  # noqa: E731
        self.env[node] = Tracked(
            x.ids, shift(x.dim % ndim), ndim + 1, frozenset(shift(e) for e in x.expanded)
        )

    def _squeeze(self, node: fx.Node, x: Any, shape: Any, out_shape: Any) -> None:
        if isinstance(x, ParamRef):
            x = self._as_tracked(x, len(shape or ()))
        if not isinstance(x, Tracked) or shape is None or out_shape is None:
            self.env[node] = self._poisoned(x)
            return
        d = x.dim % len(shape)
        if len(node.args) > 1:
            dims = node.args[1]
            dims = [dims] if isinstance(dims, int) else list(dims)
            dims = [int(v) % len(shape) for v in dims if shape[int(v) % len(shape)] == 1]
        else:
            dims = [k for k, s in enumerate(shape) if s == 1]
        if d in dims:
            dims.remove(d)
        new = d - sum(1 for k in dims if k < d)
        self.env[node] = Tracked(x.ids, new, len(out_shape))

    def _expand(self, node: fx.Node, x: Any, shape: Any, out_shape: Any, repeat: bool) -> None:
        if isinstance(x, ParamRef) and not repeat and shape is not None and out_shape is not None:
            # A broadcast parameter (a class token expanded over the batch): still the
            # parameter, with new leading axes; its size-1 axes carry no elements.
            grown: list[list[int]] = [[] for _ in range(len(out_shape) - len(shape))]
            self.env[node] = ParamRef(x.module, x.attr, grown + x.axes)
            return
        if isinstance(x, ParamRef):
            x = self._as_tracked(x, len(shape or ()))
        if not isinstance(x, Tracked) or shape is None or out_shape is None:
            self.env[node] = self._poisoned(x)
            return
        nd = len(out_shape)
        off = nd - len(shape)
        d = x.dim % len(shape) + off
        if out_shape[d] != len(x.ids):
            self.uf.freeze(x.ids, "repeated along the channels")
            self.env[node] = None
            return
        grown = {k + off for k, s in enumerate(shape) if s == 1 and out_shape[k + off] > 1}
        expanded = set() if repeat else {e + off for e in x.expanded} | grown
        self.env[node] = Tracked(x.ids, d, nd, frozenset(expanded))

    def _softmax(self, x: Any, dim: int | None, ndim: int, what: str) -> Any:
        if not isinstance(x, Tracked):
            return self._poisoned(x)
        if dim is None or dim % ndim == x.dim % ndim:
            self.uf.freeze(x.ids, f"{what} normalizes over these channels")
            return None
        return x

    def _reduce(
        self, node: fx.Node, x: Any, ndim: int, shape: Any, out_shape: Any, what: str
    ) -> None:
        if isinstance(x, ParamRef):
            x = self._as_tracked(x, ndim)
        if not isinstance(x, Tracked) or out_shape is None:
            self.env[node] = self._poisoned(x)
            return
        args = node.args[1:]
        dims = args[0] if args else node.kwargs.get("dim")
        if dims is None or (isinstance(dims, list | tuple) and not dims) or ndim == 0:
            self.uf.freeze(x.ids, f"{what} over all dimensions")
            self.env[node] = None
            return
        dims = [int(v) % ndim for v in (dims if isinstance(dims, list | tuple) else [dims])]
        d = x.dim % ndim
        if d in dims:
            p = _packet(node.target)
            if self.prune_embedding and p in _STATISTICS:
                # A mean or variance over the channels is a norm's statistic (RMSNorm, a
                # hand-written LayerNorm): it changes, as a LayerNorm's does, which
                # prune_embedding=True accepts. The result carries no channels.
                self.env[node] = (None, None) if p is _A.var_mean else None
                return
            self.uf.freeze(x.ids, f"{what} over the channels")
            self.env[node] = None
            return
        keep = len(out_shape) == ndim
        new = d if keep else d - sum(1 for v in dims if v < d)
        t = Tracked(x.ids, new, len(out_shape))
        self.env[node] = (t, None) if _packet(node.target) in (_A.max, _A.min) else t
        if _packet(node.target) is _A.var_mean:
            self.env[node] = (t, t)


def export(model: nn.Module, example_inputs: Any) -> torch.export.ExportedProgram:
    """The ATen graph of `model` on `example_inputs` (Hugging Face caches switched off)."""
    if isinstance(example_inputs, Mapping):
        args, kwargs = (), dict(example_inputs)
    elif isinstance(example_inputs, tuple | list):
        args, kwargs = tuple(example_inputs), {}
    else:
        args, kwargs = (example_inputs,), {}
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "use_cache") and "use_cache" not in kwargs:
        import inspect

        if "use_cache" in inspect.signature(model.forward).parameters:
            kwargs["use_cache"] = False
    was_training = model.training
    model.eval()
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.export(model, tuple(args), kwargs, strict=False)
    finally:
        model.train(was_training)


def analyze(model: nn.Module, example_inputs: Any, *, prune_embedding: bool = False) -> Analysis:
    """Export `model` and find which parameter positions go together and which are frozen.

    If the model cannot be exported, the analysis is empty and `traced` is False: only modules
    with their own rules (attention of ``nn.MultiheadAttention``, RNN layers) are pruned.
    """
    analysis = Analysis(prune_embedding=prune_embedding)
    try:
        ep = export(model, example_inputs)
    except Exception as exc:
        analysis.traced = False
        analysis.trace_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        return analysis
    _Propagator(model, ep, analysis, prune_embedding).run()
    return analysis
