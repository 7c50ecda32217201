"""Local rules: blocks whose internal units can be removed without touching their interface.

A local rule names the units inside one module (feed-forward channels of a Transformer layer,
hidden units of the inner layers of a stacked RNN, attention heads of Hugging Face blocks) and
fixes the module's attributes after surgery. These blocks are leaves for the tracer, so their
internals need no tracing; this is also the fallback when a model cannot be traced at all.
"""

from __future__ import annotations

from torch import nn

from secateurs.prune.structural import hf
from secateurs.prune.structural.groups import Group, Slice, Unit
from secateurs.prune.structural.modules import HeadPrunedAttention

_TORCH_LAYERS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


def is_local_rule_module(module: nn.Module) -> bool:
    """Whether `module` is handled by a local rule (and so is a leaf for tracing)."""
    return (
        isinstance(module, (*_TORCH_LAYERS, nn.MultiheadAttention, HeadPrunedAttention))
        or hf.kind(module) is not None
    )


def _attention_heads(name: str, m: nn.Module) -> list[Group]:
    """Head units of a torch MultiheadAttention (or an already head-pruned one)."""
    if isinstance(m, HeadPrunedAttention):
        hd = m.head_dim

        def unit(h: int) -> Unit:
            rows = tuple(range(h * hd, (h + 1) * hd))
            return Unit(
                [Slice(f"{name}.{p}", "out", rows) for p in ("q_proj", "k_proj", "v_proj")]
                + [Slice(f"{name}.out_proj", "in", rows)]
            )

        units = [unit(h) for h in range(m.num_heads)]
    elif isinstance(m, nn.MultiheadAttention):
        if m.bias_k is not None or m.add_zero_attn or m.num_heads < 2:
            return []
        units = [Unit([Slice(name, "heads", (h,))]) for h in range(m.num_heads)]
    else:
        return []
    return [Group(name=f"{name}.heads", kind="head", units=units, channels_per_unit=m.head_dim)]


def _rnn_inner(name: str, m: nn.RNNBase) -> list[Group]:
    if isinstance(m, nn.LSTM) and m.proj_size:
        return []
    return [
        Group(
            name=f"{name}.layer{layer}",
            kind="hidden",
            units=[Unit([Slice(name, f"hidden:{layer}", (i,))]) for i in range(m.hidden_size)],
            tie=name,
            tie_size=m.num_layers,
        )
        for layer in range(m.num_layers - 1)
    ]


def local_groups(model: nn.Module) -> list[Group]:
    """Groups of every module that has a local rule (outermost match wins)."""
    out: list[Group] = []
    claimed: list[str] = []
    for name, m in model.named_modules():
        if any(name.startswith(c + ".") for c in claimed):
            continue
        if isinstance(m, _TORCH_LAYERS):
            claimed.append(name)
            units = [
                Unit([Slice(f"{name}.linear1", "out", (i,)), Slice(f"{name}.linear2", "in", (i,))])
                for i in range(m.linear1.out_features)
            ]
            out.append(Group(name=f"{name}.linear1", kind="channel", units=units))
            for attn in ("self_attn", "multihead_attn"):
                if hasattr(m, attn):
                    out.extend(_attention_heads(f"{name}.{attn}", getattr(m, attn)))
        elif isinstance(m, nn.MultiheadAttention | HeadPrunedAttention):
            claimed.append(name)
            out.extend(_attention_heads(name, m))
        elif isinstance(m, nn.RNNBase) and m.num_layers > 1:
            out.extend(_rnn_inner(name, m))
        elif hf.kind(m) is not None:
            claimed.append(name)
            out.extend(hf.groups(name, m))
    return out


def fix_attributes(model: nn.Module) -> None:
    """After surgery, update the attributes that local-rule modules derive from shapes."""
    for _, m in model.named_modules():
        if hf.kind(m) is not None:
            hf.fix_attributes(m)
        elif isinstance(m, HeadPrunedAttention):
            m.num_heads = m.q_proj.out_features // m.head_dim
