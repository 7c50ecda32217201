"""Corrupted files: a clear error within seconds and bounded memory, or the same weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import probe
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from secateurs import io


def test_320_corrupted_files_give_clear_errors_fast_and_small(tmp_path):
    """In a fresh process, so that its peak memory measures the fuzz alone."""
    env = dict(os.environ, PYTHONPATH=str(Path(io.__file__).parents[2]))
    r = subprocess.run(
        [sys.executable, probe.__file__, "--fuzz", "320", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    fuzz, hostile = figures["fuzz"], figures["hostile"]
    assert fuzz["tried"] >= 300
    assert fuzz["findings"] == [] and fuzz["handled"] == fuzz["tried"]
    assert fuzz["slowest_s"] < 5.0
    assert fuzz["peak_rss_growth_mb"] < 200  # the files declare up to 10^12-element tensors
    assert hostile["handled"] == hostile["tried"]
    assert r.returncode == 0


@pytest.fixture
def good(tmp_path):
    return probe.good_files(tmp_path)


@pytest.mark.parametrize(
    ("what", "edit"),
    [
        ("attrs", lambda h: h["arch"]["modules"]["1"].update(attrs={"inplace": True})),
        ("aliases", lambda h: h["aliases"].update({"4.weight": "0.weight"})),
        ("modules", lambda h: h["arch"]["modules"]["0"]["args"].update(bias=False)),
        ("metadata", lambda h: h.__setitem__("metadata", {"accuracy": 0.99})),
    ],
)
def test_a_tampered_header_is_a_clear_error(good, tmp_path, what, edit):
    """The header's checksum covers attrs, aliases, modules: an edit without recomputing it
    (a careless edit, or corruption that keeps the JSON valid) is refused."""
    tensors, header = probe.read(good["dense"])
    with safe_open(str(good["dense"]), "pt") as f:
        digest = f.metadata()["secateurs.sha256"]
    edit(header)
    out = tmp_path / "tampered.safetensors"
    save_file(
        tensors, str(out), metadata={"secateurs": json.dumps(header), "secateurs.sha256": digest}
    )
    for read in (io.load, io.read_header, io.load_state_dict):
        with pytest.raises(ValueError, match="checksum"):
            read(out)


def test_an_inflated_but_consistent_layer_is_refused_before_allocating(tmp_path):
    """Architecture, declared shape and CSR parts agree on a 3*10^6 x 8 layer whose file is
    tiny (all zeros): the size check refuses it before anything is allocated."""
    model = torch.nn.Sequential(torch.nn.Linear(8, 32, bias=False))
    with torch.no_grad():
        model[0].weight.zero_()
    good = io.save(model, tmp_path / "zeros.safetensors", packing="csr")
    tensors, header = probe.read(good)
    rows = 3_000_000
    header["arch"]["modules"]["0"]["args"]["out_features"] = rows
    header["tensors"]["0.weight"]["shape"][0] = rows
    tensors["0.weight::crow"] = torch.zeros(rows + 1, dtype=torch.int16)
    path = probe.write(tmp_path / "big.safetensors", tensors, header)
    assert path.stat().st_size < 7 * 1024 * 1024  # 96 MB of weights declared
    with pytest.raises(ValueError, match="declares 96,000,000 bytes"):
        io.load(path, max_bytes=100_000_000)
    assert io.load(path, max_bytes=10**9)[0].weight.shape == (rows, 8)  # it is a real model


def test_special_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    for read in (io.load, io.read_header, io.load_model_any):
        with pytest.raises(ValueError, match="regular file"):
            read(fifo)
    with pytest.raises(ValueError, match="regular file"):
        io.load_model_any(Path("/dev/zero"))
    from secateurs.search.config import load_config

    with pytest.raises(ValueError, match="regular file"):
        load_config(fifo)


def test_meta_tensors_and_none_are_clear_errors(tmp_path):
    from secateurs import prune

    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match="meta device"):
        io.save(model, tmp_path / "m.safetensors")
    for call in (
        lambda m: prune.unstructured_(m, sparsity=0.5),
        lambda m: prune.nm_(m, 2, 4),
        prune.sparsity_report,
    ):
        with pytest.raises(ValueError, match="meta device"):
            call(model)
        with pytest.raises(TypeError, match=r"nn\.Module"):
            call(None)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        io.save(None, tmp_path / "m.safetensors")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
