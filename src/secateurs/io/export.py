"""Write a (pruned) model in the formats the rest of the ecosystem loads, without secateurs.

=============  ===================================================================================
format         what is written, and who loads it
=============  ===================================================================================
safetensors    the model's ordinary ``state_dict`` with pruning masks baked in:
               ``model.load_state_dict(safetensors.torch.load_file(path))`` into your own class
pt             the same state dict through ``torch.save``: ``torch.load(path, weights_only=True)``
hf             a ``save_pretrained`` folder: ``AutoModel.from_pretrained(path)``
onnx           the current (dynamo) exporter, batch size left free, checked with onnxruntime
secateurs      the compact secateurs file (packed sparse tensors + architecture): `io.load`
=============  ===================================================================================

The format comes from the file name (``.safetensors``, ``.pt``/``.pth``/``.bin``, ``.onnx``,
``.secateurs``; a name without a suffix is a Hugging Face folder) unless given. A model whose
layers are smaller than its class builds (structured pruning) cannot be loaded into that class
as it stands, so beside a safetensors/pt file a ``<name>.layers.json`` lists every layer whose
size changed (its constructor arguments), and the safetensors metadata holds the same.
Every file is written to a temporary name and renamed: an error leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import copy
import io as _io
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from secateurs.io.atomic import atomic_path, write_text_atomic

FORMATS = ("safetensors", "pt", "hf", "onnx", "secateurs")
_SUFFIXES = {
    ".safetensors": "safetensors",
    ".pt": "pt",
    ".pth": "pt",
    ".bin": "pt",
    ".onnx": "onnx",
    ".secateurs": "secateurs",
}
LAYERS_KEY = "secateurs.layers"


@dataclass(frozen=True)
class Exported:
    """What `export` wrote: the main path, its format, any file beside it, and for ONNX the
    largest difference between onnxruntime's outputs and PyTorch's."""

    path: Path
    format: str
    extra: list[Path] = field(default_factory=list)
    onnx_max_diff: float | None = None


def format_for(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The export format for `path`: `fmt` when given, else from the file name."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"--format must be one of {list(FORMATS)}, got {fmt!r}")
        return fmt
    p = Path(path)
    if p.suffix.lower() in _SUFFIXES:
        return _SUFFIXES[p.suffix.lower()]
    if p.suffix == "" or p.is_dir():
        return "hf"
    raise ValueError(
        f"cannot tell the format from the name {p.name!r}; use a .safetensors, .pt, .pth, "
        f".onnx or .secateurs name, or pass --format one of {list(FORMATS)}"
    )


def export(
    model: nn.Module,
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    example_inputs: Any = None,
    reference: nn.Module | None = None,
    arch: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Exported:
    """Write `model` (pruning masks baked in; `model` itself is not changed) to `path`.

    `example_inputs` (a tensor or tuple of tensors) are needed for ONNX. `reference` is the
    model before structured pruning: layers whose sizes differ from it are listed in
    ``<path>.layers.json``; without it they are compared with what the recorded architecture
    (`secateurs.io.load`) or the Hugging Face config builds. `arch` and `metadata` go to the
    secateurs format (see `secateurs.io.save`).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    kind = format_for(path, fmt)
    target = Path(path)
    if kind != "hf" and target.is_dir():
        raise ValueError(f"{target} is a folder; --format {kind} writes a file")
    options = {
        "example_inputs": example_inputs,
        "reference": reference,
        "arch": arch,
        "metadata": dict(metadata or {}),
    }
    return _WRITERS[kind](model, target, options)


def _write_secateurs(model: nn.Module, target: Path, options: dict[str, Any]) -> Exported:
    from secateurs.io.model_file import save

    save(model, target, arch=options["arch"], metadata=options["metadata"])
    return Exported(target, "secateurs")


def _state_dict_writer(kind: str):
    def write(model: nn.Module, target: Path, options: dict[str, Any]) -> Exported:
        state = plain_state_dict(model)
        changed = changed_layers(model, options["reference"])
        with atomic_path(target) as tmp:
            if kind == "safetensors":
                from safetensors.torch import save_file

                meta = {LAYERS_KEY: json.dumps(changed)} if changed else None
                save_file(state, str(tmp), metadata=meta)
            else:
                torch.save(state, tmp)
        side = target.with_name(target.name + ".layers.json")
        if not changed:
            with contextlib.suppress(FileNotFoundError):
                side.unlink()  # an earlier export's list would now be wrong
            return Exported(target, kind)
        write_text_atomic(side, json.dumps(changed, indent=2) + "\n")
        return Exported(target, kind, [side])

    return write


def _write_hf(model: nn.Module, target: Path, options: dict[str, Any]) -> Exported:
    return Exported(_export_hf(model, target), "hf")


def _write_onnx(model: nn.Module, target: Path, options: dict[str, Any]) -> Exported:
    diff = _export_onnx(model, target, options["example_inputs"])
    return Exported(target, "onnx", onnx_max_diff=diff)


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """`model.state_dict()` with masks baked in, every tensor its own contiguous CPU memory
    (so tied weights appear under each name, as ``load_state_dict`` expects them)."""
    from secateurs.io.model_file import effective_state_dict

    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in effective_state_dict(model).items():
        t = tensor.detach().to("cpu")
        if t.layout != torch.strided:
            raise ValueError(f"{name} is a {t.layout} tensor; export the model before converting")
        ptr = t.untyped_storage().data_ptr()
        owns = (
            t.is_contiguous()
            and t.storage_offset() == 0
            and t.untyped_storage().nbytes() == t.numel() * t.element_size()
        )
        if not owns or ptr in seen or not t.numel():
            t = t.contiguous().clone()  # a view or a tied weight: give it its own memory
        else:
            seen.add(ptr)
        out[name] = t
    return out


def layer_sizes(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Constructor arguments of every standard layer (Linear, convolutions, norms, ...)."""
    from torch.nn.utils import parametrize

    from secateurs.io.arch import _leaf_args

    sizes = {}
    for name, module in model.named_modules():
        if "parametrizations" in name.split("."):
            continue
        args = _leaf_args(module)
        if args is not None:
            cls = parametrize.type_before_parametrizations(module)
            sizes[name] = {"type": f"{cls.__module__}.{cls.__qualname__}", **args}
    return sizes


def changed_layers(model: nn.Module, reference: nn.Module | None = None) -> dict[str, Any]:
    """The layers of `model` whose sizes differ from `reference` (or, without one, from what
    the model's recorded architecture or Hugging Face config builds); {} when none do."""
    if reference is None:
        reference = _original_build(model)
    if reference is None:
        return {}
    now, before = layer_sizes(model), layer_sizes(reference)
    return {name: args for name, args in now.items() if before.get(name) != args}


def _original_build(model: nn.Module) -> nn.Module | None:
    """The architecture as its recorded description or Hugging Face config builds it, on the
    meta device (no memory). Only what builds without running code is built: a recorded
    factory is never imported here (it may not be the one the caller trusted)."""
    desc = getattr(model, "secateurs_arch", None)
    config = getattr(model, "config", None)
    try:
        with torch.device("meta"):
            if isinstance(desc, dict) and "modules" in desc:
                from secateurs.io.arch import _build_base

                return _build_base(desc, None, None, False)
            if config is not None and _is_hf(model):
                return type(model)(copy.deepcopy(config))
    except Exception:  # it would need code, or cannot build on the meta device: no comparison
        return None
    return None


def _is_hf(model: nn.Module) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:
        return False
    return isinstance(model, PreTrainedModel)


def _baked_copy(model: nn.Module) -> nn.Module:
    from secateurs.prune.permanent import make_permanent

    return make_permanent(copy.deepcopy(model))


def _export_hf(model: nn.Module, target: Path) -> Path:
    if not _is_hf(model):
        raise ValueError(
            "--format hf needs a Hugging Face model (a transformers PreTrainedModel); "
            f"this is a {type(model).__name__}: use .safetensors or .pt"
        )
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} is a file; --format hf writes a folder")
    from secateurs.io.hf import save_pretrained

    return save_pretrained(_baked_copy(model), target)


def _as_tuple(example_inputs: Any) -> tuple[Any, ...]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, tuple | list) and all(
        isinstance(x, torch.Tensor) for x in example_inputs
    ):
        return tuple(example_inputs)
    raise ValueError(
        "--format onnx needs example inputs: a tensor or a tuple of tensors "
        "(CLI: --input-shape, e.g. 1,64)"
    )


def _export_onnx(model: nn.Module, target: Path, example_inputs: Any) -> float:
    """Export with torch's dynamo exporter (batch size free) and return the largest
    difference between onnxruntime and PyTorch on `example_inputs`; ValueError if too big."""
    if example_inputs is None:
        _as_tuple(None)
    args = _as_tuple(example_inputs)
    try:
        import onnxruntime as ort
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError as e:
        raise ImportError(f'ONNX export needs {e.name}: pip install "secateurs[onnx]"') from None
    plain = _baked_copy(model).eval()
    with torch.no_grad():
        expected = _flat_outputs(plain(*args))
    batch = torch.export.Dim.AUTO
    dynamic = tuple({0: batch} if a.dim() else {} for a in args)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with atomic_path(target) as tmp, contextlib.redirect_stdout(_io.StringIO()):
            torch.onnx.export(
                plain,
                args,
                str(tmp),
                dynamo=True,
                dynamic_shapes=dynamic,
                external_data=False,
                verbose=False,
            )
            session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            names = [i.name for i in session.get_inputs()]
            got = session.run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})
            diff = _max_diff(expected, got)
    finally:
        quiet.setLevel(level)
    return diff


def _flat_outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, Mapping):
        out = list(out.values())
    flat: list[torch.Tensor] = []
    for item in out:
        flat.extend(_flat_outputs(item))
    return flat


def _max_diff(expected: list[torch.Tensor], got: list[Any]) -> float:
    if len(expected) != len(got):
        raise ValueError(f"ONNX model gives {len(got)} outputs, PyTorch {len(expected)}")
    worst = 0.0
    for e, g in zip(expected, got, strict=True):
        g_t = torch.as_tensor(g)
        if tuple(g_t.shape) != tuple(e.shape):
            raise ValueError(f"ONNX output shape {tuple(g_t.shape)} != PyTorch {tuple(e.shape)}")
        if not e.is_floating_point():
            if not torch.equal(g_t, e):
                raise ValueError("ONNX integer outputs differ from PyTorch's")
            continue
        diff = (g_t.double() - e.double()).abs().max().item() if e.numel() else 0.0
        scale = 1.0 + e.double().abs().max().item() if e.numel() else 1.0
        if not diff <= 1e-4 * scale:
            raise ValueError(
                f"ONNX outputs differ from PyTorch's by {diff:.3g} (tolerance {1e-4 * scale:.3g})"
            )
        worst = max(worst, diff)
    return worst


_WRITERS = {
    "safetensors": _state_dict_writer("safetensors"),
    "pt": _state_dict_writer("pt"),
    "hf": _write_hf,
    "onnx": _write_onnx,
    "secateurs": _write_secateurs,
}
