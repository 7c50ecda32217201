"""The Typer application that every `secateurs` command registers itself on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="secateurs",
    help="Gradient clipping and pruning for PyTorch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
