"""Sweep configs and recipes: bounded parsing, bounded grids and steps, names that stay
inside the output folder, and the code a config runs said up front."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from secateurs.cli import app
from secateurs.io.bounded import loads_json, safe_load_yaml
from secateurs.search.config import load_config, parse_config

BASE = {
    "model": "mlp",
    "model_kwargs": {"sizes": [64, 16, 10]},
    "evaluation": {"kind": "holdout"},
    "budget": {"train_steps": 5},
    "space": {"prune": {"sparsity": [0.5]}},
}

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_billion_laughs_deep_nesting_and_cycles_are_refused():
    # the mapping, its 9 keys and values of 11, 111, ..., 1,111,111,111 nodes
    expanded = 1 + 9 + sum(int("1" * (k + 1)) for k in range(1, 10))
    with pytest.raises(ValueError, match=f"expands to {expanded:,} nodes"):
        safe_load_yaml(LAUGHS)
    with pytest.raises(ValueError, match="levels deep"):
        safe_load_yaml("[" * 200 + "]" * 200)
    with pytest.raises(ValueError, match="levels deep"):
        safe_load_yaml("[" * 5_000 + "]" * 5_000)  # past the recursion limit
    with pytest.raises(ValueError, match="cycle"):
        safe_load_yaml("a: &a [*a]")
    assert safe_load_yaml("a: &x {b: 1}\nc: *x") == {"a": {"b": 1}, "c": {"b": 1}}
    with pytest.raises(ValueError, match="100000 levels"):
        loads_json("[" * 100_000 + "]" * 100_000)
    assert loads_json('{"s": "[[[[[[[[", "n": [[1]]}') == {"s": "[[[[[[[[", "n": [[1]]}


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"space": {"prune": {"sparsity": {"low": 0, "high": 0.9, "step": 1e-9}}}}, "sparsity"),
        ({"space": {"prune": {"sparsity": [0.5] * 5000}}}, "sparsity"),
        ({"budget": {"train_steps": 10**12}}, "budget.train_steps"),
        ({"budget": {"train_steps": 5, "finetune_steps": 10**12}}, "budget.finetune_steps"),
        ({"n_trials": 10**9}, "n_trials"),
        ({"evaluation": {"kind": "kfold", "k": 10**6}}, "evaluation.k"),
        (
            {
                "space": {
                    "prune": {
                        "sparsity": {"low": 0, "high": 0.99, "step": 0.001},
                        "criterion": ["magnitude", "random"] * 60,
                    }
                }
            },
            "space: the grid",
        ),
    ],
)
def test_sizes_and_steps_are_bounded_and_errors_name_the_field(edit, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        parse_config({**BASE, **edit})


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", "a/b", "..", "~", "x\\y", "C:evil"])
def test_study_names_never_leave_the_output_folder(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="plain name"):
        parse_config({**BASE, "study": name})
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(yaml.safe_dump(BASE))
    r = _run("sweep", cfg, "--study", name, "--storage", f"sqlite:///{tmp_path / 's.db'}")
    assert r.exit_code == 2 and "plain name" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.yaml"]


def test_hostile_yaml_files_exit_2(tmp_path):
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text(LAUGHS)
    with pytest.raises(ValueError, match="expands"):
        load_config(laughs)
    r = _run("sweep", laughs, "--storage", f"sqlite:///{tmp_path / 's.db'}")
    assert r.exit_code == 2 and "expands" in r.output
    r = _run("prune", "recipe", tmp_path / "x.pt", laughs, "-o", tmp_path / "o.st")
    assert r.exit_code == 2 and "expands" in r.output


def test_sweep_says_configs_are_code_and_lists_what_it_will_run(tmp_path):
    out = _run("sweep", "--help").output
    assert "program" in out and "_target_" in out and "trust" in out
    assert "program" in _run("sweep", "run", "--help").output
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**BASE, "data": "mypkg.data:load", "trainer": "mypkg.t:fit"}))
    r = _run("sweep", cfg, "--storage", f"sqlite:///{tmp_path}/no/such/dir/s.db")
    assert "runs code: model=secateurs.zoo.models:mlp, data=mypkg.data:load, " in r.output
    assert "trainer=mypkg.t:fit" in r.output
    assert r.output.index("runs code") < r.output.index("error")
