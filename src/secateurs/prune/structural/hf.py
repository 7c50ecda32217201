"""Local rules for Hugging Face transformer blocks: attention heads and MLP channels.

The blocks are recognised by their structure, not their class name, so that the families that
share a layout are covered: BERT-style (``attention.self.query/key/value`` +
``attention.output.dense``, ``intermediate.dense`` + ``output.dense``), GPT-2-style
(``attn.c_attn`` + ``attn.c_proj`` as transposed ``Conv1D``, ``mlp.c_fc`` + ``mlp.c_proj``)
and LLaMA-style (``self_attn.q/k/v/o_proj`` with grouped-query attention,
``mlp.gate/up/down_proj``). Removing whole heads (whole key/value groups under GQA) and MLP
channels never changes a block's input or output width, so it is valid whatever surrounds it.
The attention code of these families reshapes with ``-1`` heads, so after surgery only the
head-count attributes are updated.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from secateurs.prune.structural.groups import Group, Slice, Unit


def _has(module: nn.Module, *paths: str) -> bool:
    for path in paths:
        try:
            module.get_submodule(path)
        except AttributeError:
            return False
    return True


def _is_conv1d(m: Any) -> bool:
    return type(m).__name__ == "Conv1D" and type(m).__module__.startswith("transformers")


def kind(module: nn.Module) -> str | None:
    """Which Hugging Face block layout `module` has, if any."""
    bert = ("attention.self.query", "attention.self.key", "attention.self.value")
    if _has(module, *bert, "attention.output.dense", "intermediate.dense", "output.dense"):
        return "bert"
    if _has(module, "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj") and _is_conv1d(
        module.get_submodule("attn.c_attn")
    ):
        return "gpt2"
    if _has(module, "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"):
        attn = module.get_submodule("self_attn")
        if isinstance(getattr(attn, "head_dim", None), int) and all(
            isinstance(getattr(attn, p), nn.Linear)
            for p in ("q_proj", "k_proj", "v_proj", "o_proj")
        ):
            return "llama"
    return None


def _heads(
    prefix: str, n_heads: int, head_dim: int, slots: list[tuple[str, str, int, int]]
) -> Group:
    """Units = heads; slots are (module, role, offset, n_rep) position patterns."""
    units = []
    for h in range(n_heads):
        slices = []
        for module, role, offset, rep in slots:
            positions: list[int] = []
            for r in range(rep):
                start = offset + (h * rep + r) * head_dim
                positions.extend(range(start, start + head_dim))
            slices.append(Slice(f"{prefix}{module}", role, tuple(positions)))
        units.append(Unit(slices))
    return Group(name=f"{prefix}heads", kind="head", units=units, channels_per_unit=head_dim)


def _mlp(prefix: str, outs: list[str], ins: list[str], width: int) -> Group:
    units = [
        Unit(
            [Slice(f"{prefix}{m}", "out", (i,)) for m in outs]
            + [Slice(f"{prefix}{m}", "in", (i,)) for m in ins]
        )
        for i in range(width)
    ]
    return Group(name=f"{prefix}{outs[0]}", kind="channel", units=units)


def groups(name: str, module: nn.Module) -> list[Group]:
    """The head and MLP groups of one Hugging Face block."""
    prefix = f"{name}." if name else ""
    layout = kind(module)
    if layout == "bert":
        attn = module.attention.self
        hd = attn.attention_head_size
        n = attn.query.out_features // hd
        slots = [(f"attention.self.{p}", "out", 0, 1) for p in ("query", "key", "value")]
        slots.append(("attention.output.dense", "in", 0, 1))
        return [
            _heads(prefix, n, hd, slots),
            _mlp(
                prefix,
                ["intermediate.dense"],
                ["output.dense"],
                module.intermediate.dense.out_features,
            ),
        ]
    if layout == "gpt2":
        attn = module.attn
        hd = attn.head_dim
        inner = attn.c_attn.nf // 3
        n = inner // hd
        out = []
        if not getattr(attn, "is_cross_attention", False):
            slots = [("attn.c_attn", "out", k * inner, 1) for k in range(3)]
            slots.append(("attn.c_proj", "in", 0, 1))
            out.append(_heads(prefix, n, hd, slots))
        out.append(_mlp(prefix, ["mlp.c_fc"], ["mlp.c_proj"], module.mlp.c_fc.nf))
        return out
    if layout == "llama":
        attn = module.self_attn
        hd = attn.head_dim
        n_kv = attn.k_proj.out_features // hd
        rep = attn.q_proj.out_features // (n_kv * hd)
        slots = [
            ("self_attn.q_proj", "out", 0, rep),
            ("self_attn.k_proj", "out", 0, 1),
            ("self_attn.v_proj", "out", 0, 1),
            ("self_attn.o_proj", "in", 0, rep),
        ]
        group = _heads(prefix, n_kv, hd, slots)
        group.kind = "kv-head group" if rep > 1 else "head"
        out = [group]
        mlp = module.get_submodule("mlp") if _has(module, "mlp") else None
        if mlp is not None and _has(mlp, "gate_proj", "up_proj", "down_proj"):
            out.append(
                _mlp(
                    prefix,
                    ["mlp.gate_proj", "mlp.up_proj"],
                    ["mlp.down_proj"],
                    mlp.up_proj.out_features,
                )
            )
        return out
    return []


def fix_attributes(module: nn.Module) -> None:
    """Update head-count attributes from the new shapes after surgery."""
    layout = kind(module)
    if layout == "bert":
        attn = module.attention.self
        attn.all_head_size = attn.query.out_features
        attn.num_attention_heads = attn.all_head_size // attn.attention_head_size
    elif layout == "gpt2":
        attn = module.attn
        inner = attn.c_attn.nf // 3
        attn.split_size = inner
        attn.num_heads = inner // attn.head_dim
        if hasattr(module.mlp, "c_fc") and hasattr(module.mlp, "intermediate_size"):
            module.mlp.intermediate_size = module.mlp.c_fc.nf
    elif layout == "llama":
        attn = module.self_attn
        for attr, proj in (("num_heads", "q_proj"), ("num_key_value_heads", "k_proj")):
            if isinstance(getattr(attn, attr, None), int):
                setattr(attn, attr, getattr(attn, proj).out_features // attn.head_dim)
        mlp = getattr(module, "mlp", None)
        if mlp is not None and isinstance(getattr(mlp, "intermediate_size", None), int):
            mlp.intermediate_size = mlp.up_proj.out_features
