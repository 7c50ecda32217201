"""`secateurs compare`: gradient clipping vs pruning vs both on the demo models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from secateurs.cli.app import app
from secateurs.cli.common import EXIT_FAILED, QuietOption, fail, user_errors


def split_names(values: list[str] | None) -> list[str] | None:
    """`--models a,b --models c` -> [a, b, c]; None or ["all"] -> None (everything)."""
    if not values:
        return None
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return None if names == ["all"] else names


@app.command("compare")
def compare(
    models: list[str] | None = typer.Option(
        None,
        "--models",
        "-m",
        help="Models to compare, comma-separated or repeated: mlp, cnn, vit, lstm, charlm, "
        "wgan, dcgan (default: all).",
    ),
    seeds: int = typer.Option(3, "--seeds", "-s", min=1, help="Seeds per model (mean ± std)."),
    out: Path = typer.Option(
        Path("secateurs-compare"), "--out", "-o", help="Output folder (created if missing)."
    ),
    variants: list[str] | None = typer.Option(
        None,
        "--variants",
        help="Variants (default: all): baseline, clip-value, clip-norm, clip-agc, "
        "prune-unstructured, prune-structured, clip-norm+prune.",
    ),
    steps: int | None = typer.Option(
        None, "--steps", min=1, help="Training steps for every model (default: each task's own)."
    ),
    finetune_steps: int | None = typer.Option(
        None,
        "--finetune-steps",
        min=1,
        help="Fine-tuning steps after pruning (default: each task's).",
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads for torch. Default: 1 or torch's count, whichever trains the "
        "chosen models faster here (timed at the start).",
    ),
    latency_runs: int = typer.Option(20, "--latency-runs", min=1, help="Timed runs per latency."),
    quiet: bool = QuietOption,
) -> None:
    """Compare gradient clipping, pruning and both on the demo models; write an HTML report.

    Every model trains as a baseline, with gradient clipping (value, norm, adaptive), pruned
    (unstructured, structured) and clipped + pruned; metric, convergence, stability, size,
    MACs and latency are measured over seeds. --out receives results.json, runs.csv,
    report.html (with CSV/JSON beside it) and compare.log.
    """

    from secateurs.experiments.compare import CompareConfig, run_compare, write_outputs
    from secateurs.experiments.console import log_to, summary_table
    from secateurs.io.atomic import write_text_atomic
    from secateurs.report import dump_json

    with user_errors():
        kwargs = {}
        names = split_names(models)
        if names is not None:
            kwargs["models"] = tuple(names)
        chosen = split_names(variants)
        if chosen is not None:
            kwargs["variants"] = tuple(chosen)
        cfg = CompareConfig(
            seeds=seeds,
            steps=steps,
            finetune_steps=finetune_steps,
            latency_runs=latency_runs,
            **kwargs,
        )
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {str(out)!r} exists and is not a folder")
    from secateurs.measure.threads import set_threads, threads_for_tasks

    threads_note = set_threads(threads, lambda: threads_for_tasks(list(cfg.models)))
    if not quiet:
        typer.echo(threads_note)
    with log_to(out / "compare.log", "secateurs.compare") as log:
        log.info("config: %s", cfg)
        log.info("threads: %s", threads_note)
        try:
            results = run_compare(
                cfg,
                progress=not quiet,
                on_partial=lambda r: write_text_atomic(out / "results.json", dump_json(r)),
            )
            paths = write_outputs(results, out)
        except KeyboardInterrupt:
            log.warning("interrupted; results.json holds the finished models and seeds")
            raise
        except Exception as e:
            log.exception("compare failed")
            raise fail(f"compare failed: {type(e).__name__}: {e}", EXIT_FAILED) from e
        log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    if not quiet:
        _console().print(summary_table(results, title="secateurs compare"))
    for what, p in {**paths, "log": out / "compare.log"}.items():
        typer.echo(f"{what}: {p}")


def _console() -> Any:
    """A rich console; 120 columns when the output is not a terminal (a file, a pipe)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=120)
