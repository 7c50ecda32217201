"""Files that name code: no entry point of the API or the CLI may run it.

Every payload of issue 9 (a factory such as ``torch:os.popen``, ``sympy:sympify``,
``torch.fx.graph_module:_forward_from_src``, ``torch:load`` with ``weights_only: false``,
``numpy:load`` with ``allow_pickle: true``, a module beside the file in the current folder, a
Hugging Face class or remote code) leaves a marker file behind if it ever runs.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import probe
import pytest
import torch
from typer.testing import CliRunner

from secateurs import io
from secateurs.cli import app


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """(marker, [(payload, file)]), with the folder importable and current, the worst case."""
    marker = tmp_path / "PWNED"
    files = list(probe.hostile_files(tmp_path, marker))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker, files
    sys.modules.pop("evil_beside", None)


def test_the_api_runs_nothing_a_file_names(tmp_path):
    result = probe.run_hostile(tmp_path)
    assert result["tried"] >= 100
    assert result["findings"] == []
    assert result["handled"] == result["tried"]
    assert not (tmp_path / "PWNED").exists()


def test_the_refusal_names_the_factory_and_both_ways_forward(hostile):
    marker, files = hostile
    path = dict(files)["torch:os.popen"]
    with pytest.raises(io.arch.UntrustedArchitecture) as e:
        io.load(path)
    assert "'torch:os.popen'" in str(e.value)
    assert "arch=" in str(e.value) and "trust_arch=True" in str(e.value)
    assert "--arch" in str(e.value) and "--trust-arch" in str(e.value)
    # Even a trusted file may not name the standard library, even through another module.
    with pytest.raises(ValueError, match="standard library"):
        io.load(path, trust_arch=True)
    assert not marker.exists()


def _recipe(tmp_path: Path) -> Path:
    from secateurs.search.recipe import Recipe, save_recipe

    recipe = Recipe.model_validate({"prune": {"method": "unstructured", "sparsity": 0.5}})
    return save_recipe(recipe, tmp_path / "recipe.yaml")


def test_every_cli_entry_point_runs_nothing(hostile, tmp_path):
    marker, files = hostile
    recipe = _recipe(tmp_path)
    runner = CliRunner()
    for name, path in files:
        out = tmp_path / "out.safetensors"
        for args in (
            ["inspect", path],
            ["inspect", path, "--json"],
            ["prune", "unstructured", path, "--sparsity", "0.5", "-o", out],
            ["prune", "nm", path, "--pattern", "2:4", "-o", out],
            ["prune", "recipe", path, recipe, "-o", out],
            ["prune", "structured", path, "--ratio", "0.5", "--input-shape", "2,8", "-o", out],
        ):
            r = runner.invoke(app, [str(a) for a in args])
            assert not marker.exists(), (name, args)
            if args[0] == "inspect":  # reads the tensors only: fine, nothing is built
                assert r.exit_code == 0, (name, r.output)
            else:
                assert r.exit_code == 2, (name, args, r.output)
                assert "Usage:" not in r.output, (args, r.output)  # refused input, not a typo
                assert "Traceback" not in r.output and not out.exists()


def test_a_real_process_in_the_files_folder_runs_nothing(hostile, tmp_path):
    """`python -m secateurs` puts the current folder on sys.path; the module beside the model
    file is still never imported."""
    marker, files = hostile
    path = dict(files)["module beside the file"]
    env = dict(os.environ, PYTHONPATH=str(Path(io.__file__).parents[2]))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "secateurs",
            "prune",
            "unstructured",
            path.name,
            "-s",
            "0.5",
            "-o",
            "o.st",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not marker.exists(), r.stderr
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "evil_beside:build" in r.stderr and "--trust-arch" in r.stderr


def _hf_folder(tmp_path: Path, name: str, config: dict, weights: bytes | None = None) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    if weights is not None:
        (folder / "pytorch_model.bin").write_bytes(weights)
    return folder


def test_hugging_face_folders_run_nothing(hostile, tmp_path):
    marker, _ = hostile
    bert = {
        "model_type": "bert",
        "vocab_size": 30,
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 8,
    }
    bomb = probe._pickle_bomb(marker)
    torch_bomb = tmp_path / "torch_bomb.bin"
    with open(torch_bomb, "wb") as f:  # a torch zip file whose pickle calls Path.touch
        torch.save({"w": torch.zeros(1)}, f)
    cases = {
        "class os.system": dict(bert, architectures=["os.system"]),
        "class beside the file": dict(bert, architectures=["evil_beside.Layer"]),
        "not a model class": dict(bert, architectures=["BertTokenizer"]),
        "remote code": dict(
            bert, architectures=["EvilModel"], auto_map={"AutoModel": "evil_beside.Layer"}
        ),
        "deep JSON": {"x": json.loads("[" * 60 + "]" * 60), "y": None},
    }
    folders = [_hf_folder(tmp_path, k.replace(" ", "_"), v) for k, v in cases.items()]
    folders.append(_hf_folder(tmp_path, "pickled_bin", dict(bert), pickle.dumps(bomb)))
    folders.append(_hf_folder(tmp_path, "raw_bomb_bin", dict(bert), bomb))
    for folder in folders:
        with pytest.raises((ValueError, OSError)):
            io.load_model_any(folder)
        r = CliRunner().invoke(app, ["inspect", str(folder)])
        assert r.exit_code == 2, (folder.name, r.output)
        assert not marker.exists(), folder.name


def test_deep_json_in_a_config_is_refused(tmp_path):
    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "config.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match="nested"):
        io.load_model_any(folder)
