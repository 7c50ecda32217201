"""Describe a model's architecture as JSON and rebuild it without pickling code.

A description says how to build the module tree (a factory ``"module:function"`` with keyword
arguments, or a Hugging Face model class with its config) and then records, for every module of
a standard type (Linear, convolutions, norms, Embedding, RNNs, MultiheadAttention), the
constructor arguments read from its *current* shapes, plus the plain scalar attributes of every
module. A structurally pruned model therefore rebuilds with its smaller layers: the factory
builds the original shapes, and every leaf whose recorded arguments differ is replaced.

Rebuilding never imports or calls anything that the description names (it is data from a
file). By default it builds only

- trees whose root is a ``torch.nn`` class (``nn.Sequential`` of standard layers ...), every
  module made from the ``torch.nn`` classes already loaded, found by exact name;
- Hugging Face models, whose class is found through transformers' own Auto mappings for the
  config's ``model_type`` (the import path in the description is ignored; no remote code).

Anything else (a model class of the user's) is built by a factory that the caller names
(``arch=``) or, when the caller trusts the file, by the factory that the file records
(``trust_arch=True``). Scalar attributes are restored only onto attributes that the built
module already has, with a value of the same kind.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

FORMAT = "secateurs.arch/1"

_SCALARS = (bool, int, float, str)
# Attributes that torch manages itself or that must not be overwritten on rebuild.
_SKIP_ATTRS = frozenset({"training", "_is_hf_initialized", "_compiled_call_impl"})


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


_DTYPES = {
    _dtype_name(d): d
    for d in (
        torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.complex64,
        torch.complex128, torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8,
        torch.bool, torch.float8_e4m3fn, torch.float8_e5m2,
    )
}  # fmt: skip


def dtype_from(name: Any) -> torch.dtype:
    """The torch dtype a file names (``"float32"``), from a fixed table: a ValueError else."""
    dtype = _DTYPES.get(name) if isinstance(name, str) else None
    if dtype is None:
        raise ValueError(f"the file names an unknown dtype {name!r}")
    return dtype


_dtype_from = dtype_from


def _tuple(v: Any) -> Any:
    return list(v) if isinstance(v, tuple | list) else v


def _linear(m: nn.Linear) -> dict[str, Any]:
    return {
        "in_features": m.in_features,
        "out_features": m.out_features,
        "bias": m.bias is not None,
    }


def _conv(m: nn.modules.conv._ConvNd) -> dict[str, Any]:
    args = {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": _tuple(m.kernel_size),
        "stride": _tuple(m.stride),
        "padding": _tuple(m.padding),
        "dilation": _tuple(m.dilation),
        "groups": m.groups,
        "bias": m.bias is not None,
        "padding_mode": m.padding_mode,
    }
    if m.transposed:
        args["output_padding"] = _tuple(m.output_padding)
    return args


def _batchnorm(m: nn.modules.batchnorm._BatchNorm) -> dict[str, Any]:
    return {
        "num_features": m.num_features,
        "eps": m.eps,
        "momentum": m.momentum,
        "affine": m.affine,
        "track_running_stats": m.track_running_stats,
    }


def _layernorm(m: nn.LayerNorm) -> dict[str, Any]:
    return {
        "normalized_shape": list(m.normalized_shape),
        "eps": m.eps,
        "elementwise_affine": m.elementwise_affine,
        "bias": m.bias is not None,
    }


def _groupnorm(m: nn.GroupNorm) -> dict[str, Any]:
    return {
        "num_groups": m.num_groups,
        "num_channels": m.num_channels,
        "eps": m.eps,
        "affine": m.affine,
    }


def _embedding(m: nn.Embedding) -> dict[str, Any]:
    return {
        "num_embeddings": m.num_embeddings,
        "embedding_dim": m.embedding_dim,
        "padding_idx": m.padding_idx,
        "max_norm": m.max_norm,
        "norm_type": m.norm_type,
        "scale_grad_by_freq": m.scale_grad_by_freq,
        "sparse": m.sparse,
    }


def _rnn(m: nn.RNNBase) -> dict[str, Any]:
    args = {
        "input_size": m.input_size,
        "hidden_size": m.hidden_size,
        "num_layers": m.num_layers,
        "bias": m.bias,
        "batch_first": m.batch_first,
        "dropout": float(m.dropout),
        "bidirectional": m.bidirectional,
    }
    if isinstance(m, nn.LSTM):
        args["proj_size"] = m.proj_size
    if type(m) is nn.RNN:
        args["nonlinearity"] = m.nonlinearity
    return args


def _mha(m: nn.MultiheadAttention) -> dict[str, Any]:
    return {
        "embed_dim": m.embed_dim,
        "num_heads": m.num_heads,
        "dropout": float(m.dropout),
        "bias": m.in_proj_bias is not None,
        "add_bias_kv": m.bias_k is not None,
        "add_zero_attn": m.add_zero_attn,
        "kdim": m.kdim,
        "vdim": m.vdim,
        "batch_first": m.batch_first,
    }


# Order matters: subclasses (NonDynamicallyQuantizableLinear) resolve through isinstance.
_LEAF_TYPES: tuple[tuple[type[nn.Module], Callable[[Any], dict[str, Any]]], ...] = (
    (nn.Linear, _linear),
    (nn.modules.conv._ConvNd, _conv),
    (nn.modules.batchnorm._BatchNorm, _batchnorm),
    (nn.LayerNorm, _layernorm),
    (nn.GroupNorm, _groupnorm),
    (nn.Embedding, _embedding),
    (nn.RNNBase, _rnn),
    (nn.MultiheadAttention, _mha),
)


# Layers outside torch.nn that a description may rebuild: class path -> shape attributes.
_EXTRA_LEAVES: dict[str, tuple[str, ...]] = {
    "transformers.pytorch_utils:Conv1D": ("nf", "nx"),
    "secateurs.prune.structural.modules:HeadPrunedAttention": (
        "embed_dim",
        "num_heads",
        "head_dim",
        "kdim",
        "vdim",
        "bias",
        "dropout",
        "batch_first",
    ),
}


def _leaf_args(module: nn.Module) -> dict[str, Any] | None:
    for cls, reader in _LEAF_TYPES:
        if isinstance(module, cls):
            return reader(module)
    extra = _EXTRA_LEAVES.get(_type_path(type(module)))
    if extra is not None:
        return {k: getattr(module, k) for k in extra}
    return None


def _type_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _main_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def _module_dtype(module: nn.Module) -> torch.dtype | None:
    for p in module.parameters(recurse=False):
        if p.is_floating_point():
            return p.dtype
    return None


def _is_hf_model(model: nn.Module) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:
        return False
    return isinstance(model, PreTrainedModel)


def _default_factory(model: nn.Module) -> str:
    cls = type(model)
    if _known_class(_type_path(cls)) is not None:
        return _type_path(cls)  # rebuilt from the description alone, whatever its arguments
    if "<locals>" in cls.__qualname__ or cls.__module__ == "__main__":
        raise ValueError(
            f"{cls.__qualname__} is defined in {cls.__module__!r} or inside a function, so it "
            "cannot be imported when the file is loaded; pass arch='package.module:factory' "
            "naming an importable function or class that builds it"
        )
    required = [
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self"
        and p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if required:
        raise ValueError(
            f"{cls.__qualname__}() needs arguments {required}; pass arch='module:factory' and "
            "arch_kwargs={...} so the model can be rebuilt"
        )
    return _type_path(cls)


def _check_json(value: Any, where: str) -> None:
    if value is None or isinstance(value, _SCALARS):
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_json(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has a non-string key {k!r}; arch_kwargs must be JSON")
            _check_json(v, f"{where}.{k}")
        return
    raise TypeError(f"{where} is a {type(value).__name__}; arch_kwargs must be JSON-able")


def describe(
    model: nn.Module, *, arch: str | None = None, arch_kwargs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A JSON-able description from which `rebuild` makes an identically shaped module tree.

    `arch` is ``"module:function"`` (or ``"module:Class"``) building the model from
    `arch_kwargs`; by default the model's own class with no arguments, or for a Hugging Face
    ``PreTrainedModel`` its class and config.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if arch_kwargs is not None and arch is None:
        raise ValueError("arch_kwargs given without arch; pass arch='module:factory' too")
    desc: dict[str, Any] = {"format": FORMAT, "dtype": _dtype_name(_main_dtype(model))}
    if arch is not None:
        if not isinstance(arch, str) or arch.count(":") != 1 or not all(arch.split(":")):
            raise ValueError(f"arch must look like 'package.module:factory', got {arch!r}")
        kwargs = dict(arch_kwargs or {})
        _check_json(kwargs, "arch_kwargs")
        desc["factory"] = arch
        desc["kwargs"] = kwargs
    elif _is_hf_model(model):
        config = model.config.to_dict()
        desc["hf"] = {"class": _type_path(type(model)), "config": config}
    else:
        desc["factory"] = _default_factory(model)
        desc["kwargs"] = {}

    modules: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        entry: dict[str, Any] = {"type": _type_path(type(module))}
        args = _leaf_args(module)
        if args is not None:
            entry["args"] = args
            dtype = _module_dtype(module)
            if dtype is not None:
                entry["dtype"] = _dtype_name(dtype)
        attrs = {
            k: v
            for k, v in vars(module).items()
            if not k.startswith("__")
            and k not in _SKIP_ATTRS
            and type(v) in _SCALARS
            and not (isinstance(v, float) and v != v)
        }
        if attrs:
            entry["attrs"] = attrs
        if args is None:
            # Parameters of other modules (e.g. an attention's bias table, which structured
            # pruning may narrow): their shapes, so that rebuild can narrow them too.
            own = {k: list(p.shape) for k, p in module.named_parameters(recurse=False)}
            if own:
                entry["params"] = own
        modules[name] = entry
    desc["modules"] = modules
    return desc


class UntrustedArchitecture(ValueError):
    """The description needs code that the file names; the caller has not said to run it."""


Arch = Callable[..., nn.Module] | str


def _import(path: str, what: str) -> Any:
    """Import ``"module:name"`` named by the *caller* (or, with trust_arch, by the file)."""
    if not isinstance(path, str) or path.count(":") != 1 or not all(path.split(":")):
        raise ValueError(f"{what} must look like 'package.module:name', got {path!r}")
    module_name, qualname = path.split(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} named by {what} {path!r}: {exc}") from exc
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{module_name!r} has no attribute {qualname!r} ({what} {path!r})")
        obj = getattr(obj, part)
    return obj


def _check_factory(path: str, factory: Any) -> None:
    # Even a trusted file only names model classes and plain Python functions outside the
    # standard library, so that e.g. 'os:system' is refused with a clear message.
    for module_name in (path.split(":", 1)[0], getattr(factory, "__module__", None) or ""):
        top = module_name.split(".", 1)[0]
        if top in sys.stdlib_module_names or top == "builtins":
            raise ValueError(f"factory {path!r} is in the standard library, not a model factory")
    if isinstance(factory, type):
        if not issubclass(factory, nn.Module):
            raise ValueError(f"factory {path!r} is a class but not a torch.nn.Module")
        return
    if not isinstance(factory, types.FunctionType):
        raise ValueError(f"factory {path!r} must be a Python function or an nn.Module class")


@functools.cache
def _torch_nn_classes() -> dict[str, type[nn.Module]]:
    """Every nn.Module class defined in the (already imported) ``torch.nn`` modules, by path."""
    found: dict[str, type[nn.Module]] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "torch.nn" or name.startswith("torch.nn.modules")):
            continue
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, nn.Module)
                and value.__module__.startswith("torch.nn")
            ):
                found[_type_path(value)] = value
    return found


def _known_class(path: Any) -> type[nn.Module] | None:
    """The class a description names, if it is one that may be built without trust."""
    if not isinstance(path, str):
        return None
    if path in _EXTRA_LEAVES:
        return _import(path, "layer class")  # a fixed list in this file, not the file's word
    return _torch_nn_classes().get(path)


def _torch_nn_class(path: Any) -> type[nn.Module]:
    cls = _known_class(path)
    if cls is None:
        raise ValueError(
            f"the description needs a {path} module that the factory did not build; only "
            "torch.nn classes are built from a description, so rebuild with the same factory"
        )
    return cls


def _hf_class_names(model_type: str) -> set[str]:
    """Class names that transformers' Auto mappings give for `model_type`."""
    from transformers.models.auto import modeling_auto

    names: set[str] = set()
    for attr in dir(modeling_auto):
        mapping = getattr(modeling_auto, attr)
        if attr.endswith("_MAPPING_NAMES") and isinstance(mapping, dict):
            value = mapping.get(model_type)
            names.update(value if isinstance(value, tuple | list) else [value])
    names.discard(None)
    return names


def _build_hf(spec: Any) -> nn.Module:
    """The Hugging Face model of a description, resolved by transformers itself."""
    try:
        import transformers
        from transformers import CONFIG_MAPPING, PreTrainedModel
    except ImportError as e:
        raise ImportError("this file holds a Hugging Face model: pip install secateurs[hf]") from e
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ValueError("the Hugging Face description has no config mapping")
    config = dict(spec["config"])
    model_type = config.get("model_type")
    class_name = str(spec.get("class", "")).rpartition(":")[2]
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise ValueError(f"the Hugging Face config names an unknown model_type {model_type!r}")
    allowed = _hf_class_names(model_type)
    if class_name not in allowed:
        raise ValueError(
            f"hf.class {spec.get('class')!r} is not a {model_type!r} model class that "
            f"transformers maps (one of {sorted(allowed)[:6]}); pass arch= to build it"
        )
    cls = getattr(transformers, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, PreTrainedModel)):
        raise ValueError(f"hf.class {class_name!r} is not a transformers PreTrainedModel")
    config.pop("auto_map", None)  # remote code is never used
    return cls(CONFIG_MAPPING[model_type].from_dict(config))


def _factory_call(factory: Any, kwargs: dict[str, Any], what: str) -> nn.Module:
    if not callable(factory):
        raise ValueError(f"{what} is not callable")
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise ValueError(f"{what} returned {type(model).__name__}, not an nn.Module")
    return model


def _recorded_kwargs(desc: dict[str, Any]) -> dict[str, Any]:
    kwargs = desc.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ValueError("the description's factory kwargs are not a mapping")
    return dict(kwargs)


def _build_base(
    desc: dict[str, Any],
    arch: Arch | None,
    arch_kwargs: dict[str, Any] | None,
    trust_arch: bool,
) -> nn.Module:
    if arch is not None:  # the caller's choice, called with the caller's or the recorded kwargs
        factory = _import(arch, "arch") if isinstance(arch, str) else arch
        kwargs = dict(arch_kwargs) if arch_kwargs is not None else _recorded_kwargs(desc)
        return _factory_call(factory, kwargs, f"arch {arch!r}")
    modules = desc.get("modules") if isinstance(desc.get("modules"), dict) else {}
    root = modules.get("", {})
    if _known_class(root.get("type")) is not None:  # no code needed, trusted or not
        return _build_leaf(root, _dtype_from(desc.get("dtype", "float32")))  # declarative
    if "hf" in desc:
        return _build_hf(desc["hf"])
    recorded = desc.get("factory")
    if not isinstance(recorded, str):
        raise ValueError("architecture description has neither 'factory' nor 'hf'")
    if not trust_arch:
        raise UntrustedArchitecture(
            f"this model is built by {recorded!r}, code named by the file; loading never runs "
            f"code a file names. If you have that code, pass arch={recorded!r} "
            f"(CLI: --arch {recorded}); if you trust the file, pass trust_arch=True "
            "(CLI: --trust-arch)"
        )
    factory = _import(recorded, "factory")
    _check_factory(recorded, factory)
    return _factory_call(factory, _recorded_kwargs(desc), f"factory {recorded!r}")


def _set_child(root: nn.Module, name: str, child: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, leaf, child)


def _build_leaf(
    entry: dict[str, Any], dtype: torch.dtype, cls: type[nn.Module] | None = None
) -> nn.Module:
    cls = cls or _torch_nn_class(entry.get("type"))
    if "args" not in entry:
        try:
            return cls().to(dtype)
        except TypeError as e:
            raise ValueError(f"cannot build {entry['type']} without arguments ({e})") from None
    args = entry["args"]
    if not isinstance(args, dict):
        raise ValueError(f"the arguments recorded for a {entry['type']} are not a mapping")
    args = dict(args)
    for key in ("kernel_size", "stride", "padding", "dilation", "output_padding"):
        if isinstance(args.get(key), list):
            args[key] = tuple(args[key])
    leaf_dtype = _dtype_from(entry["dtype"]) if "dtype" in entry else dtype
    try:
        try:
            return cls(**args, dtype=leaf_dtype)
        except TypeError:
            return cls(**args).to(leaf_dtype)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"cannot build a {entry['type']} from {args} ({e})") from None


def _resize_leaf(module: nn.Module, entry: dict[str, Any], dtype: torch.dtype) -> None:
    """Give `module` (a subclass of a torch.nn layer, built by the factory) the recorded sizes.

    Its own class is not built from the file (that would run code the file names): the
    torch.nn layer it derives from is built with the recorded arguments, and its parameters,
    buffers and plain attributes (``normalized_shape``, ``in_features``, ...) move over, so
    the subclass keeps its own forward and extra attributes (e.g. a ``data_format``).
    """
    base = next(cls for cls, _ in _LEAF_TYPES if isinstance(module, cls))
    fresh = _build_leaf(entry, dtype, cls=base)
    for key, value in vars(fresh).items():
        if not key.startswith("_") and key != "training":
            setattr(module, key, value)
    for key, param in fresh.named_parameters(recurse=False):
        setattr(module, key, param)
    for key, buf in fresh.named_buffers(recurse=False):
        module._buffers[key] = buf


def _narrow_params(module: nn.Module, name: str, shapes: dict[str, Any]) -> None:
    """Give `module`'s own parameters the recorded shapes, which may only be smaller."""
    for key, shape in shapes.items():
        current = getattr(module, key, None)
        if not isinstance(current, nn.Parameter) or list(current.shape) == list(shape):
            continue
        if (
            not isinstance(shape, list)
            or len(shape) != current.dim()
            or not all(
                isinstance(n, int) and 0 <= n <= c
                for n, c in zip(shape, current.shape, strict=True)
            )
        ):
            raise ValueError(
                f"the file records {name}.{key} with shape {shape}, which is not a narrowing of "
                f"the built {list(current.shape)}; the file is damaged or from another model"
            )
        new = torch.empty(shape, dtype=current.dtype, device=current.device)
        setattr(module, key, nn.Parameter(new, requires_grad=current.requires_grad))


def _same_kind(old: Any, new: Any) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new)
    if isinstance(old, int | float) and isinstance(new, int | float):
        return True
    return isinstance(old, str) and isinstance(new, str)


def _restore_attrs(module: nn.Module, name: str, attrs: Any) -> None:
    if not isinstance(attrs, dict):
        raise ValueError(f"the attributes recorded for {name or '<root>'!r} are not a mapping")
    current = vars(module)
    for key, value in attrs.items():
        if key in _SKIP_ATTRS:
            continue
        old = current.get(key)
        if not (type(old) in _SCALARS and type(value) in _SCALARS and _same_kind(old, value)):
            raise ValueError(
                f"the file sets attribute {key!r} of {name or '<root>'!r} to {value!r}, which "
                "the rebuilt module does not have as a plain value of that kind"
            )
        setattr(module, key, value)


def rebuild(
    desc: dict[str, Any],
    *,
    arch: Arch | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    trust_arch: bool = False,
) -> nn.Module:
    """Build the module tree that `describe` recorded (weights are freshly initialised).

    Nothing the description names is imported or called (see the module docstring) unless
    the caller passes `arch` (a callable or ``"module:function"``, called with `arch_kwargs`
    or else the recorded keyword arguments) or ``trust_arch=True`` (the recorded factory).
    Call it under ``torch.device("meta")`` to check shapes without allocating.
    """
    if not isinstance(desc, dict) or desc.get("format") != FORMAT:
        raise ValueError(f"not a secateurs architecture description (expected format {FORMAT!r})")
    recorded = desc.get("modules") or {}
    if not isinstance(recorded, dict) or not all(isinstance(e, dict) for e in recorded.values()):
        raise ValueError("the description's modules are not a mapping of module entries")
    dtype = _dtype_from(desc.get("dtype", "float32"))
    model = _build_base(desc, arch, arch_kwargs, trust_arch)
    model.to(dtype)

    for name, entry in recorded.items():
        if not isinstance(name, str):
            raise ValueError(f"module name {name!r} is not a string")
        try:
            current: nn.Module | None = model.get_submodule(name) if name else model
        except AttributeError:
            current = None
        if current is None:
            # A child the factory does not build (e.g. the layers of an nn.Sequential).
            parent = name.rpartition(".")[0]
            if parent not in recorded:
                raise ValueError(f"module {name!r} has no recorded parent {parent!r}")
            _set_child(model, name, _build_leaf(entry, dtype))
            continue
        if _type_path(type(current)) != entry.get("type") and entry.get("type") in _EXTRA_LEAVES:
            # e.g. an attention layer that structured pruning replaced by a smaller kind
            _set_child(model, name, _build_leaf(entry, dtype))
            continue
        if _type_path(type(current)) != entry.get("type"):
            raise ValueError(
                f"module {name or '<root>'!r} is a {_type_path(type(current))} but the file "
                f"recorded {entry.get('type')}; the factory builds a different architecture"
            )
        if "args" in entry and _leaf_args(current) != entry["args"]:
            if _known_class(entry.get("type")) is None and any(
                isinstance(current, cls) for cls, _ in _LEAF_TYPES
            ):
                _resize_leaf(current, entry, dtype)  # a subclass the factory built, resized
                continue
            replacement = _build_leaf(entry, dtype)
            if name:
                _set_child(model, name, replacement)
            else:
                model = replacement
            continue
        if (
            "dtype" in entry
            and _module_dtype(current) is not None
            and _dtype_name(_module_dtype(current)) != entry["dtype"]
        ):
            current.to(_dtype_from(entry["dtype"]))

    built = {name for name, _ in model.named_modules()}
    extra = sorted(built - set(recorded))
    if extra:
        raise ValueError(
            f"the factory builds modules the file does not record: {extra[:5]}; "
            "the file was saved from a different architecture"
        )
    for name, entry in recorded.items():
        module = model.get_submodule(name) if name else model
        _narrow_params(module, name, entry.get("params") or {})
        _restore_attrs(module, name, entry.get("attrs") or {})
    return model
