"""Tiny models of the families structured pruning must handle (random weights, small configs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

Factory = Callable[[], tuple[nn.Module, Any]]


def _ids(n: int = 2, s: int = 8, vocab: int = 16) -> torch.Tensor:
    return torch.randint(0, vocab, (n, s), generator=torch.Generator().manual_seed(0))


def _image(c: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randn(2, c, size, size, generator=torch.Generator().manual_seed(0))


def hf_families() -> dict[str, Factory]:
    import transformers as T

    dec = dict(
        vocab_size=16,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return {
        "llama": lambda: (T.LlamaForCausalLM(T.LlamaConfig(**dec)), {"input_ids": _ids()}),
        "qwen2": lambda: (T.Qwen2ForCausalLM(T.Qwen2Config(**dec)), {"input_ids": _ids()}),
        "mistral": lambda: (
            T.MistralForCausalLM(T.MistralConfig(**dec, sliding_window=None)),
            {"input_ids": _ids()},
        ),
        "phi3": lambda: (
            T.Phi3ForCausalLM(T.Phi3Config(**dec, pad_token_id=0)),
            {"input_ids": _ids()},
        ),
        "gpt2": lambda: (
            T.GPT2LMHeadModel(
                T.GPT2Config(vocab_size=16, n_embd=32, n_layer=2, n_head=4, n_positions=64)
            ),
            {"input_ids": _ids()},
        ),
        "bert": lambda: (
            T.BertModel(
                T.BertConfig(
                    vocab_size=16,
                    hidden_size=32,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    intermediate_size=48,
                    max_position_embeddings=16,
                )
            ),
            {"input_ids": _ids()},
        ),
        "t5": lambda: (
            T.T5ForConditionalGeneration(
                T.T5Config(
                    vocab_size=16,
                    d_model=32,
                    d_kv=8,
                    d_ff=64,
                    num_layers=2,
                    num_heads=4,
                    decoder_start_token_id=0,
                )
            ),
            {"input_ids": _ids(), "decoder_input_ids": _ids(s=5)},
        ),
        "whisper": lambda: (
            T.WhisperForConditionalGeneration(
                T.WhisperConfig(
                    vocab_size=16,
                    d_model=32,
                    encoder_layers=2,
                    decoder_layers=2,
                    encoder_attention_heads=4,
                    decoder_attention_heads=4,
                    encoder_ffn_dim=48,
                    decoder_ffn_dim=48,
                    num_mel_bins=8,
                    max_source_positions=16,
                    max_target_positions=32,
                    decoder_start_token_id=0,
                    pad_token_id=0,
                )
            ),
            {
                "input_features": torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(0)),
                "decoder_input_ids": _ids(s=5),
            },
        ),
        "vit": lambda: (
            T.ViTForImageClassification(
                T.ViTConfig(
                    hidden_size=32,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    intermediate_size=48,
                    image_size=16,
                    patch_size=4,
                    num_labels=5,
                )
            ),
            _image(size=16),
        ),
        "swin": lambda: (
            T.SwinForImageClassification(
                T.SwinConfig(
                    image_size=32,
                    patch_size=4,
                    embed_dim=16,
                    depths=[1, 1],
                    num_heads=[2, 4],
                    window_size=4,
                    num_labels=5,
                )
            ),
            _image(),
        ),
        "convnext": lambda: (
            T.ConvNextForImageClassification(
                T.ConvNextConfig(num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], num_labels=5)
            ),
            _image(),
        ),
        "resnet": lambda: (
            T.ResNetForImageClassification(
                T.ResNetConfig(
                    embedding_size=16,
                    num_stages=2,
                    hidden_sizes=[16, 32],
                    depths=[1, 1],
                    layer_type="bottleneck",
                    num_labels=5,
                )
            ),
            _image(),
        ),
    }
