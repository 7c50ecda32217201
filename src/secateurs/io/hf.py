"""Save a structurally pruned Hugging Face model in Hugging Face format when its config can say so.

A transformers config holds one head count and one MLP width for all layers, and for BERT and
GPT-2 the head size is derived from ``hidden_size / num_attention_heads``. So:

- LLaMA-style models (``head_dim`` in the config) pruned uniformly: heads, key/value heads and
  ``intermediate_size`` all go into the config;
- BERT- and GPT-2-style models: a uniformly pruned MLP width goes into the config
  (``intermediate_size`` / ``n_inner``); removed heads cannot be expressed;
- anything else (non-uniform pruning, removed BERT/GPT-2 heads): use `secateurs.io.save`, which
  records every layer's shape (safetensors + JSON architecture, see `secateurs.io.arch`).
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from secateurs.prune.structural import hf as hf_rules


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if hf_rules.kind(m) is not None]


def _shapes(layout: str, m: nn.Module) -> dict[str, int]:
    if layout == "bert":
        attn = m.attention.self
        return {
            "heads": attn.query.out_features // attn.attention_head_size,
            "head_dim": attn.attention_head_size,
            "mlp": m.intermediate.dense.out_features,
        }
    if layout == "gpt2":
        return {
            "heads": (m.attn.c_attn.nf // 3) // m.attn.head_dim,
            "head_dim": m.attn.head_dim,
            "mlp": m.mlp.c_fc.nf,
        }
    attn = m.self_attn
    shapes = {
        "heads": attn.q_proj.out_features // attn.head_dim,
        "kv_heads": attn.k_proj.out_features // attn.head_dim,
        "head_dim": attn.head_dim,
    }
    if hasattr(m, "mlp") and hasattr(m.mlp, "up_proj"):
        shapes["mlp"] = m.mlp.up_proj.out_features
    return shapes


def pruned_config(model: nn.Module) -> Any:
    """A copy of ``model.config`` describing the pruned shapes; ValueError when it cannot."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise ValueError("model has no Hugging Face config; save it with secateurs.io.save")
    layers = _layers(model)
    if not layers:
        raise ValueError("no known transformer blocks found; save it with secateurs.io.save")
    layouts = {hf_rules.kind(m) for _, m in layers}
    if len(layouts) != 1:
        raise ValueError("mixed block layouts; save it with secateurs.io.save")
    layout = layouts.pop()
    shapes = [_shapes(layout, m) for _, m in layers]
    for key in shapes[0]:
        values = {s[key] for s in shapes}
        if len(values) != 1:
            raise ValueError(
                f"layers were pruned to different {key} counts {sorted(values)}; a Hugging Face "
                "config holds one value for all layers, so save it with secateurs.io.save"
            )
    s = shapes[0]
    new = copy.deepcopy(config)
    if layout == "llama":
        new.num_attention_heads = s["heads"]
        new.num_key_value_heads = s["kv_heads"]
        new.head_dim = s["head_dim"]
        if "mlp" in s:
            new.intermediate_size = s["mlp"]
        return new
    hidden = new.hidden_size if layout == "bert" else new.n_embd
    n_heads = new.num_attention_heads if layout == "bert" else new.n_head
    if s["heads"] != n_heads or s["head_dim"] * n_heads != hidden:
        raise ValueError(
            f"{layout.upper()} configs derive the head size from the hidden size, so removed "
            "heads cannot be expressed; save it with secateurs.io.save (our format)"
        )
    if layout == "bert":
        new.intermediate_size = s["mlp"]
    else:
        new.n_inner = s["mlp"]
    return new


def _config_for(model: nn.Module) -> Any:
    """`pruned_config`, or the model's own config for a family without known blocks; in both
    cases checked by building the class from it on the meta device."""
    try:
        config = pruned_config(model)
    except ValueError:
        if _layers(model) or not hasattr(getattr(model, "config", None), "to_dict"):
            raise
        config = model.config  # no block we know: nothing structural was changed by us
    with torch.device("meta"):
        built = type(model)(copy.deepcopy(config)).state_dict()
    own = model.state_dict()
    wrong = sorted(
        k for k in own if k in built and tuple(built[k].shape) != tuple(own[k].shape)
    ) + sorted(set(own) ^ set(built))
    if wrong:
        raise ValueError(
            f"the model's config does not describe its layers ({wrong[:3]} differ); save it "
            "with secateurs.io.save or export safetensors, which lists the layer sizes"
        )
    return config


def save_pretrained(model: nn.Module, directory: str | os.PathLike, **kwargs: Any) -> Path:
    """``model.save_pretrained`` with the config updated to the pruned shapes.

    Raises ValueError (nothing written) when the config cannot express the pruning.
    """
    config = _config_for(model)
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    original = model.config
    model.config = config
    try:
        # Write beside the target, then move each file in: no half-written model directory.
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
            model.save_pretrained(tmp, **kwargs)
            target.mkdir(exist_ok=True)
            for item in sorted(Path(tmp).rglob("*")):
                if item.is_file():
                    dest = target / item.relative_to(tmp)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(item, dest)
    finally:
        model.config = original
    return target
