"""The demo pipeline on a tiny budget: every stage runs and every file is written."""

import json

import pytest

from secateurs.experiments.demo import DemoConfig, run_demo
from secateurs.report import validate

TINY = DemoConfig(
    steps=30,
    warmup_steps=5,
    scan_sparsities=(0.5, 0.9),
    candidates=(0.5, 0.95),
    folds=2,
    cv_steps=10,
    cv_finetune_steps=2,
    finetune_steps=5,
    latency_runs=2,
)


@pytest.mark.slow
def test_demo_tiny_budget_writes_everything(tmp_path):
    lines = []
    result = run_demo(tmp_path, TINY, echo=lines.append, progress=False)
    assert [line.split("]")[0] for line in lines] == [f"[{i}/7" for i in range(1, 8)]
    res = validate(json.loads((tmp_path / "results.json").read_text()))
    assert [r["variant"] for r in res["runs"]] == ["dense", "sparse", "structured"]
    dense, sparse, small = res["runs"]
    cfg = res["config"]
    # the choice follows the rule: largest candidate within tolerance of the dense folds
    cv = next(c for c in res["curves"] if c["kind"] == "sparsity")
    ok = [x for x, y in zip(cv["x"][1:], cv["y"][1:], strict=True) if y >= cv["y"][0] - 0.01]
    assert cfg["chosen_sparsity"] == (max(ok) if ok else min(TINY.candidates))
    assert cv["reference"] == pytest.approx(cv["y"][0] - 0.01)
    assert sparse["nonzeros"] < dense["nonzeros"] and sparse["params"] == dense["params"]
    assert small["params"] < dense["params"] and small["macs"] < dense["macs"]
    assert sparse["file_bytes"] < dense["file_bytes"]  # packed sparse tensors
    assert all(v is True for k, v in cfg["checks"].items() if "reloads" in k)
    assert cfg["checks"]["onnx max |diff| vs torch"] < 1e-4
    # sensitivity curves: one per prunable layer, starting at the dense accuracy
    sens = [c for c in res["curves"] if c["kind"] == "sensitivity"]
    assert len(sens) >= 5 and all(c["x"][0] == 0.0 for c in sens)
    trace = res["traces"][0]
    assert len(trace["grad_norm"]) == TINY.steps and trace["threshold"] == cfg["clip_threshold"]
    for name in ("dense model", "sparse model", "structured model", "onnx", "report"):
        assert result.files[name].is_file() and result.files[name].parent == tmp_path
    assert set(cfg["seconds"]) >= {"train", "scan", "crossval", "report", "total"}
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 5  # CV curve, sensitivity, Pareto, layers, gradient norms
    assert len(list((tmp_path / "figures").glob("*.png"))) == 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"folds": 1}, "folds"),
        ({"candidates": (0.5, 1.0)}, "candidates"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"structured_ratio": 0.0}, "structured_ratio"),
        ({"finetune_steps": -1}, "finetune_steps"),
    ],
)
def test_demo_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DemoConfig(**kwargs)
