"""One safetensors file per model: packed sparse tensors plus a JSON header.

The header (safetensors metadata key ``"secateurs"``) holds the format version, the
architecture description from `secateurs.io.arch.describe`, and for every state-dict entry its
packing, dtype, shape, whether it is a parameter, and a CRC32 of each stored part; a SHA-256 of
the header text (key ``"secateurs.sha256"``) covers the header itself, so the checksums cover
the whole file. Loading never unpickles and never runs code the file names (see
`secateurs.io.arch.rebuild`); the architecture is first built on the meta device and every
declared name, shape, dtype and packing is checked against it and against the stored bytes
before anything is allocated, and the weights are restored bit for bit.

Pruning masks are applied when saving (the file stores the effective weights), so the loaded
model is a plain module.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from secateurs.io.atomic import write_bytes_atomic
from secateurs.io.bounded import loads_json
from secateurs.io.sparse import check_parts, pack, unpack

FORMAT = "secateurs.model/1"
HEADER_KEY = "secateurs"
DIGEST_KEY = "secateurs.sha256"
_SEP = "::"
_MAX_DIMS = 32


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
            built = arch_mod.rebuild(desc, trust_arch=True).state_dict()
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
    from safetensors.torch import save as to_bytes

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    meta = _json_metadata(metadata)
    _check_savable(model)
    recorded = getattr(model, "secateurs_arch", None)  # set by `load`: keep the same factory
    if (
        isinstance(recorded, dict)
        and "factory" in recorded
        and arch_kwargs is None
        and arch in (None, recorded["factory"])
    ):
        arch, arch_kwargs = recorded["factory"], recorded.get("kwargs") or {}
    desc = describe_plain(model, arch, arch_kwargs)
    sd = effective_state_dict(model)
    params = _parameter_names(model)

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
            "param": name in params,
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
    text = json.dumps(header)
    digest = hashlib.sha256(text.encode()).hexdigest()
    data = to_bytes(stored, metadata={HEADER_KEY: text, DIGEST_KEY: digest})
    return write_bytes_atomic(path, data)


def _parameter_names(model: nn.Module) -> set[str]:
    """State-dict names of parameters (a parametrized weight under its plain name)."""
    names = set()
    for name, _ in model.named_parameters(remove_duplicate=False):
        parts = name.split(".")
        if "parametrizations" in parts:  # m.parametrizations.weight.original -> m.weight
            i = parts.index("parametrizations")
            parts = [*parts[:i], parts[i + 1]]
        names.add(".".join(parts))
    return names


def _check_savable(model: nn.Module) -> None:
    for name, t in model.state_dict().items():
        if t.device.type == "meta":
            raise ValueError(
                f"{name} is on the meta device (no values); load or initialise the weights "
                "before saving (e.g. model.to_empty(device='cpu') and load a state dict)"
            )


def check_regular_file(path: str | os.PathLike) -> Path:
    """`path` as a Path if it is an existing regular file; FIFOs, devices, folders are refused."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"model file not found: {p}") from None
    if stat.S_ISDIR(mode):
        raise ValueError(f"{p} is a folder, not a secateurs model file")
    if not stat.S_ISREG(mode):
        raise ValueError(f"{p} is not a regular file (a FIFO, socket or device?); refused")
    return p


def _open(path: str | os.PathLike):
    from safetensors import safe_open

    p = check_regular_file(path)
    try:
        return safe_open(str(p), framework="pt")
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"{p} is not a readable safetensors file ({e})") from None


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a secateurs model file (ValueError for any other or a tampered file)."""
    with _open(path) as f:
        meta = f.metadata() or {}
    raw = meta.get(HEADER_KEY)
    if raw is None:
        raise ValueError(
            f"{path} is a safetensors file without a secateurs header (a plain state_dict?): "
            "load it with an architecture, e.g. `--arch package.module:factory`"
        )
    digest = meta.get(DIGEST_KEY)
    if digest is None:
        raise ValueError(f"{path} has a secateurs header without its checksum; refused")
    if hashlib.sha256(raw.encode()).hexdigest() != digest:
        raise ValueError(
            f"{path}: the secateurs header does not match its checksum (the file was changed "
            "or corrupted after it was written); refused"
        )
    try:
        header = loads_json(raw)
    except ValueError as e:
        raise ValueError(f"{path} has a corrupt secateurs header: {e}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise ValueError(f"{path} has format {found!r}; this version reads {FORMAT!r}")
    _check_entries(header, path)
    return header


def _check_entries(header: dict[str, Any], path: str | os.PathLike) -> None:
    """Every tensor entry and alias is well formed (types, sizes), before anything is read."""
    tensors, aliases = header.get("tensors"), header.get("aliases", {})
    if not isinstance(tensors, dict) or not isinstance(aliases, dict):
        raise ValueError(f"{path}: the header's tensors/aliases are not mappings")
    for name, e in tensors.items():
        shape = e.get("shape") if isinstance(e, dict) else None
        if not (
            isinstance(shape, list)
            and len(shape) <= _MAX_DIMS
            and all(type(s) is int and s >= 0 for s in shape)
            and isinstance(e.get("parts"), dict)
            and all(type(c) is int for c in e["parts"].values())
        ):
            raise ValueError(f"{path}: malformed header entry for tensor {name!r}")
        arch_dtype(e.get("dtype"))
    for alias, target in aliases.items():
        if target not in tensors or alias in tensors:
            raise ValueError(f"{path}: alias {alias!r} points to {target!r}, not a stored tensor")


def arch_dtype(name: Any) -> torch.dtype:
    from secateurs.io.arch import dtype_from

    return dtype_from(name)


def is_secateurs_file(path: str | os.PathLike) -> bool:
    """True when `path` is a safetensors file carrying a secateurs header (not yet verified)."""
    try:
        with _open(path) as f:
            return HEADER_KEY in (f.metadata() or {})
    except (ValueError, FileNotFoundError):
        return False


def _read_parts(f: Any, path: Any, name: str, entry: dict[str, Any], keys: set[str]) -> dict:
    """The stored parts of one entry, their shapes and dtypes checked before reading them."""
    dtype = arch_dtype(entry["dtype"])
    declared = {}
    for part in entry["parts"]:
        k = f"{name}{_SEP}{part}"
        if k not in keys:
            raise ValueError(f"{path}: tensor {k!r} is missing")
        sl = f.get_slice(k)
        declared[part] = (tuple(sl.get_shape()), _ST_DTYPES.get(sl.get_dtype()))
    check_parts(entry["packing"], declared, tuple(entry["shape"]), dtype)
    parts = {}
    for part, crc in entry["parts"].items():
        k = f"{name}{_SEP}{part}"
        value = f.get_tensor(k)
        if _crc(value) != crc:
            raise ValueError(f"{path}: tensor {k!r} is corrupt (checksum mismatch)")
        parts[part] = value
    return parts


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The unpacked (dense) state dict stored in a secateurs model file."""
    header = read_header(path)
    out: dict[str, torch.Tensor] = {}
    try:
        with _open(path) as f:
            keys = set(f.keys())
            for name, entry in header["tensors"].items():
                parts = _read_parts(f, path, name, entry, keys)
                out[name] = unpack(
                    entry["packing"], parts, entry["shape"], arch_dtype(entry["dtype"])
                )
    except ValueError as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    except Exception as e:  # truncated data surfaces as safetensors / OS errors
        raise ValueError(f"{path} could not be read ({e})") from None
    for alias, name in header.get("aliases", {}).items():
        out[alias] = out[name]
    return out


def _check_skeleton(skeleton: nn.Module, header: dict[str, Any], path: str | os.PathLike) -> None:
    """The architecture (built on the meta device) wants exactly the tensors the file declares."""
    declared = {n: (tuple(e["shape"]), e["dtype"]) for n, e in header["tensors"].items()}
    for alias, target in header.get("aliases", {}).items():
        declared[alias] = declared[target]
    built = {
        n: (tuple(t.shape), str(t.dtype).removeprefix("torch."))
        for n, t in skeleton.state_dict().items()
    }
    missing, unexpected = sorted(set(built) - set(declared)), sorted(set(declared) - set(built))
    wrong = sorted(n for n in set(built) & set(declared) if built[n][0] != declared[n][0])
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path}: the architecture does not match the stored tensors (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, other shapes {wrong[:5]})"
        )


def declared_bytes(header: dict[str, Any]) -> int:
    """Bytes the file's tensors take once unpacked (what loading allocates for the weights)."""
    total = 0
    for e in header["tensors"].values():
        n = 1
        for s in e["shape"]:
            n *= s
        total += n * arch_dtype(e["dtype"]).itemsize
    return total


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_budget(header: dict[str, Any], path: Any, max_bytes: int | None) -> None:
    limit = max_bytes if max_bytes is not None else _available_memory()
    need = declared_bytes(header)
    if limit is not None and 2 * need > limit:  # the tensors read, then the model built
        raise ValueError(
            f"{path} declares {need:,} bytes of weights; loading needs about twice that and "
            f"only {limit:,} bytes are available (max_bytes)"
        )


def load(
    path: str | os.PathLike,
    *,
    arch: Any = None,
    arch_kwargs: dict[str, Any] | None = None,
    trust_arch: bool = False,
    max_bytes: int | None = None,
) -> nn.Module:
    """Rebuild the model saved by `save` (architecture from the header, weights bit for bit).

    Nothing the file names is imported or called: plain ``torch.nn`` trees and Hugging Face
    models are rebuilt from the description alone. A model of the user's own class needs the
    caller's word: `arch` (a callable or ``"module:function"``, called with `arch_kwargs` or
    the recorded ones) or ``trust_arch=True`` (use the factory the file records). The
    architecture is checked on the meta device against the declared tensors, and those against
    the stored bytes and `max_bytes` (default: the memory available), before allocating.
    """
    from secateurs.io import arch as arch_mod

    header = read_header(path)
    desc = header.get("arch")
    if not desc:
        raise ValueError(f"{path} records no architecture; read its weights with load_state_dict")
    try:
        with torch.device("meta"):
            skeleton = arch_mod.rebuild(
                desc, arch=arch, arch_kwargs=arch_kwargs, trust_arch=trust_arch
            )
    except arch_mod.UntrustedArchitecture as e:
        raise arch_mod.UntrustedArchitecture(f"{path}: {e}") from None
    except (TypeError, KeyError, AttributeError, RuntimeError) as e:
        raise ValueError(f"{path}: the recorded architecture cannot be built ({e})") from None
    _check_skeleton(skeleton, header, path)
    del skeleton
    _check_budget(header, path, max_bytes)
    sd = load_state_dict(path)
    model = arch_mod.rebuild(desc, arch=arch, arch_kwargs=arch_kwargs, trust_arch=trust_arch)
    model.load_state_dict(sd, strict=True)
    if isinstance(arch, str):  # a later save records the factory the caller chose
        desc = dict(desc, factory=arch, kwargs=arch_kwargs or desc.get("kwargs") or {})
    model.secateurs_arch = desc  # type: ignore[attr-defined]
    return model


def inspect_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Per stored tensor, from the header and data alone (no architecture, no user code):
    name, shape, dtype, packing, parameter or buffer, parameters, non-zeros, stored bytes.

    Every part is checked (sizes, checksums, indices) as `load_state_dict` does.
    """
    header = read_header(path)
    sd = load_state_dict(path)
    sizes = stored_bytes(path)
    rows = []
    for name, e in header["tensors"].items():
        t = sd[name]
        rows.append(
            {
                "name": name,
                "shape": tuple(e["shape"]),
                "dtype": e["dtype"],
                "packing": e["packing"],
                "param": e.get("param", True),
                "params": t.numel(),
                "nonzeros": int(torch.count_nonzero(t)),
                "bytes": sizes[name],
            }
        )
    return rows


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
                total += n * arch_dtype(_ST_DTYPES.get(sl.get_dtype(), "float32")).itemsize
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
