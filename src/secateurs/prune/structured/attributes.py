"""After surgery: the integer attributes a module's forward reads, and the model's config.

Attention code reshapes with head counts it keeps as attributes (``num_heads``,
``num_key_value_groups``, ``all_head_size``, ...) and Hugging Face configs record the widths
(``num_attention_heads``, ``num_key_value_heads``, ``intermediate_size``, ...). For each pruned
group we know the old and new counts; every attribute of the modules around the group whose
name says it holds such a count, and whose value is the old count, gets the new one. A config
field changes only when every group it describes was pruned the same way; otherwise it is
left alone (the model is then saved with `secateurs.io`, which records each layer's shape).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass

from torch import nn

from secateurs.prune.structured.groups import Group

HEAD_NAMES = ("num_heads", "num_attention_heads", "n_heads", "n_head", "num_q_heads")
KV_NAMES = ("num_key_value_heads", "num_kv_heads", "n_kv_heads")
REP_NAMES = ("num_key_value_groups", "n_rep")
WIDTH_NAMES = ("all_head_size", "inner_dim", "split_size")
CONFIG_HEADS = (
    "num_attention_heads",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "num_heads",
    "n_head",
)
CONFIG_KV = ("num_key_value_heads",)
CONFIG_FFN = (
    "intermediate_size",
    "d_ff",
    "n_inner",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "dim_feedforward",
)


@dataclass
class Change:
    """How one group changed: heads (query, key/value) or channels."""

    prefix: str  # the module that holds the group's layers
    kind: str
    before: int
    after: int
    kv_before: int = 0
    kv_after: int = 0


def change_of(group: Group, removed: list[int]) -> Change:
    prefix = os.path.commonprefix([m.split(".") for m in group.modules])
    name = ".".join(prefix)
    n = len(group.units)
    if group.parents:
        kv_gone = sum(
            1 for p, children in group.parents if p is not None and set(children) <= set(removed)
        )
        kv = len(group.parents)
        return Change(name, "gqa", n, n - len(removed), kv, kv - kv_gone)
    return Change(name, group.kind, n, n - len(removed))


def _set_if(module: nn.Module, names: tuple[str, ...], old: int, new: int) -> None:
    for attr in names:
        value = getattr(module, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value == old:
            setattr(module, attr, new)


def fix_modules(model: nn.Module, changes: list[Change], head_dims: list[int]) -> None:
    """Update head-count attributes of the modules that hold pruned attention heads."""
    for ch, hd in zip(changes, head_dims, strict=True):
        if ch.before == ch.after and ch.kv_before == ch.kv_after:
            continue
        root = model.get_submodule(ch.prefix) if ch.prefix else model
        if ch.kind == "channel":
            for m in root.modules():
                _set_if(m, CONFIG_FFN, ch.before, ch.after)
            continue
        if ch.kind not in ("head", "gqa"):
            continue
        for m in root.modules():
            _set_if(m, HEAD_NAMES, ch.before, ch.after)
            _set_if(m, WIDTH_NAMES, ch.before * hd, ch.after * hd)
            if ch.kind == "gqa":
                _set_if(m, KV_NAMES, ch.kv_before, ch.kv_after)
                if ch.kv_before and ch.kv_after:
                    _set_if(
                        m, REP_NAMES, ch.before // ch.kv_before, ch.after // max(ch.kv_after, 1)
                    )


def fix_configs(model: nn.Module, changes: list[Change]) -> list[str]:
    """`fix_config` for every outermost Hugging Face model inside `model` (or `model` itself)."""
    try:
        from transformers import PreTrainedModel
    except ImportError:
        return []
    notes: list[str] = []
    outer: list[str] = []
    for name, m in model.named_modules():
        if not isinstance(m, PreTrainedModel) or any(
            name.startswith(o + ".") or o == "" for o in outer
        ):
            continue
        outer.append(name)
        mine = [
            Change(c.prefix[len(name) + 1 :] if name else c.prefix, c.kind, c.before, c.after,
                   c.kv_before, c.kv_after)
            for c in changes
            if not name or c.prefix == name or c.prefix.startswith(name + ".")
        ]
        notes.extend(fix_config(m, mine))
    return notes


def fix_config(model: nn.Module, changes: list[Change]) -> list[str]:
    """Update the model's config where it can describe the result; returns notes.

    A value changes when all groups of its kind agree; for a Hugging Face model the updated
    config must then rebuild the model's exact parameter shapes (built on the meta device),
    else the update is undone field by field (e.g. BERT derives the head size from the hidden
    size, so it cannot express removed heads, but can a narrower MLP).
    """
    config = getattr(model, "config", None)
    if config is None:
        return []
    before = {k: getattr(config, k, None) for k in CONFIG_HEADS + CONFIG_KV + CONFIG_FFN}
    notes = _update_config(model, config, changes)
    if not hasattr(config, "to_dict"):
        return notes
    from secateurs.io.hf import config_mismatches

    updated = [k for k, v in before.items() if getattr(config, k, None) != v]
    wrong = len(config_mismatches(model)) if updated else 0
    for k in updated:  # undo the fields the config cannot express
        if not wrong:
            break
        trial = getattr(config, k)
        setattr(config, k, before[k])
        now = len(config_mismatches(model))
        if now < wrong:
            wrong = now
        else:
            setattr(config, k, trial)
    if wrong:
        for k in updated:
            setattr(config, k, before[k])
    for k in updated:
        if getattr(config, k, None) == before[k]:
            notes.append(
                f"config.{k} kept at {before[k]}: the config cannot express the change "
                "(save with secateurs.io.save, which records every layer)"
            )
    return notes


def _update_config(model: nn.Module, config: object, changes: list[Change]) -> list[str]:
    notes = []
    heads: dict[int, set[int]] = defaultdict(set)
    kv: dict[int, set[int]] = defaultdict(set)
    width: dict[int, set[int]] = defaultdict(set)
    for ch in changes:
        if ch.kind in ("head", "gqa"):
            heads[ch.before].add(ch.after)
            if ch.kind == "gqa":
                kv[ch.kv_before].add(ch.kv_after)
        elif ch.kind == "channel":
            width[ch.before].add(ch.after)
    def untouched(names: tuple[str, ...], value: int) -> bool:
        # A layer that kept the old count (its heads were frozen) needs the old config value.
        for m in model.modules():
            if any(getattr(m, a, None) == value for a in names):
                return True
            if names is CONFIG_FFN and isinstance(m, nn.Linear) and m.out_features == value:
                return True
        return False

    for names, seen, own in (
        (CONFIG_HEADS, heads, HEAD_NAMES),
        (CONFIG_KV, kv, KV_NAMES),
        (CONFIG_FFN, width, CONFIG_FFN),
    ):
        for attr in names:
            value = getattr(config, attr, None)
            if not isinstance(value, int) or isinstance(value, bool) or value not in seen:
                continue
            after = seen[value]
            if len(after) == 1 and untouched(own, value):
                notes.append(f"config.{attr} kept at {value}: some layers kept that many")
            elif len(after) == 1:
                setattr(config, attr, after.pop())
            else:
                notes.append(
                    f"config.{attr} kept at {value}: the layers it describes now differ "
                    f"({sorted(after)}); save with secateurs.io, which records each layer"
                )
    return notes
