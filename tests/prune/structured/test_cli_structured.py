"""`secateurs prune structured MODEL`: a smaller model file that loads back."""

from __future__ import annotations

import torch
from torch import nn
from typer.testing import CliRunner

import secateurs.io as sio
from secateurs.cli import app
from secateurs.zoo.models import MLP


def test_structured_prune_writes_a_smaller_model(tmp_path) -> None:
    torch.manual_seed(0)
    src = tmp_path / "mlp.safetensors"
    sio.save(MLP(), src)
    out = tmp_path / "small.safetensors"
    args = ["prune", "structured", str(src), "-o", str(out), "--ratio", "0.5", "--trust-arch"]
    r = CliRunner().invoke(app, [*args, "--input-shape", "2,1,8,8", "--importance", "l1"])
    assert r.exit_code == 0, r.output
    assert "net.1" in r.output and "MACs" in r.output
    small = sio.load(out, trust_arch=True)  # MLP is a class of ours, not plain torch.nn
    widths = [m.out_features for m in small.modules() if isinstance(m, nn.Linear)]
    assert widths == [150, 50, 10]
    assert small(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_structured_prune_bad_ratio_writes_nothing(tmp_path) -> None:
    src = tmp_path / "mlp.safetensors"
    sio.save(MLP(), src)
    out = tmp_path / "small.safetensors"
    for ratio in ("1.0", "-0.5"):
        r = CliRunner().invoke(
            app,
            [
                "prune",
                "structured",
                str(src),
                "-o",
                str(out),
                "--ratio",
                ratio,
                "--input-shape",
                "1,1,8,8",
                "--trust-arch",
            ],
        )
        assert r.exit_code == 2, r.output
        assert "ratio" in r.output
        assert not out.exists()
