"""The `secateurs` command line. Each command lives in its own module of this package."""

from __future__ import annotations

import typer

from secateurs import __version__
from secateurs.cli.app import app


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


def main() -> None:
    app()


__all__ = ["app", "main"]
