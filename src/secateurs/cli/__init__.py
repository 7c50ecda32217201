"""The `secateurs` command line. Each command lives in its own module of this package."""

from __future__ import annotations

import typer

from secateurs import __version__
from secateurs.cli.app import app
from secateurs.cli.common import reflow_help


def _version(value: bool) -> None:
    if value:
        typer.echo(f"secateurs {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Gradient clipping and pruning for PyTorch."""


# Command modules register themselves on `app` when imported.
# (each helper adds its import here)
import secateurs.cli.compare  # noqa: E402
import secateurs.cli.demo  # noqa: E402
import secateurs.cli.export  # noqa: E402
import secateurs.cli.inspect  # noqa: E402
import secateurs.cli.prune  # noqa: E402
import secateurs.cli.report  # noqa: E402
import secateurs.cli.sweep  # noqa: E402, F401

reflow_help(app)  # after every command registered itself


def main() -> None:
    """The `secateurs` command: a missing optional package is one line naming its extra."""
    from secateurs.cli.common import fail, missing_extra

    try:
        app()
    except ImportError as e:
        line = missing_extra(e)
        if line is None:
            raise
        raise SystemExit(fail(line).exit_code) from None


__all__ = ["app", "main"]
