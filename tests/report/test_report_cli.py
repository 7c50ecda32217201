"""`secateurs report RESULTS -o report.html`."""

import json

from typer.testing import CliRunner

from secateurs.cli import app


def test_report_command_writes_html_and_data(results_doc, tmp_path):
    src = tmp_path / "results.json"
    src.write_text(json.dumps(results_doc))
    out = tmp_path / "out" / "report.html"
    r = CliRunner().invoke(app, ["report", str(src), "-o", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert out.is_file() and (tmp_path / "out" / "report.summary.csv").is_file()
    assert r.output.strip() == f"report: {out}"


def test_report_command_bad_input_exit_2_and_writes_nothing(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["report", str(tmp_path / "none.json"), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 2 and "does not exist" in r.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"runs": [{"model": "m"}]}))
    r = runner.invoke(app, ["report", str(bad), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 2 and "lacks the field" in r.output
    r = runner.invoke(app, ["report", str(bad), "-o", str(tmp_path / "r.pdf")])
    assert r.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]
