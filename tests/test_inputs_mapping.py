"""A tokenizer's output is a Mapping, not a dict: every entry point takes it as keyword inputs."""

from __future__ import annotations

from collections import UserDict

import pytest
import torch

from secateurs._inputs import call_model, move_inputs
from secateurs.prune import structured

transformers = pytest.importorskip("transformers")


def test_a_batch_encoding_is_keyword_inputs_for_calls_and_structured_pruning() -> None:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
        intermediate_size=48, max_position_embeddings=16,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config).eval()
    ids = torch.randint(0, 30, (2, 7))
    batch = transformers.BatchEncoding({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    assert not isinstance(batch, dict)
    with torch.no_grad():
        expected = model(**dict(batch)).logits
        torch.testing.assert_close(call_model(model, batch).logits, expected)
    moved = move_inputs(UserDict(batch), torch.device("cpu"))
    assert isinstance(moved, dict) and set(moved) == {"input_ids", "attention_mask"}
    pruned, report = structured(model, batch, ratio=0.5)
    assert report.params_after < report.params_before
    assert pruned(**dict(batch)).logits.shape == (2, 2)
