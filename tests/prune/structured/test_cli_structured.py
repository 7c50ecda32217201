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


def test_prune_embedding_and_round_to_reach_the_api(tmp_path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(8, 32), nn.LayerNorm(32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(),
        nn.Linear(24, 3),
    )  # fmt: skip
    src = tmp_path / "net.safetensors"
    sio.save(net, src)  # plain torch.nn: loads with no code and no trust flag
    base = ["prune", "structured", str(src), "--ratio", "0.4", "--input-shape", "2,8", "-q"]
    widths, shapes = {}, {}
    for name, extra in {
        "plain": [],
        "stream": ["--prune-embedding"],
        "r8": ["--round-to", "8"],
    }.items():
        out = tmp_path / f"{name}.safetensors"
        r = CliRunner().invoke(app, [*base, "-o", str(out), *extra])
        assert r.exit_code == 0, r.output
        small = sio.load(out)
        widths[name] = [m.out_features for m in small if isinstance(m, nn.Linear)]
        assert small(torch.randn(5, 8)).shape == (5, 3)
        shapes[name] = small[1].normalized_shape
    assert widths["plain"][0] == 32  # normalised by a LayerNorm: kept unless asked
    assert widths["stream"][0] == 20 and shapes["stream"] == (20,)  # 40% of 32 removed
    assert widths["plain"][1] == 15 and widths["r8"][1] == 16  # 14.4 kept; rounded to 8
