"""`secateurs sweep CONFIG` and `secateurs sweep show`: output, files, exit codes."""

from __future__ import annotations

import json

import pytest
import yaml
from search_helpers import tiny
from typer.testing import CliRunner

from secateurs.cli import app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One small sweep run through the CLI; its folder, storage URL and result."""
    d = tmp_path_factory.mktemp("cli")
    cfg = d / "small.yaml"
    cfg.write_text(yaml.safe_dump(tiny()), encoding="utf-8")
    url = f"sqlite:///{d / 'st.db'}"
    result = _run("sweep", str(cfg), "--storage", url, "--out", str(d / "out"), "--quiet")
    return d, url, result


def test_sweep_config_runs_and_writes_results(finished):
    d, _, result = finished
    assert result.exit_code == 0, result.output
    for name in ("trials.csv", "results.json", "best-recipe.yaml", "report.html"):
        assert (d / "out" / name).is_file()
        assert f"{d / 'out' / name}" in result.output
    data = json.loads((d / "out" / "results.json").read_text())
    assert data["study"] == "small" and len(data["trials"]) == 3
    assert "sweep:" not in result.output  # --quiet: no progress bar
    page = (d / "out" / "report.html").read_text()
    assert "study small" in page and all(f"#{t['trial']} " in page for t in data["trials"])
    assert "dense - tolerance" in page and "chosen: trial" in page  # the curve and its marks


def test_sweep_show_prints_the_table_and_lists_studies(finished):
    _, url, _ = finished
    shown = _run("sweep", "show", "small", "--storage", url)
    assert shown.exit_code == 0, shown.output
    assert "accuracy" in shown.output and "0.60 global magnitude" in shown.output
    assert "trials: 3 complete" in shown.output
    # one sign convention with the demo's "Δ vs base": the setting's metric minus the dense one
    trials = json.loads((finished[0] / "out" / "results.json").read_text())["trials"]
    for t in trials:
        delta = f"{t['metric_mean'] - t['dense_mean']:+.4f}"
        assert delta in shown.output and -t["drop"] == pytest.approx(float(delta), abs=1e-4)
    assert "Δ vs dense" in shown.output
    only = _run("sweep", "show", "--storage", url)  # the only study is chosen
    assert only.exit_code == 0 and "study small" in only.output
    missing = _run("sweep", "show", "nope", "--storage", url)
    assert missing.exit_code == 2 and "no study 'nope'" in missing.output


def test_the_recipe_is_what_prune_applies(finished):
    d, _, _ = finished
    from secateurs.search.recipe import load_recipe

    recipe = load_recipe(d / "out" / "best-recipe.yaml")
    best = json.loads((d / "out" / "results.json").read_text())["best"]
    assert recipe.prune.sparsity == best["sparsity"]
    assert recipe.source["trial"] == best["trial"]


def test_sweep_help_shows_both_forms():
    out = _run("sweep", "--help")
    assert out.exit_code == 0 and "show" in out.output and "run" in out.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: mlp\nspace: {prune: [\n", "malformed YAML"),
        (yaml.safe_dump(tiny(epochs=3)), "epochs: unknown key"),
        (
            yaml.safe_dump(tiny(space={"prune": {"sparsity": {"low": 0.9, "high": 0.1}}})),
            "must not exceed high",
        ),
        (yaml.safe_dump(tiny(model="nosuchmodel")), "model: unknown name 'nosuchmodel'"),
    ],
)
def test_bad_configs_exit_2_and_write_nothing(tmp_path, text, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'st.db'}"
    result = _run("sweep", str(cfg), "--storage", url, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "st.db").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://nobody:secret@127.0.0.1:9/none", "cannot open study storage"),
        ("redis://localhost/0", "not supported"),
        ("not a url", "must look like sqlite"),
    ],
)
def test_unusable_storage_exits_2(tmp_path, write_config, url, message):
    cfg = write_config(tiny())
    result = _run("sweep", str(cfg), "--storage", url, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert message in result.output and "secret" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_changed_config_exits_2_and_keeps_the_study(finished, tmp_path, write_config):
    _, url, _ = finished
    cfg = write_config(tiny(study="small", space={"prune": {"sparsity": [0.5]}}))
    result = _run("sweep", str(cfg), "--storage", url, "--out", str(tmp_path / "o2"))
    assert result.exit_code == 2
    assert "different configuration" in result.output
    shown = _run("sweep", "show", "small", "--storage", url)
    assert "trials: 3 complete" in shown.output


def test_show_without_a_storage_file_exits_2(tmp_path):
    result = _run("sweep", "show", "--storage", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.exit_code == 2 and "no study storage" in result.output
    assert not (tmp_path / "none.db").exists()


def test_prune_applies_the_best_recipe(finished, tmp_path):
    import torch

    from secateurs import io
    from secateurs.zoo import MLP

    d, _, _ = finished
    torch.manual_seed(0)
    src = io.save(MLP((64, 32, 10)), tmp_path / "m.safetensors", arch="secateurs.zoo.models:mlp",
                  arch_kwargs={"sizes": [64, 32, 10]})  # fmt: skip
    recipe = d / "out" / "best-recipe.yaml"
    out = tmp_path / "pruned.safetensors"
    arch = ["--arch", "secateurs.zoo.models:mlp"]
    result = _run("prune", "recipe", str(src), str(recipe), "-o", str(out), "-q", *arch)
    assert result.exit_code == 0, result.output
    pruned = io.load(out, arch="secateurs.zoo.models:mlp")
    w = pruned.net[1].weight
    sparsity = json.loads((d / "out" / "results.json").read_text())["best"]["sparsity"]
    assert int((w == 0).sum()) == round(sparsity * w.numel())
    clash = _run("prune", "recipe", str(src), str(recipe), "--sparsity", "0.5", "-o", str(out))
    assert clash.exit_code == 2 and "No such option" in clash.output


def test_a_failing_trial_exits_1_and_keeps_what_was_done(tmp_path, write_config):
    # 2:3 sparsity needs input widths divisible by 3: the N:M trial fails at run time.
    space = {"prune": {"method": ["unstructured", "nm"], "sparsity": [0.5], "nm": ["2:3"]}}
    cfg = write_config(tiny(space=space))
    url = f"sqlite:///{tmp_path / 'f.db'}"
    result = _run("sweep", str(cfg), "--storage", url, "--out", str(tmp_path / "out"), "-q")
    assert result.exit_code == 1
    assert "a trial failed" in result.output and "divisible by 3" in result.output
    rows = (tmp_path / "out" / "trials.csv").read_text().splitlines()
    assert any(",COMPLETE," in r for r in rows) and any(",FAIL," in r for r in rows)


def test_unknown_criterion_is_a_config_error(tmp_path, write_config):
    cfg = write_config(tiny(space={"prune": {"sparsity": [0.5], "criterion": ["nope"]}}))
    result = _run("sweep", str(cfg), "--storage", f"sqlite:///{tmp_path / 'u.db'}")
    assert result.exit_code == 2 and "space.prune.criterion" in result.output
