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

import math
from collections import defaultdict
from dataclasses import dataclass, replace

from torch import nn

from secateurs.prune.structural.groups import Group

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
CONFIG_HIDDEN = ("hidden_size", "d_model", "n_embd", "embed_dim")
CONFIG_FFN = (
    "intermediate_size",
    "d_ff",
    "n_inner",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "dim_feedforward",
)


_ABSENT = object()


@dataclass
class Change:
    """How one group changed: heads (query, key/value) or channels."""

    prefix: str  # the module that holds the group's layers
    kind: str
    before: int
    after: int
    kv_before: int = 0
    kv_after: int = 0
    head_dim: int = 0
    owners: tuple[str, ...] = ()  # the modules that hold the group's layers
    stream: bool = False  # channels of the residual stream (they cross several blocks)


def change_of(group: Group, removed: list[int]) -> Change:
    paths = [m.split(".") for m in group.modules]
    common = 0
    while all(len(p) > common and p[common] == paths[0][common] for p in paths):
        common += 1
    name = ".".join(paths[0][:common])
    owners = tuple(sorted({m.rpartition(".")[0] for m in group.modules}))
    n = len(group.units)
    hd = group.channels_per_unit
    if group.parents:
        kv_gone = sum(
            1 for p, children in group.parents if p is not None and set(children) <= set(removed)
        )
        kv = len(group.parents)
        return Change(name, "gqa", n, n - len(removed), kv, kv - kv_gone, hd, owners)
    stream = group.kind == "channel" and len(owners) > 2
    return Change(name, group.kind, n, n - len(removed), head_dim=hd, owners=owners, stream=stream)


def _set_if(module: nn.Module, names: tuple[str, ...], old: int, new: int) -> None:
    for attr in names:
        value = getattr(module, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value == old:
            setattr(module, attr, new)


def fix_modules(model: nn.Module, changes: list[Change]) -> None:
    """Update the count attributes of the modules that hold a pruned group's layers."""
    for ch in changes:
        if ch.before == ch.after and ch.kv_before == ch.kv_after:
            continue
        hd = ch.head_dim
        owners = [model.get_submodule(o) if o else model for o in ch.owners]
        if ch.stream:
            continue  # the stream's width is read from the weights, or from the config
        if ch.kind == "channel":
            for m in owners:
                _set_if(m, CONFIG_FFN, ch.before, ch.after)
            continue
        if ch.kind not in ("head", "gqa"):
            continue
        for m in owners:
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
        cut = len(name) + 1 if name else 0  # names relative to the inner model
        mine = [
            replace(c, prefix=c.prefix[cut:], owners=tuple(o[cut:] for o in c.owners))
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
    before: dict[str, object] = {
        k: getattr(config, k, None) for k in CONFIG_HEADS + CONFIG_KV + CONFIG_FFN + CONFIG_HIDDEN
    }
    notes = _update_config(model, config, changes)
    head_dims = {c.head_dim for c in changes if c.kind in ("head", "gqa") and c.after != c.before}
    heads = getattr(config, "num_attention_heads", None)
    hidden = before.get("hidden_size")
    if (
        not head_dims
        and isinstance(hidden, int)
        and isinstance(heads, int)
        and heads > 0
        and hidden % heads == 0
        and getattr(config, "hidden_size", None) != hidden
    ):
        # The residual stream narrowed but not the heads: they keep their size, which
        # families that derive it from hidden_size / heads must now read from the config.
        head_dims = {hidden // heads}
    if (
        len(head_dims) == 1
        and hasattr(config, "to_dict")
        and getattr(config, "head_dim", None) is None
    ):
        # Families that derive head_dim from hidden_size / heads read an explicit one if set.
        before["head_dim"] = _ABSENT if not hasattr(config, "head_dim") else None
        config.head_dim = head_dims.pop()
    if not hasattr(config, "to_dict"):
        return notes
    from secateurs.io.hf import config_mismatches

    updated = [k for k, v in before.items() if getattr(config, k, None) != v]

    def wrong_count() -> float:
        found = config_mismatches(model)
        return math.inf if any("does not build" in w for w in found) else len(found)

    wrong = wrong_count() if updated else 0
    for k in updated:  # undo the fields the config cannot express
        if not wrong:
            break
        trial = getattr(config, k)
        _restore(config, k, before[k])
        now = wrong_count()
        if now <= wrong:
            wrong = now
        else:
            setattr(config, k, trial)
    for k in updated:
        if k != "head_dim" and getattr(config, k, None) == before[k]:
            notes.append(
                f"config.{k} kept at {before[k]}: the config cannot express the change "
                "(save with secateurs.io.save, which records every layer)"
            )
    return notes


def _restore(config: object, key: str, value: object) -> None:
    if value is _ABSENT:
        delattr(config, key)
    else:
        setattr(config, key, value)


def _update_config(model: nn.Module, config: object, changes: list[Change]) -> list[str]:
    notes = []
    heads: dict[int, set[int]] = defaultdict(set)
    kv: dict[int, set[int]] = defaultdict(set)
    width: dict[int, set[int]] = defaultdict(set)
    hidden: dict[int, set[int]] = defaultdict(set)
    for ch in changes:
        if ch.kind in ("head", "gqa"):
            heads[ch.before].add(ch.after)
            if ch.kind == "gqa":
                kv[ch.kv_before].add(ch.kv_after)
        elif ch.stream:
            hidden[ch.before].add(ch.after)
        elif ch.kind == "channel":
            width[ch.before].add(ch.after)
    fields = ((CONFIG_HEADS, heads), (CONFIG_KV, kv), (CONFIG_FFN, width), (CONFIG_HIDDEN, hidden))
    for names, seen in fields:
        for attr in names:
            value = getattr(config, attr, None)
            if not isinstance(value, int) or isinstance(value, bool) or value not in seen:
                continue
            after = set(seen[value])
            if after == {value}:
                continue
            if len(after) == 1:
                setattr(config, attr, next(iter(after)))
            else:
                notes.append(
                    f"config.{attr} kept at {value}: the layers it describes now differ "
                    f"({sorted(after)}); save with secateurs.io, which records each layer"
                )
    return notes
