"""`secateurs demo` (the pipeline, the default) through the command line."""

import json

import pytest
from typer.testing import CliRunner

from secateurs.cli import app
from secateurs.experiments import demo as pipeline

TINY = {
    "warmup_steps": 5,
    "scan_sparsities": (0.5,),
    "candidates": (0.5, 0.9),
    "folds": 2,
    "cv_steps": 5,
    "cv_finetune_steps": 1,
    "finetune_steps": 2,
    "latency_runs": 1,
}


@pytest.fixture
def tiny(monkeypatch):
    full = pipeline.DemoConfig
    monkeypatch.setattr(pipeline, "DemoConfig", lambda **kw: full(**{**TINY, **kw}))


@pytest.mark.slow
def test_demo_default_is_the_pipeline(tmp_path, tiny):
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--steps", "20", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "[1/7] training the digits CNN (20 steps)" in r.output
    assert "chosen sparsity" in r.output and "secateurs demo" in r.output
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["steps"] == 20
    for name in ("report.html", "demo.log", "cnn-sparse.secateurs", "cnn-structured.onnx"):
        assert (out / name).is_file(), name
        assert f"{out / name}" in r.output  # every file is announced
    assert "[7/7]" in (out / "demo.log").read_text()


@pytest.mark.slow
def test_demo_quiet_prints_only_paths(tmp_path, tiny):
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "pipeline", "--steps", "10", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines and all(": " in line and str(out) in line for line in lines)


def test_demo_pipeline_refuses_clipping_options(tmp_path):
    for what in (["pipeline"], []):  # the pipeline is also what a bare `demo` runs
        for args in (["--seeds", "3"], ["--workers", "2"]):
            r = CliRunner().invoke(app, ["demo", *what, *args, "--out", str(tmp_path / "x")])
            assert r.exit_code == 2 and "demo clipping" in r.output
    assert not (tmp_path / "x").exists()
