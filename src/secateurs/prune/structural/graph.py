"""Channel dependency analysis by tracing the model with torch.fx.

Every output channel of a prunable layer (Linear, convolution, Embedding, RNN) becomes an
*element*. Propagating elements through the traced graph records where each channel is used:
as rows of its producer, columns of consumers, entries of BatchNorm/LayerNorm/GroupNorm.
Operations that tie channels (residual additions, depthwise convolution, GroupNorm groups,
equal ``chunk`` halves) merge elements with a union-find; concatenation and flatten map them
through. Whatever the analysis does not understand *freezes* the elements that reach it: a
frozen channel is never removed, so an unknown pattern can cost compression but can never
produce a wrong model. Model inputs, outputs, constants and parameters used functionally are
frozen the same way.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from secateurs.prune.structural.modules import HeadPrunedAttention
from secateurs.prune.structural.rules import is_local_rule_module


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
    role: str  # "out" | "in" | "norm"
    ids: list[int]


@dataclass
class Tracked:
    """A tensor whose dimension `dim` carries the channel elements `ids`."""

    ids: list[int]
    dim: int
    ndim: int


@dataclass
class Poison:
    """A value that depends on elements in a way we do not model: any use freezes them."""

    ids: list[int]
    reason: str


@dataclass
class Analysis:
    """The result: elements, their usages, and why the frozen ones are frozen."""

    uf: UnionFind = field(default_factory=UnionFind)
    usages: list[Usage] = field(default_factory=list)
    traced: bool = True
    trace_error: str | None = None


_PASSTHROUGH_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Softplus,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.Upsample,
)
_POOL_MODULES = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
_F = torch.nn.functional
_PASSTHROUGH_FUNCS = {
    torch.relu,
    torch.sigmoid,
    torch.tanh,
    torch.abs,
    torch.neg,
    torch.exp,
    torch.square,
    torch.sqrt,
    torch.clamp,
    torch.clip,
    _F.relu,
    _F.relu6,
    _F.gelu,
    _F.silu,
    _F.elu,
    _F.leaky_relu,
    _F.hardswish,
    _F.hardsigmoid,
    _F.hardtanh,
    _F.mish,
    _F.softplus,
    _F.sigmoid,
    _F.tanh,
    _F.dropout,
    _F.dropout1d,
    _F.dropout2d,
    _F.dropout3d,
    operator.neg,
}
_POOL_FUNCS = {
    _F.max_pool1d,
    _F.max_pool2d,
    _F.max_pool3d,
    _F.avg_pool1d,
    _F.avg_pool2d,
    _F.avg_pool3d,
    _F.adaptive_avg_pool1d,
    _F.adaptive_avg_pool2d,
    _F.adaptive_avg_pool3d,
    _F.adaptive_max_pool1d,
    _F.adaptive_max_pool2d,
    _F.adaptive_max_pool3d,
    _F.interpolate,
}
_PASSTHROUGH_METHODS = {
    "relu",
    "sigmoid",
    "tanh",
    "abs",
    "neg",
    "exp",
    "sqrt",
    "clamp",
    "clip",
    "contiguous",
    "float",
    "double",
    "half",
    "bfloat16",
    "to",
    "type_as",
    "clone",
    "detach",
    "relu_",
    "sigmoid_",
    "tanh_",
}
_BINARY = {
    operator.add,
    operator.iadd,
    operator.sub,
    operator.isub,
    operator.mul,
    operator.imul,
    operator.truediv,
    operator.itruediv,
    torch.add,
    torch.sub,
    torch.mul,
    torch.div,
    torch.maximum,
    torch.minimum,
}
_BINARY_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"}
_NON_TENSOR_METHODS = {"size", "dim", "numel"}


# Leaves whose insides are not traced: their channels are handled by local rules or frozen.
_OPAQUE = (
    HeadPrunedAttention,
    nn.MultiheadAttention,
    nn.RNNBase,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
    nn.Transformer,
)


class _Tracer(fx.Tracer):
    """Traces into user modules; standard layers and known blocks stay leaves."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if is_local_rule_module(m) or isinstance(m, _OPAQUE):
            return True
        return next(iter(m.children()), None) is None


def trace(model: nn.Module) -> fx.GraphModule:
    """A torch.fx graph of `model` whose leaves are its standard layers."""
    graph = _Tracer().trace(model)
    return fx.GraphModule(model, graph)


def _positional(model: nn.Module, example_inputs: Any, gm: fx.GraphModule) -> list[Any]:
    """Example inputs as one value per placeholder, in order (kwargs bound to names)."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if isinstance(example_inputs, dict):
        sig = inspect.signature(model.forward)
        bound = sig.bind_partial(**example_inputs)
    else:
        args = example_inputs if isinstance(example_inputs, tuple | list) else (example_inputs,)
        bound = inspect.signature(model.forward).bind_partial(*args)
    bound.apply_defaults()
    values = []
    for node in placeholders:
        name = node.target.lstrip("*")
        if name not in bound.arguments:
            raise ValueError(f"example_inputs do not give the forward argument {name!r}")
        values.append(bound.arguments[name])
    return values


def _shape(node: Any) -> tuple[int, ...] | None:
    if not isinstance(node, fx.Node):
        return None
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(shape) if shape is not None else None


class _Propagator:
    def __init__(self, gm: fx.GraphModule, analysis: Analysis, prune_embedding: bool) -> None:
        self.gm = gm
        self.a = analysis
        self.uf = analysis.uf
        self.prune_embedding = prune_embedding
        self.env: dict[fx.Node, Any] = {}
        self.modules = dict(gm.named_modules())

    # -- helpers -------------------------------------------------------------------------
    def _freeze_value(self, value: Any, reason: str) -> None:
        if isinstance(value, Tracked | Poison):
            self.uf.freeze(value.ids, reason)
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
        if isinstance(arg, dict):
            return {k: self._val(v) for k, v in arg.items()}
        return None

    def _all_inputs(self, node: fx.Node) -> list[Any]:
        return [self._val(a) for a in node.args] + [self._val(v) for v in node.kwargs.values()]

    def _unknown(self, node: fx.Node, what: str) -> None:
        for v in self._all_inputs(node):
            self._freeze_value(v, f"used by {what}, which the analysis does not model")
        self.env[node] = None

    def _new(self, module: str, n: int, dim: int, ndim: int, role: str = "out") -> Tracked:
        ids = self.uf.make(n)
        self.a.usages.append(Usage(module, role, ids))
        return Tracked(ids, dim, ndim)

    def _tracked_at(self, value: Any, dim: int, ndim: int, what: str) -> Tracked | None:
        """`value` if it carries elements at `dim` (of an ndim-tensor), else freeze it."""
        if isinstance(value, Poison):
            self.uf.freeze(value.ids, value.reason)
            return None
        if not isinstance(value, Tracked):
            return None
        if ndim == 0 or value.dim % ndim != dim % ndim:
            self.uf.freeze(value.ids, f"{what} uses these channels along another dimension")
            return None
        return value

    # -- main loop ------------------------------------------------------------------------
    def run(self) -> None:
        for node in self.gm.graph.nodes:
            if node.op in ("placeholder", "get_attr"):
                self.env[node] = None
            elif node.op == "output":
                self._freeze_value(self._val(node.args[0]), "reaches the model output")
            elif node.op == "call_module":
                self._module(node)
            elif node.op == "call_function":
                self._function(node)
            elif node.op == "call_method":
                self._method(node)

    # -- modules --------------------------------------------------------------------------
    def _module(self, node: fx.Node) -> None:
        name = str(node.target)
        m = self.modules[name]
        x = self._val(node.args[0]) if node.args else None
        shape = _shape(node.args[0]) if node.args else None
        ndim = len(shape) if shape is not None else 0
        out_shape = _shape(node)
        if out_shape is None and not isinstance(m, nn.RNNBase):
            self._unknown(node, f"module {name!r} whose output is not one tensor")
            return
        if isinstance(m, nn.Linear) or _is_hf_conv1d(m):
            t = self._tracked_at(x, -1, ndim, name)
            if t is not None:
                self.a.usages.append(Usage(name, "in", t.ids))
            n_out = m.out_features if isinstance(m, nn.Linear) else m.nf
            self.env[node] = self._new(name, n_out, len(out_shape) - 1, len(out_shape))
        elif isinstance(m, nn.modules.conv._ConvNd):
            self._conv(node, name, m, x, ndim)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            t = self._tracked_at(x, 1, ndim, name)
            if t is not None:
                self.a.usages.append(Usage(name, "norm", t.ids))
            self.env[node] = t
        elif isinstance(m, nn.LayerNorm):
            self._layernorm(node, name, m, x, ndim)
        elif isinstance(m, nn.GroupNorm):
            t = self._tracked_at(x, 1, ndim, name)
            if t is not None:
                per = m.num_channels // m.num_groups
                for g in range(m.num_groups):
                    for i in t.ids[g * per + 1 : (g + 1) * per]:
                        self.uf.union(t.ids[g * per], i)
                self.a.usages.append(Usage(name, "norm", t.ids))
            self.env[node] = t
        elif isinstance(m, nn.Embedding):
            t = self._new(name, m.embedding_dim, ndim, ndim + 1)
            if not self.prune_embedding:
                self.uf.freeze(t.ids, "embedding width (pass prune_embedding=True to prune it)")
            self.env[node] = t
        elif isinstance(m, nn.RNNBase):
            self._rnn(node, name, m, x, ndim)
        elif isinstance(m, _PASSTHROUGH_MODULES):
            self.env[node] = x if isinstance(x, Tracked) else self._poisoned(x)
        elif isinstance(m, _POOL_MODULES):
            self.env[node] = self._keep_dim(x, 1, ndim, name)
        elif isinstance(m, nn.Flatten):
            self.env[node] = self._reshape(x, shape, out_shape, name, literal_sizes=False)
        elif isinstance(m, nn.Softmax | nn.LogSoftmax):
            self.env[node] = self._softmax(x, m.dim, ndim, name)
        else:
            self._unknown(node, f"module {name!r} ({type(m).__name__})")

    def _poisoned(self, x: Any) -> Any:
        if isinstance(x, Poison):
            self.uf.freeze(x.ids, x.reason)
        return None

    def _keep_dim(self, x: Any, dim: int, ndim: int, what: str) -> Any:
        return self._tracked_at(x, dim, ndim, what)

    def _conv(self, node: fx.Node, name: str, m: Any, x: Any, ndim: int) -> None:
        t = self._tracked_at(x, 1, ndim, name)
        out = self._new(name, m.out_channels, 1, ndim)
        if m.groups == 1:
            if t is not None:
                self.a.usages.append(Usage(name, "in", t.ids))
        elif m.groups == m.in_channels and not m.transposed:
            # Depthwise: output channel j reads input channel j // k; they go together.
            k = m.out_channels // m.in_channels
            if t is None:
                self.uf.freeze(out.ids, f"depthwise {name!r} whose input channels are fixed")
            else:
                for j, o in enumerate(out.ids):
                    self.uf.union(t.ids[j // k], o)
                self.a.usages.append(Usage(name, "dw", t.ids))
        else:
            reason = f"grouped convolution {name!r} (groups={m.groups}) keeps its channels"
            self.uf.freeze(out.ids, reason)
            if t is not None:
                self.uf.freeze(t.ids, reason)
        self.env[node] = out

    def _layernorm(self, node: fx.Node, name: str, m: nn.LayerNorm, x: Any, ndim: int) -> None:
        k = len(m.normalized_shape)
        if isinstance(x, Tracked) and x.dim % ndim >= ndim - k:
            if k == 1 and self.prune_embedding:
                self.a.usages.append(Usage(name, "norm", x.ids))
                self.env[node] = x
                return
            self.uf.freeze(
                x.ids,
                f"LayerNorm {name!r} normalizes over these channels "
                "(pass prune_embedding=True to prune them; the result is then approximate)",
            )
            self.env[node] = None
            return
        self.env[node] = x if isinstance(x, Tracked) else self._poisoned(x)

    def _rnn(self, node: fx.Node, name: str, m: nn.RNNBase, x: Any, ndim: int) -> None:
        t = self._tracked_at(x, -1, ndim, name)
        if t is not None:
            self.a.usages.append(Usage(name, "in", t.ids))
        if m.proj_size if isinstance(m, nn.LSTM) else False:
            ids = self.uf.make(m.proj_size * (2 if m.bidirectional else 1))
            self.uf.freeze(ids, f"LSTM {name!r} with proj_size keeps its width")
            self.env[node] = (Tracked(ids, ndim - 1, ndim), None)
            return
        hidden = self.uf.make(m.hidden_size)
        self.a.usages.append(Usage(name, "out", hidden))
        out_ids = hidden + hidden if m.bidirectional else hidden
        for extra in node.args[1:]:
            self._freeze_value(self._val(extra), f"initial state of {name!r}")
        self.env[node] = (
            Tracked(out_ids, ndim - 1, ndim),
            Poison(hidden, f"the final hidden state of {name!r} is used"),
        )

    def _softmax(self, x: Any, dim: int | None, ndim: int, what: str) -> Any:
        if not isinstance(x, Tracked):
            return self._poisoned(x)
        if dim is None or dim % ndim == x.dim % ndim:
            self.uf.freeze(x.ids, f"{what} normalizes over these channels")
            return None
        return x

    # -- functions ------------------------------------------------------------------------
    def _function(self, node: fx.Node) -> None:
        fn = node.target
        args = node.args
        x = self._val(args[0]) if args else None
        shape = _shape(args[0]) if args else None
        ndim = len(shape) if shape is not None else 0
        name = getattr(fn, "__name__", str(fn))
        if fn in _PASSTHROUGH_FUNCS:
            others = [self._val(a) for a in args[1:]] + [self._val(v) for v in node.kwargs.values()]
            for v in others:
                self._freeze_value(v, f"argument of {name}")
            self.env[node] = x if isinstance(x, Tracked) else self._poisoned(x)
        elif fn in _POOL_FUNCS:
            self.env[node] = self._keep_dim(x, 1, ndim, name)
        elif fn in _BINARY:
            self._binary(node, args[0], args[1] if len(args) > 1 else node.kwargs.get("other"))
        elif fn is torch.flatten:
            self.env[node] = self._reshape(x, shape, _shape(node), name, literal_sizes=False)
        elif fn is torch.cat or fn is torch.concat:
            dim = args[1] if len(args) > 1 else node.kwargs.get("dim", 0)
            self._cat(node, list(args[0]), dim)
        elif fn is operator.getitem:
            self._getitem(node, args[0], args[1])
        elif fn in (torch.softmax, _F.softmax, _F.log_softmax, torch.log_softmax):
            dim = args[1] if len(args) > 1 else node.kwargs.get("dim")
            self.env[node] = self._softmax(x, dim, ndim, name)
        elif fn in (torch.transpose, torch.permute):
            self._permute(node, x, ndim, fn is torch.transpose, list(args[1:]))
        elif fn in (torch.mean, torch.sum, torch.amax, torch.amin):
            self._reduce(node, x, ndim, args[1:], node.kwargs, name)
        elif fn in (torch.chunk,):
            self._chunk(node, x, args[1], args[2] if len(args) > 2 else 0, ndim)
        elif fn is getattr:
            self.env[node] = self._poisoned(x)
        else:
            self._unknown(node, f"function {name}")

    def _method(self, node: fx.Node) -> None:
        meth = str(node.target)
        args = node.args
        x = self._val(args[0])
        shape = _shape(args[0])
        ndim = len(shape) if shape is not None else 0
        if meth in _NON_TENSOR_METHODS:
            self.env[node] = None
        elif meth in _PASSTHROUGH_METHODS:
            others = [self._val(a) for a in args[1:]] + [self._val(v) for v in node.kwargs.values()]
            for v in others:
                self._freeze_value(v, f"argument of .{meth}()")
            self.env[node] = x if isinstance(x, Tracked) else self._poisoned(x)
        elif meth in _BINARY_METHODS:
            self._binary(node, args[0], args[1] if len(args) > 1 else node.kwargs.get("other"))
        elif meth in ("view", "reshape", "flatten"):
            literal = meth != "flatten"
            self.env[node] = self._reshape(
                x, shape, _shape(node), f".{meth}()", literal_sizes=literal, node=node
            )
        elif meth in ("transpose", "permute"):
            dims = list(args[1:])
            if meth == "permute" and len(dims) == 1 and isinstance(dims[0], list | tuple):
                dims = list(dims[0])
            self._permute(node, x, ndim, meth == "transpose", dims)
        elif meth in ("mean", "sum", "amax", "amin"):
            self._reduce(node, x, ndim, args[1:], node.kwargs, f".{meth}()")
        elif meth == "chunk":
            self._chunk(node, x, args[1], args[2] if len(args) > 2 else 0, ndim)
        elif meth in ("softmax", "log_softmax"):
            dim = args[1] if len(args) > 1 else node.kwargs.get("dim")
            self.env[node] = self._softmax(x, dim, ndim, f".{meth}()")
        else:
            self._unknown(node, f"method .{meth}()")

    def _binary(self, node: fx.Node, a_arg: Any, b_arg: Any) -> None:
        out_shape = _shape(node)
        if out_shape is None:
            self._unknown(node, "an operation on non-tensors")
            return
        ndim = len(out_shape)
        vals = [(self._val(a_arg), _shape(a_arg)), (self._val(b_arg), _shape(b_arg))]
        tracked = []
        for v, _ in vals:
            if isinstance(v, Poison):
                self.uf.freeze(v.ids, v.reason)
            elif isinstance(v, Tracked):
                tracked.append((v, (v.dim % v.ndim) + ndim - v.ndim))
        if not tracked:
            self.env[node] = None
            return
        first, out_dim = tracked[0]
        for v, d in tracked[1:]:
            if d != out_dim or len(v.ids) != len(first.ids):
                self.uf.freeze(first.ids + v.ids, "combined with other channels elementwise")
                self.env[node] = None
                return
            for i, j in zip(first.ids, v.ids, strict=True):
                self.uf.union(i, j)
        # An untracked operand with a full-size channel dimension cannot shrink with us.
        for v, s in vals:
            if isinstance(v, Tracked) or s is None:
                continue
            k = out_dim - (ndim - len(s))
            if 0 <= k < len(s) and s[k] != 1:
                self.uf.freeze(first.ids, "combined elementwise with a fixed-size tensor")
        self.env[node] = Tracked(first.ids, out_dim, ndim)

    def _cat(self, node: fx.Node, items: list[Any], dim: int) -> None:
        out_shape = _shape(node)
        ndim = len(out_shape) if out_shape else 0
        dim = dim % ndim if ndim else dim
        vals = [self._val(i) for i in items]
        ids: list[int] = []
        others: list[Tracked] = []
        for item, v in zip(items, vals, strict=True):
            s = _shape(item)
            if isinstance(v, Tracked) and v.dim % v.ndim == dim:
                ids.extend(v.ids)
            else:
                if isinstance(v, Tracked):
                    others.append(v)
                elif isinstance(v, Poison):
                    self.uf.freeze(v.ids, v.reason)
                width = s[dim] if s is not None else 0
                fixed = self.uf.make(width)
                self.uf.freeze(fixed, "concatenated with a fixed-size tensor")
                ids.extend(fixed)
        if others:
            # Concatenation along another dimension ties the channels of all inputs.
            base = others[0]
            for v in others[1:]:
                if len(v.ids) != len(base.ids) or v.dim != base.dim:
                    self.uf.freeze(base.ids + v.ids, "concatenated along another dimension")
                else:
                    for i, j in zip(base.ids, v.ids, strict=True):
                        self.uf.union(i, j)
            if len(others) != len(items):
                self.uf.freeze(base.ids, "concatenated with a fixed-size tensor")
            self.env[node] = Tracked(base.ids, base.dim, ndim)
            return
        self.env[node] = Tracked(ids, dim, ndim)

    def _getitem(self, node: fx.Node, src: Any, index: Any) -> None:
        value = self._val(src)
        if isinstance(value, tuple | list):
            self.env[node] = value[index] if isinstance(index, int) else None
            if not isinstance(index, int):
                self._freeze_value(value, "a slice of a tuple")
            return
        if isinstance(value, Poison):
            self.env[node] = value
            return
        if not isinstance(value, Tracked):
            self.env[node] = None
            return
        idx = index if isinstance(index, tuple) else (index,)
        shape = _shape(src) or ()
        out_dim = 0
        in_dim = 0
        for item in idx:
            if item is Ellipsis:
                consumed = sum(1 for i in idx if i is not None and i is not Ellipsis)
                skip = len(shape) - consumed
                if in_dim <= value.dim < in_dim + skip:
                    out_dim += value.dim - in_dim
                    self.env[node] = Tracked(value.ids, out_dim, len(_shape(node) or ()))
                    return
                in_dim += skip
                out_dim += skip
                continue
            if item is None:
                out_dim += 1
                continue
            if in_dim == value.dim % len(shape):
                if isinstance(item, slice) and item == slice(None):
                    self.env[node] = Tracked(value.ids, out_dim, len(_shape(node) or ()))
                else:
                    self.uf.freeze(value.ids, "indexed or sliced along the channels")
                    self.env[node] = None
                return
            if isinstance(item, int):
                in_dim += 1
            elif isinstance(item, slice):
                in_dim += 1
                out_dim += 1
            else:
                self.uf.freeze(value.ids, "advanced indexing")
                self.env[node] = None
                return
        # The channel dimension comes after all indexed dimensions.
        new_dim = out_dim + (value.dim % len(shape) - in_dim)
        self.env[node] = Tracked(value.ids, new_dim, len(_shape(node) or ()))

    def _reshape(
        self,
        x: Any,
        in_shape: tuple[int, ...] | None,
        out_shape: tuple[int, ...] | None,
        what: str,
        *,
        literal_sizes: bool,
        node: fx.Node | None = None,
    ) -> Any:
        if not isinstance(x, Tracked):
            return self._poisoned(x)
        if in_shape is None or out_shape is None:
            self.uf.freeze(x.ids, f"{what} of unknown shape")
            return None
        d = x.dim % len(in_shape)
        lead = math.prod(in_shape[:d])
        acc = 1
        for d_out, size in enumerate(out_shape):
            if acc == lead and size % in_shape[d] == 0 and size > 0:
                repeat = size // in_shape[d]
                tail = 1
                k = d + 1
                while tail < repeat and k < len(in_shape):
                    tail *= in_shape[k]
                    k += 1
                if (tail == repeat and in_shape[d] > 1) or (tail == repeat and size == in_shape[d]):
                    if literal_sizes and node is not None and _literal_size(node, d_out):
                        break
                    ids = [i for i in x.ids for _ in range(repeat)]
                    return Tracked(ids, d_out, len(out_shape))
            acc *= size
            if acc > lead:
                break
        self.uf.freeze(x.ids, f"{what} reshapes the channels")
        return None

    def _permute(self, node: fx.Node, x: Any, ndim: int, transpose: bool, dims: list) -> None:
        if not isinstance(x, Tracked):
            self.env[node] = self._poisoned(x)
            return
        d = x.dim % ndim
        if transpose:
            a, b = (int(v) % ndim for v in dims[:2])
            new = b if d == a else a if d == b else d
        else:
            new = [int(v) % ndim for v in dims].index(d)
        self.env[node] = Tracked(x.ids, new, ndim)

    def _reduce(self, node: fx.Node, x: Any, ndim: int, args: Any, kwargs: Any, what: str) -> None:
        if not isinstance(x, Tracked):
            self.env[node] = self._poisoned(x)
            return
        dims = args[0] if args else kwargs.get("dim")
        keepdim = bool(args[1]) if len(args) > 1 else bool(kwargs.get("keepdim", False))
        if dims is None:
            self.uf.freeze(x.ids, f"{what} over all dimensions")
            self.env[node] = None
            return
        dims = [int(v) % ndim for v in (dims if isinstance(dims, list | tuple) else [dims])]
        d = x.dim % ndim
        if d in dims:
            self.uf.freeze(x.ids, f"{what} over the channels")
            self.env[node] = None
            return
        new = d if keepdim else d - sum(1 for v in dims if v < d)
        self.env[node] = Tracked(x.ids, new, ndim if keepdim else ndim - len(dims))

    def _chunk(self, node: fx.Node, x: Any, chunks: int, dim: int, ndim: int) -> None:
        if not isinstance(x, Tracked):
            self.env[node] = self._poisoned(x)
            return
        if dim % ndim != x.dim % ndim:
            self.env[node] = tuple(x for _ in range(chunks))
            return
        n = len(x.ids)
        if n % chunks:
            self.uf.freeze(x.ids, "chunked into unequal parts")
            self.env[node] = None
            return
        size = n // chunks
        parts = [x.ids[k * size : (k + 1) * size] for k in range(chunks)]
        for part in parts[1:]:
            for i, j in zip(parts[0], part, strict=True):
                self.uf.union(i, j)
        self.env[node] = tuple(Tracked(p, x.dim, ndim) for p in parts)


def _literal_size(node: fx.Node, d_out: int) -> bool:
    """Whether a view/reshape gives the size of output dim `d_out` as a literal int."""
    sizes = list(node.args[1:])
    if len(sizes) == 1 and isinstance(sizes[0], list | tuple):
        sizes = list(sizes[0])
    if d_out >= len(sizes):
        return False
    size = sizes[d_out]
    return isinstance(size, int) and size != -1


def _is_hf_conv1d(m: nn.Module) -> bool:
    return type(m).__name__ == "Conv1D" and type(m).__module__.startswith("transformers")


def analyze(model: nn.Module, example_inputs: Any, *, prune_embedding: bool = False) -> Analysis:
    """Trace `model` and find which channel elements go together and which are frozen.

    If the model cannot be traced, the analysis is empty and `traced` is False: only the
    blocks with local rules (attention heads, MLPs, RNN layers) can then be pruned.
    """
    analysis = Analysis()
    try:
        gm = trace(model)
    except Exception as exc:
        analysis.traced = False
        analysis.trace_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return analysis
    values = _positional(model, example_inputs, gm)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(*values)
    finally:
        model.train(was_training)
    _Propagator(gm, analysis, prune_embedding).run()
    return analysis
