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
    TrustArchOption,
    TrustPickleOption,
    load_cli_model,
)


@app.command("inspect")
def inspect_cmd(
    model: Path = typer.Argument(..., help=MODEL_HELP),
    arch: str | None = ArchOption,
    trust_pickle: bool = TrustPickleOption,
    trust_arch: bool = TrustArchOption,
    code: Path | None = CodeOption,
    as_json: bool = typer.Option(False, "--json", help="Print the table as JSON."),
    quiet: bool = QuietOption,
) -> None:
    """Show every parameter tensor: shape, parameters, non-zeros, sparsity and bytes.

    A secateurs file is read from its header and data alone (no architecture is built and no
    code runs), and bytes are what each tensor occupies in the file (packed); for other forms
    the model is loaded and bytes are its dense size in memory. With --quiet only the totals.
    """
    from secateurs.prune.summary import LayerReport, PruneReport

    with user_errors():
        if model.is_file() and _is_secateurs_file(model):
            from secateurs.io.model_file import inspect_file

            rows = [r for r in inspect_file(model) if r["param"]]
            report = PruneReport(
                [
                    LayerReport(r["name"], r["shape"], r["params"], r["nonzeros"], None, r["bytes"])
                    for r in rows
                ],
                None,
                "inspect",
            )
        else:
            from secateurs.prune import sparsity_report

            report = sparsity_report(load_cli_model(model, arch, trust_pickle, trust_arch, code))
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


def _is_secateurs_file(path: Path) -> bool:
    from secateurs.io.model_file import is_secateurs_file

    return is_secateurs_file(path)
