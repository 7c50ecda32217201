"""Save a structurally pruned Hugging Face model in Hugging Face format when its config says so.

`secateurs.prune.structured` updates ``model.config`` wherever one value can describe every
layer (``num_attention_heads``, ``num_key_value_heads``, ``intermediate_size``, ...). Whether
it did is checked the direct way: the model's class is built from its config on the meta device
and every parameter shape must match. When one does not (layers pruned differently, heads
removed from a family whose config derives the head size from the hidden size), save with
`secateurs.io.save`, which records every layer's shape (safetensors + JSON architecture).
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn


def config_mismatches(model: nn.Module, config: Any = None) -> list[str]:
    """Parameters whose shape differs from what `config` (default: the model's) builds."""
    config = copy.deepcopy(config if config is not None else model.config)
    try:
        with torch.device("meta"):
            built = type(model)(config)
    except Exception as exc:  # the config itself is inconsistent (e.g. heads vs hidden size)
        return [f"the config does not build ({type(exc).__name__}: {exc})"]
    want = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return sorted(
        f"{k}: {have[k]} vs {want.get(k)}" for k in have if k in want and have[k] != want[k]
    )


def check_config(model: nn.Module) -> None:
    """ValueError unless ``model.config`` rebuilds exactly the model's parameter shapes."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise ValueError("model has no Hugging Face config; save it with secateurs.io.save")
    wrong = config_mismatches(model)
    if wrong:
        raise ValueError(
            f"the config cannot express the pruned shapes ({'; '.join(wrong[:3])}); a Hugging "
            "Face config holds one width per kind for all layers, so save it with "
            "secateurs.io.save (our format records every layer)"
        )


def save_pretrained(model: nn.Module, directory: str | os.PathLike, **kwargs: Any) -> Path:
    """``model.save_pretrained``, refused unless the config rebuilds the pruned shapes.

    Raises ValueError (nothing written) when the config cannot express the pruning.
    """
    check_config(model)
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then move each file in: no half-written model directory.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        model.save_pretrained(tmp, **kwargs)
        target.mkdir(exist_ok=True)
        for item in sorted(Path(tmp).rglob("*")):
            if item.is_file():
                dest = target / item.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item, dest)
    return target
