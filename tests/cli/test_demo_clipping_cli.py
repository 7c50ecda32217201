import json

from typer.testing import CliRunner

from secateurs.cli import app

runner = CliRunner()


def test_demo_clipping_tiny_budget_writes_results(tmp_path, monkeypatch):
    from secateurs.experiments import exploding

    small = exploding.config(length=12, span=6, hidden=4, batch=4, test_size=8)
    monkeypatch.setattr(exploding, "Config", lambda: small)
    out = tmp_path / "res"
    result = runner.invoke(
        app,
        ["demo", "clipping", "--seeds", "1", "--steps", "2", "--workers", "1", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "| norm | " in result.output and "seeds succeeded" in result.output
    data = json.loads((out / "clipping.json").read_text())
    assert data["config"]["steps"] == 2 and len(data["runs"]) == len(exploding.RULES)
    assert (out / "clipping.csv").read_text().startswith("rule,seed,test_mse")
    page = (out / "report.html").read_text()  # the HTML report too, one row per rule
    assert "exploding-gradient experiment" in page and "test MSE" in page
    assert all(f">{rule}<" in page for rule in exploding.RULES)


def test_demo_quiet_prints_only_the_path(tmp_path, monkeypatch):
    from secateurs.experiments import exploding

    small = exploding.config(length=12, span=6, hidden=4, batch=4, test_size=8)
    monkeypatch.setattr(exploding, "Config", lambda: small)
    result = runner.invoke(
        app,
        [
            "demo",
            "clipping",
            "--seeds",
            "1",
            "--steps",
            "1",
            "--workers",
            "1",
            "--quiet",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "clipping.json")


def test_demo_quiet_without_out_prints_the_table(monkeypatch):
    from secateurs.experiments import exploding

    small = exploding.config(length=12, span=6, hidden=4, batch=4, test_size=8, rules=("norm",))
    monkeypatch.setattr(exploding, "Config", lambda: small)
    result = runner.invoke(
        app, ["demo", "clipping", "--seeds", "1", "--steps", "1", "--workers", "1", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("| rule | seeds succeeded")


def test_demo_unknown_name_is_bad_input(tmp_path):
    result = runner.invoke(app, ["demo", "pruning-everything", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "unknown demo" in result.output
    assert not (tmp_path / "x").exists()


def test_demo_help():
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0 and "clipping" in result.output
