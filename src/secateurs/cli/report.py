"""`secateurs report RESULTS -o report.html`: the HTML report of a results file."""

from __future__ import annotations

from pathlib import Path

import typer

from secateurs.cli.app import app
from secateurs.cli.common import QuietOption, user_errors


@app.command("report")
def report(
    results: Path = typer.Argument(
        ..., help="A results.json written by `secateurs compare` or `secateurs demo`."
    ),
    output: Path = typer.Option(
        Path("report.html"), "--output", "-o", help="The HTML file to write (.html)."
    ),
    png_dir: Path | None = typer.Option(
        None, "--png-dir", help="Also save every figure as a PNG in this folder."
    ),
    quiet: bool = QuietOption,
) -> None:
    """Write the HTML report of a results file.

    One self-contained HTML file (inline SVG plots and CSS, no scripts, no network) and,
    beside it, every number as CSV and JSON.
    """
    from secateurs.report import load_results, write_report

    with user_errors():
        data = load_results(results)
        if output.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"--output must end in .html, got {str(output)!r}")
    files = write_report(data, output, png_dir=png_dir)
    typer.echo(f"report: {files.html}")
    if not quiet:
        for p in [*files.data.values(), *files.pngs.values()]:
            typer.echo(f"  {p}")
