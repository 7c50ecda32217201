"""Multiply-accumulate counts from PyTorch's own FLOP counter."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from secateurs._inputs import call_model


def _cpu_sdpa(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
    """FLOPs of CPU attention: the counter knows the CUDA kernels only (same formula)."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _mkldnn_rnn_layer(input_shape: Any, w_ih: Any, w_hh: Any, *args: Any, **kwargs: Any) -> int:
    """FLOPs of one fused CPU RNN layer (oneDNN LSTM): both matmuls for every time step."""
    tokens = math.prod(input_shape[:-1])
    return 2 * tokens * (math.prod(w_ih) + math.prod(w_hh))


_EXTRA = {
    op: formula
    for op, formula in (
        (getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None), _cpu_sdpa),
        (getattr(torch.ops.aten, "mkldnn_rnn_layer", None), _mkldnn_rnn_layer),
    )
    if op is not None
}


def count_macs(model: nn.Module, example_inputs: Any) -> int:
    """MACs of one forward pass on `example_inputs` (a tensor, a tuple or a dict of kwargs).

    Counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls, convolutions, attention);
    one MAC is two FLOPs. Dense counts: zeros left by unstructured pruning still count.
    ``nn.TransformerEncoder``'s fused inference path is switched off while counting (its one
    fused kernel is invisible to the counter, which would report almost nothing), and CPU
    ``scaled_dot_product_attention`` is counted with the formula of the GPU kernels, the
    fused oneDNN LSTM layer of CPU builds as its input and recurrent matmuls.
    """
    was_training = model.training
    fastpath = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with (
            torch.no_grad(),
            FlopCounterMode(display=False, custom_mapping=_EXTRA) as counter,
        ):
            call_model(model, example_inputs)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        model.train(was_training)
    return int(counter.get_total_flops()) // 2
