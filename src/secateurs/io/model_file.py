"""One safetensors file per model: packed sparse tensors plus a JSON header.

The header (safetensors metadata key ``"secateurs"``) holds the format version, the
architecture description from `secateurs.io.arch.describe`, and for every state-dict entry its
packing, dtype, shape and a CRC32 of each stored part. Loading never unpickles: the module tree
is rebuilt with `secateurs.io.arch.rebuild` and the weights are restored bit for bit.

Pruning masks are applied when saving (the file stores the effective weights), so the loaded
model is a plain module.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from secateurs.io.atomic import atomic_path
from secateurs.io.sparse import pack, unpack

FORMAT = "secateurs.model/1"
HEADER_KEY = "secateurs"
_SEP = "::"


def _crc(t: torch.Tensor) -> int:
    return zlib.crc32(t.contiguous().reshape(-1).view(torch.uint8).numpy().data)


def effective_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """`model.state_dict()` with every parametrization applied (masks baked in)."""
    sd = model.state_dict()
    done: dict[int, torch.Tensor] = {}  # tied weights: one effective tensor per original
    for mod_name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        prefix = f"{mod_name}." if mod_name else ""
        for key in [k for k in sd if k.startswith(prefix + "parametrizations.")]:
            del sd[key]
        with torch.no_grad():
            for name, plist in module.parametrizations.items():
                key = id(next(iter(plist.parameters(recurse=False)), plist))
                if key not in done:
                    done[key] = getattr(module, name).detach()
                sd[prefix + name] = done[key]
    return sd


def describe_plain(
    model: nn.Module, arch: str | None = None, arch_kwargs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`arch.describe` of `model` as if its parametrizations had been removed."""
    from secateurs.io import arch as arch_mod

    desc = arch_mod.describe(model, arch=arch, arch_kwargs=arch_kwargs)
    modules = desc.get("modules")
    if isinstance(modules, dict):
        plain = {}
        for name, entry in modules.items():
            if "parametrizations" in name.split("."):
                continue
            module = model.get_submodule(name) if name else model
            if parametrize.is_parametrized(module):
                cls = parametrize.type_before_parametrizations(module)
                entry = dict(entry, type=f"{cls.__module__}:{cls.__qualname__}")
            plain[name] = entry
        desc["modules"] = plain
    return desc


def check_rebuilds(desc: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> None:
    """Refuse to write a file that `load` could not rebuild.

    The described architecture is built on the meta device (no memory, no initialisation
    cost) and its tensor names and shapes are compared with the model's.
    """
    from secateurs.io import arch as arch_mod

    hint = (
        "pass arch='package.module:factory' (and arch_kwargs) naming a function that builds "
        "this architecture (CLI: --arch)"
    )
    try:
        with torch.device("meta"):
            built = arch_mod.rebuild(desc).state_dict()
    except (ValueError, TypeError, ImportError, AttributeError) as e:
        raise ValueError(f"cannot record how to rebuild this model ({e}); {hint}") from None
    missing = sorted(set(state_dict) - set(built))
    unexpected = sorted(set(built) - set(state_dict))
    wrong = sorted(
        k
        for k in set(built) & set(state_dict)
        if tuple(built[k].shape) != tuple(state_dict[k].shape)
    )
    if missing or unexpected or wrong:
        raise ValueError(
            "the architecture recorded for this model would not rebuild it "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, other shapes {wrong[:3]}); "
            + hint
        )


def _json_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata must be JSON-serialisable: {e}") from None
    return metadata


def save(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    packing: str | None = None,
) -> Path:
    """Write `model` to `path` (atomically) as compact safetensors; return the path.

    `arch` / `arch_kwargs` name the factory that builds the architecture (see
    `secateurs.io.arch.describe`; without them the model's own class must build with no
    arguments). `metadata` is any JSON-able dict kept in the header. `packing` forces one
    packing for every tensor ("dense", "bitmask", "csr"); by default each takes the smallest.
    """
    from safetensors.torch import save_file

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    meta = _json_metadata(metadata)
    recorded = getattr(model, "secateurs_arch", None)  # set by `load`: keep the same factory
    if arch is None and isinstance(recorded, dict) and "factory" in recorded:
        arch, arch_kwargs = recorded["factory"], recorded.get("kwargs") or {}
    desc = describe_plain(model, arch, arch_kwargs)
    sd = effective_state_dict(model)

    stored: dict[str, torch.Tensor] = {}
    entries: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in sd.items():
        if tensor.layout != torch.strided:
            raise ValueError(
                f"{name} is a {tensor.layout} tensor (a model converted by "
                "to_sparse_inference?); save the pruned model before converting it"
            )
        key = (
            tensor.untyped_storage().data_ptr(),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tuple(tensor.stride()),
            tensor.dtype,
            tensor.device,
        )
        if tensor.numel() and key in seen:  # tied weights: store once
            aliases[name] = seen[key]
            continue
        seen[key] = name
        kind, parts = pack(tensor, packing)
        entry: dict[str, Any] = {
            "packing": kind,
            "dtype": str(tensor.dtype).removeprefix("torch."),
            "shape": list(tensor.shape),
            "parts": {},
        }
        for part, value in parts.items():
            value = value.contiguous()
            if kind == "dense":
                value = value.clone()  # never share storage with another entry
            stored[f"{name}{_SEP}{part}"] = value
            entry["parts"][part] = _crc(value)
        entries[name] = entry

    check_rebuilds(desc, sd)
    header = {
        "format": FORMAT,
        "arch": desc,
        "tensors": entries,
        "aliases": aliases,
        "metadata": meta,
    }
    target = Path(path)
    with atomic_path(target) as tmp:
        save_file(stored, str(tmp), metadata={HEADER_KEY: json.dumps(header)})
    return target


def _open(path: str | os.PathLike):
    from safetensors import safe_open

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"model file not found: {p}")
    if p.is_dir():
        raise ValueError(f"{p} is a folder, not a secateurs model file")
    try:
        return safe_open(str(p), framework="pt")
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"{p} is not a readable safetensors file ({e})") from None


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a secateurs model file (ValueError for any other file)."""
    with _open(path) as f:
        raw = (f.metadata() or {}).get(HEADER_KEY)
    if raw is None:
        raise ValueError(
            f"{path} is a safetensors file without a secateurs header (a plain state_dict?): "
            "load it with an architecture, e.g. `--arch package.module:factory`"
        )
    try:
        header = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} has a corrupt secateurs header: {e}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise ValueError(f"{path} has format {found!r}; this version reads {FORMAT!r}")
    return header


def is_secateurs_file(path: str | os.PathLike) -> bool:
    """True when `path` is a safetensors file with a secateurs header."""
    try:
        read_header(path)
    except (ValueError, FileNotFoundError):
        return False
    return True


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r} in the header")
    return dtype


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The unpacked (dense) state dict stored in a secateurs model file."""
    header = read_header(path)
    out: dict[str, torch.Tensor] = {}
    try:
        with _open(path) as f:
            keys = set(f.keys())
            for name, entry in header["tensors"].items():
                parts = {}
                for part, crc in entry["parts"].items():
                    k = f"{name}{_SEP}{part}"
                    if k not in keys:
                        raise ValueError(f"{path}: tensor {k!r} is missing")
                    value = f.get_tensor(k)
                    if _crc(value) != crc:
                        raise ValueError(f"{path}: tensor {k!r} is corrupt (checksum mismatch)")
                    parts[part] = value
                out[name] = unpack(entry["packing"], parts, entry["shape"], _dtype(entry["dtype"]))
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path} has a malformed secateurs header ({e!r})") from None
    except ValueError:
        raise
    except Exception as e:  # truncated data surfaces as safetensors / OS errors
        raise ValueError(f"{path} could not be read ({e})") from None
    for alias, name in header.get("aliases", {}).items():
        if name not in out:
            raise ValueError(f"{path}: alias {alias!r} points to missing {name!r}")
        out[alias] = out[name]
    return out


def load(path: str | os.PathLike) -> nn.Module:
    """Rebuild the model saved by `save` (architecture from the header, weights bit for bit)."""
    from secateurs.io import arch as arch_mod

    header = read_header(path)
    desc = header.get("arch")
    if not desc:
        raise ValueError(f"{path} records no architecture; read its weights with load_state_dict")
    sd = load_state_dict(path)
    model = arch_mod.rebuild(desc)
    result = model.load_state_dict(sd, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{path}: the rebuilt architecture does not match the stored weights "
            f"(missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]})"
        )
    model.secateurs_arch = desc  # type: ignore[attr-defined]
    return model


def stored_bytes(path: str | os.PathLike) -> dict[str, int]:
    """Bytes each state-dict entry occupies in the file (aliases: 0)."""
    header = read_header(path)
    sizes: dict[str, int] = {}
    with _open(path) as f:
        for name, entry in header["tensors"].items():
            total = 0
            for part in entry["parts"]:
                sl = f.get_slice(f"{name}{_SEP}{part}")
                shape = sl.get_shape()
                n = 1
                for s in shape:
                    n *= s
                total += n * _dtype(_ST_DTYPES.get(sl.get_dtype(), "float32")).itemsize
            sizes[name] = total
    for alias in header.get("aliases", {}):
        sizes[alias] = 0
    return sizes


_ST_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}
