"""`secateurs inspect MODEL`: per-tensor shape, parameters, non-zeros, sparsity and bytes."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from secateurs.cli.app import app
from secateurs.cli.common import QuietOption, user_errors
from secateurs.cli.options import (
    MODEL_HELP,
    ArchOption,
    CodeOption,
    TrustPickleOption,
    load_cli_model,
)


@app.command("inspect")
def inspect_cmd(
    model: Path = typer.Argument(..., help=MODEL_HELP),
    arch: str | None = ArchOption,
    trust_pickle: bool = TrustPickleOption,
    code: Path | None = CodeOption,
    as_json: bool = typer.Option(False, "--json", help="Print the table as JSON."),
    quiet: bool = QuietOption,
) -> None:
    """Show every parameter tensor: shape, parameters, non-zeros, sparsity and bytes.

    For a secateurs file, bytes are what each tensor occupies in the file (packed); for
    other forms, its dense size in memory. With --quiet only the totals.
    """
    from secateurs import io
    from secateurs.prune import sparsity_report
    from secateurs.prune.summary import LayerReport, PruneReport

    with user_errors():
        net = load_cli_model(model, arch, trust_pickle, code)
        report = sparsity_report(net)
        if model.is_file() and io.is_secateurs_file(model):
            stored = io.stored_bytes(model)
            report = PruneReport(
                [
                    LayerReport(
                        x.name, x.shape, x.params, x.nonzeros, None, stored.get(x.name, x.nbytes)
                    )
                    for x in report.layers
                ],
                None,
                "inspect",
            )
    if as_json:
        out = report.as_dict()
        if model.is_file():
            out["file_bytes"] = model.stat().st_size
        typer.echo(json.dumps(out, indent=2))
        return
    if not quiet:
        typer.echo(report.to_table(title=str(model)))
    typer.echo(f"compression: {report.compression:.2f}x fewer non-zeros than parameters")
    if model.is_file():
        typer.echo(f"file: {model.stat().st_size:,} bytes")
