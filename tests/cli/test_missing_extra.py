"""A command whose optional package is missing says, in one line, which extra installs it."""

import sys

import pytest

from secateurs.cli import main
from secateurs.cli.common import EXTRAS


@pytest.mark.parametrize(
    ("missing", "argv", "extra"),
    [
        ("optuna", ["sweep", "show"], "search"),
        ("matplotlib", ["report", "results.json", "-o", "r.html"], "report"),
    ],
)
def test_missing_extra_is_one_line_naming_it(missing, argv, extra, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweeps.db").write_bytes(b"")
    (tmp_path / "results.json").write_text(
        '{"runs": [{"model": "m", "variant": "baseline", "seed": 0, "metric": "accuracy", '
        '"value": 0.9}]}'
    )
    users = {"matplotlib": "secateurs.report.plots"}  # our module that imports it at the top
    for name in [
        m for m in sys.modules if m in (missing, users.get(missing)) or m.startswith(missing + ".")
    ]:
        monkeypatch.delitem(sys.modules, name)  # restored after the test
        parent, _, leaf = name.rpartition(".")
        if parent in sys.modules:  # `from package import leaf` reads the attribute first
            monkeypatch.delattr(sys.modules[parent], leaf, raising=False)
    monkeypatch.setitem(sys.modules, missing, None)  # import fails as if not installed
    monkeypatch.setattr(sys, "argv", ["secateurs", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f'error: {missing} is not installed: pip install "secateurs[{extra}]"'


def test_every_extra_named_exists_in_pyproject():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert set(EXTRAS.values()) <= set(extras)
    demo = extras["demo"][0]  # the README's main install covers every command it shows
    assert all(e in demo for e in ("report", "onnx", "search"))
