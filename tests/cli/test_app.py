import subprocess
import sys

from typer.testing import CliRunner

from secateurs import __version__
from secateurs.cli import app


def test_version_and_help():
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output
    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0 and "clipping" in r.output


def test_every_command_has_help():
    import typer.main

    group = typer.main.get_command(app)
    for name in group.commands:
        r = CliRunner().invoke(app, [name, "--help"])
        assert r.exit_code == 0, (name, r.output)
        assert len(r.output) > 50


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "secateurs", "--version"], capture_output=True, text=True, check=True
    )
    assert __version__ in out.stdout


def test_cli_imports_with_only_the_required_dependencies():
    # click is not a dependency of typer >= 0.29 and optional extras may be absent: the
    # command line must still start (regression: `import click` broke a fresh install).
    code = (
        "import sys\n"
        "for m in ('click', 'optuna', 'matplotlib', 'onnxruntime', 'transformers'):\n"
        "    sys.modules[m] = None\n"
        "from typer.testing import CliRunner\n"
        "from secateurs.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'sweep' in r.output and 'demo' in r.output\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
