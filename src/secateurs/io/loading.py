"""Load a model from whatever the user has: the forms the CLI's MODEL argument accepts.

1. a secateurs model file (safetensors with a secateurs header): rebuilt without running
   anything the file names (`secateurs.io.load`; a model of the user's own class needs
   ``arch=`` or ``trust_arch=True``);
2. a state dict, ``.pt``/``.pth``/``.bin`` (read with ``torch.load(weights_only=True)``) or a
   plain ``.safetensors``, plus ``arch="package.module:factory"`` that builds the architecture;
3. a Hugging Face model folder (``config.json`` + weights), loaded offline through
   transformers' own classes with ``trust_remote_code=False``;
4. a whole pickled module (``torch.save(model)``): only with ``trust_pickle=True``, because
   unpickling runs code from the file.

Special files (FIFOs, devices) are refused before they are opened.
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from secateurs.io.bounded import loads_json
from secateurs.io.model_file import check_regular_file, is_secateurs_file, load
from secateurs.io.user_code import run_user_code, torch_load_with_code

_STATE_KEYS = ("state_dict", "model_state_dict", "model", "module")


def build_factory(arch: str, arch_kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """Import ``"package.module:factory"`` and call it with `arch_kwargs`."""
    if not isinstance(arch, str) or arch.count(":") != 1 or not all(arch.split(":")):
        raise ValueError(f"--arch must look like 'package.module:factory', got {arch!r}")
    module_name, attr = arch.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import {module_name!r} named by --arch {arch!r}: {e}") from None
    factory: Any = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise ValueError(f"{module_name!r} has no {attr!r} (from --arch {arch!r})")
    if not callable(factory):
        raise ValueError(f"--arch {arch!r} is not callable")
    model = factory(**dict(arch_kwargs or {}))
    if not isinstance(model, nn.Module):
        raise TypeError(f"--arch {arch!r} returned a {type(model).__name__}, not an nn.Module")
    return model


def _extract_state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _STATE_KEYS:
            inner = obj.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                return dict(inner)
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    raise ValueError(
        f"{path} does not hold a state dict (a mapping of names to tensors, possibly under "
        f"one of {_STATE_KEYS})"
    )


def _load_into(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{path} does not fit the architecture from --arch: missing "
            f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )


def _load_hf(folder: Path) -> nn.Module:
    try:
        import transformers
    except ImportError as e:
        raise ImportError("loading a Hugging Face folder needs `pip install secateurs[hf]`") from e
    config_path = check_regular_file(folder / "config.json")
    try:
        config = loads_json(config_path.read_bytes())
    except ValueError as e:
        raise ValueError(f"{config_path}: {e}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} is not a JSON object")
    names = config.get("architectures") or []
    name = names[0] if isinstance(names, list) and names else None
    cls = transformers.AutoModel
    if name is not None:
        found = getattr(transformers, name, None) if isinstance(name, str) else None
        if not (isinstance(found, type) and issubclass(found, transformers.PreTrainedModel)):
            raise ValueError(
                f"{config_path} names architecture {name!r}, which is not a transformers model "
                "class; custom code from a model folder is never run (trust_remote_code=False)"
            )
        cls = found
    for weights in folder.glob("*.bin"):
        check_regular_file(weights)
    try:
        return cls.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, pickle.UnpicklingError, RuntimeError, KeyError) as e:
        raise ValueError(
            f"{folder} is not a loadable Hugging Face model folder ({_first_line(e)})"
        ) from None


def _torch_load_weights(path: Path, trust_pickle: bool, code: ModuleType | None = None) -> Any:
    check_regular_file(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] != b"PK" and magic[:1] != b"\x80":  # neither torch's zip nor a raw pickle
        raise ValueError(f"{path} is not a readable PyTorch file (unknown format)")
    if _is_torchscript(path):
        if not trust_pickle:
            raise ValueError(
                f"{path} is a TorchScript archive (torch.jit.save): it holds compiled code, so "
                "it is refused; if you trust the file, pass --trust-pickle (trust_pickle=True)"
            )
        return torch.jit.load(str(path), map_location="cpu")
    if code is not None:  # trusted: the user's classes resolve pickle's __main__ lookups
        try:
            return torch_load_with_code(path, code)
        except Exception as e:
            raise ValueError(
                f"{path} could not be unpickled with --code {code.__file__}: "
                f"{type(e).__name__}: {_first_line(e)}"
            ) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e):
            raise ValueError(f"{path} is not a readable PyTorch file ({_first_line(e)})") from None
        found = pickled_global(e)
        if not trust_pickle:
            raise ValueError(
                f"{path} pickles {found or 'Python objects'}, not only tensors (a whole model "
                "saved with torch.save(model)?); unpickling runs code from the file, so it is "
                "refused. If you trust the file, pass --trust-pickle"
                + (
                    f" and --code FILE, the script that defines {found}"
                    if found and found.startswith("__main__.")
                    else ""
                )
            ) from None
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e2:
            if found and found.startswith("__main__.") and isinstance(e2, AttributeError):
                raise ValueError(
                    f"{path} was pickled from a script: {found} is not defined here; pass "
                    "--code FILE naming that script (code= in Python) so its classes load"
                ) from None
            raise ValueError(
                f"{path} could not be unpickled ({type(e2).__name__}: {_first_line(e2)})"
            ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"{path} is not a readable PyTorch file ({_first_line(e)})") from None


def _is_torchscript(path: Path) -> bool:
    """torch.jit.save archives are zip files with a ``code/`` folder and ``constants.pkl``."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def pickled_global(error: BaseException) -> str | None:
    """The ``module.name`` that torch's weights-only unpickler refused, from its message."""
    match = re.search(r"GLOBAL (\S+) was not an allowed global", str(error))
    return match.group(1) if match else None


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def load_model_any(
    spec: str | os.PathLike,
    *,
    arch: str | None = None,
    arch_kwargs: Mapping[str, Any] | None = None,
    trust_pickle: bool = False,
    trust_arch: bool = False,
    code: str | os.PathLike | None = None,
) -> nn.Module:
    """Load a model from a secateurs file, a state dict + `arch`, a Hugging Face folder or
    (with `trust_pickle`) a pickled module. Errors say which form was expected and why.

    `arch` is the caller's ``"package.module:factory"``; `trust_arch` lets a secateurs file
    use the factory it records (see `secateurs.io.load`).

    `code` is the Python file (usually the training script) that defines the classes of a
    pickled model saved from it (``torch.save(model)`` pickles them as ``__main__.MyMLP``);
    it is run as a module (its ``if __name__ == "__main__":`` block is not), so it needs
    `trust_pickle` as well.
    """
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    user_code = None
    if code is not None:
        if not trust_pickle:
            raise ValueError(
                "--code runs the given Python file to unpickle a model; pass --trust-pickle "
                "(trust_pickle=True) as well if you trust both files"
            )
        user_code = run_user_code(code)
    if path.is_dir():
        if (path / "config.json").exists():
            return _load_hf(path)
        raise ValueError(f"{path} is a folder without config.json (not a Hugging Face model)")
    check_regular_file(path)

    if path.suffix == ".safetensors" or _looks_like_safetensors(path):
        if is_secateurs_file(path):
            kwargs = dict(arch_kwargs) if arch_kwargs is not None else None
            return load(path, arch=arch, arch_kwargs=kwargs, trust_arch=trust_arch)
        if arch is None:
            raise ValueError(
                f"{path} is a plain safetensors state dict; pass --arch package.module:factory "
                "naming a function that builds the architecture"
            )
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as e:
            raise ValueError(f"{path} is not a readable safetensors file ({e})") from None
        model = build_factory(arch, arch_kwargs)
        _load_into(model, state, path)
        model.secateurs_arch = {"factory": arch, "kwargs": dict(arch_kwargs or {})}
        return model

    obj = _torch_load_weights(path, trust_pickle, user_code)
    if isinstance(obj, nn.Module):
        return obj
    state = _extract_state(obj, path)
    if arch is None:
        raise ValueError(
            f"{path} is a state dict; pass --arch package.module:factory naming a function "
            "that builds the architecture (e.g. secateurs.zoo.models:mlp)"
        )
    model = build_factory(arch, arch_kwargs)
    _load_into(model, state, path)
    model.secateurs_arch = {"factory": arch, "kwargs": dict(arch_kwargs or {})}
    return model


def _looks_like_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte header length followed by '{'."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return int.from_bytes(head[:8], "little") < path.stat().st_size
