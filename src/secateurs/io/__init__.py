"""Safe, compact model files: safetensors with packed sparse tensors, ONNX, Hugging Face.

The atomic-write helpers import nothing heavy; the rest (which needs torch) is imported on
first use, so `from secateurs.io import atomic_path` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from secateurs.io.atomic import atomic_path, write_bytes_atomic, write_text_atomic

_LAZY = {
    "build_factory": "secateurs.io.loading",
    "load_model_any": "secateurs.io.loading",
    "effective_state_dict": "secateurs.io.model_file",
    "is_secateurs_file": "secateurs.io.model_file",
    "load": "secateurs.io.model_file",
    "load_state_dict": "secateurs.io.model_file",
    "read_header": "secateurs.io.model_file",
    "save": "secateurs.io.model_file",
    "stored_bytes": "secateurs.io.model_file",
    "SparseLinear": "secateurs.io.sparse_infer",
    "to_sparse_inference": "secateurs.io.sparse_infer",
}

if TYPE_CHECKING:
    from secateurs.io.loading import build_factory, load_model_any
    from secateurs.io.model_file import (
        effective_state_dict,
        is_secateurs_file,
        load,
        load_state_dict,
        read_header,
        save,
        stored_bytes,
    )
    from secateurs.io.sparse_infer import SparseLinear, to_sparse_inference


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'secateurs.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "SparseLinear",
    "atomic_path",
    "build_factory",
    "effective_state_dict",
    "is_secateurs_file",
    "load",
    "load_model_any",
    "load_state_dict",
    "read_header",
    "save",
    "stored_bytes",
    "to_sparse_inference",
    "write_bytes_atomic",
    "write_text_atomic",
]
