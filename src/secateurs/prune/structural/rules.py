"""Own rules: units that an exported graph cannot show.

``nn.MultiheadAttention`` packs q, k and v into one parameter and ties the number of heads to
its width, so its heads are units of their own (the module becomes a `HeadPrunedAttention`);
the hidden units of the inner layers of a stacked RNN live inside one fused operation. These
are the only hand-written rules; everything else comes from the graph.
"""

from __future__ import annotations

from torch import nn

from secateurs.prune.structural.groups import Group, Slice, Unit
from secateurs.prune.structural.modules import HeadPrunedAttention


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
    """Groups of every module that has its own rule."""
    out: list[Group] = []
    for name, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention | HeadPrunedAttention):
            out.extend(_attention_heads(name, m))
        elif isinstance(m, nn.RNNBase) and m.num_layers > 1:
            out.extend(_rnn_inner(name, m))
    return out
