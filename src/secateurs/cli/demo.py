"""`secateurs demo [WHAT]`: run a demonstration and print its table.

WHAT is `pipeline` (the default: the whole job on the digits CNN, see
`secateurs.experiments.demo`) or `clipping` (Pascanu et al.'s exploding-gradient experiment).

Each demonstration is one entry of `DEMOS` (name -> function taking the common options), so
that new ones plug in without touching the command; WHAT defaults to `DEFAULT_DEMO`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import typer

from secateurs.cli.app import app
from secateurs.cli.common import QuietOption, user_errors
from secateurs.io.atomic import write_text_atomic


@dataclass(frozen=True)
class DemoOptions:
    """Options every demonstration accepts (None: the demonstration's own default)."""

    seeds: int | None
    steps: int | None
    quiet: bool
    out: Path | None
    workers: int | None
    threads: int | None = None


def clipping_demo(opts: DemoOptions) -> None:
    """Pascanu et al.'s exploding-gradient experiment: tanh RNN, adding problem, plain SGD."""
    from secateurs.experiments import exploding

    cfg = exploding.config(seeds=opts.seeds, steps=opts.steps).validate()
    total = len(cfg.rules) * cfg.seeds
    if not opts.quiet:
        typer.echo(
            f"Adding problem, length {cfg.length} (markers in the last {cfg.span or cfg.length} "
            f"steps), tanh RNN ({cfg.hidden} units), SGD lr {cfg.lr} decaying to 0, "
            f"{cfg.steps} steps of {cfg.batch}; {cfg.seeds} seeds x "
            f"{len(cfg.rules)} rules; success = test MSE < {cfg.success_mse} "
            f"(predicting the mean: {exploding.BASELINE_MSE:.3f})"
        )
    bar = None
    if not opts.quiet:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="runs", unit="run", leave=False)
    try:
        result = exploding.run(
            cfg, workers=opts.workers, on_result=(lambda _: bar.update(1)) if bar else None
        )
    finally:
        if bar is not None:
            bar.close()
    if opts.out is not None:
        _write_results(opts.out, result)
    if opts.quiet and opts.out is not None:
        typer.echo(str(opts.out / "clipping.json"))  # quiet: only the final path
        return
    typer.echo(result.table())  # the result itself, also when quiet without --out
    if opts.out is not None:
        typer.echo(
            f"wrote {opts.out / 'clipping.json'}, {opts.out / 'clipping.csv'} and "
            f"{opts.out / 'report.html'}"
        )


def _write_results(out: Path, result) -> None:
    data = result.as_dict()
    text = json.dumps(_finite(data), indent=2, allow_nan=False)
    buf = io.StringIO()
    runs = [asdict(r) for r in result.runs]
    writer = csv.DictWriter(buf, fieldnames=list(runs[0]) if runs else ["rule"])
    writer.writeheader()
    writer.writerows(runs)
    write_text_atomic(out / "clipping.json", text)
    write_text_atomic(out / "clipping.csv", buf.getvalue())
    from secateurs.report import write_report
    from secateurs.report.documents import clipping_document

    write_report(clipping_document(data), out / "report.html")


def _finite(obj: object) -> object:
    """JSON has no NaN or inf: write null for them (a diverged run's MSE)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def pipeline_demo(opts: DemoOptions) -> None:
    """The main job on the digits CNN: norm-clipped training, sensitivity scan, a
    cross-validated sparsity within 1 point, fine-tuning, structured pruning, export, report."""

    from secateurs.experiments import demo as pipeline
    from secateurs.experiments.console import log_to, summary_table

    if opts.seeds not in (None, 1):
        raise ValueError("the pipeline demo trains one model; --seeds is for `demo clipping`")
    if opts.workers is not None:
        raise ValueError("the pipeline demo runs in one process; --workers is for `demo clipping`")
    cfg = pipeline.DemoConfig(**({"steps": opts.steps} if opts.steps is not None else {}))
    out = opts.out or Path("secateurs-demo")
    from secateurs.measure.threads import set_threads, threads_for_tasks

    chosen = set_threads(opts.threads, lambda: threads_for_tasks(["cnn"]))
    echo = None if opts.quiet else typer.echo
    if echo is not None:
        echo(chosen)
    with log_to(out / "demo.log", "secateurs.demo"):
        result = pipeline.run_demo(out, cfg, echo=echo, progress=not opts.quiet)
    res = result.results
    if not opts.quiet:
        _console().print(summary_table(res, title="secateurs demo (digits CNN, test split)"))
        conf = res["config"]
        typer.echo(
            f"norm-clip threshold {conf['clip_threshold']:.3g}; chosen sparsity "
            f"{conf['chosen_sparsity']:g}; {conf['seconds']['total']:.0f} s in all"
        )
        for note in res["notes"][1:2]:
            typer.echo(note)
    for what, path in {**result.files, "log": out / "demo.log"}.items():
        typer.echo(f"{what}: {path}")


DEMOS: dict[str, Callable[[DemoOptions], None]] = {
    "pipeline": pipeline_demo,
    "clipping": clipping_demo,
}
DEFAULT_DEMO = "pipeline"


@app.command("demo")
def demo(
    what: str | None = typer.Argument(
        None,
        help=f"Which demonstration to run: {', '.join(DEMOS)} (default: {DEFAULT_DEMO}).",
        show_default=False,
    ),
    seeds: int = typer.Option(None, "--seeds", min=1, help="Seeds per setting (default 5)."),
    steps: int = typer.Option(None, "--steps", min=1, help="Optimizer steps per run."),
    workers: int = typer.Option(
        None, "--workers", min=1, help="Processes to run in parallel (default: up to 2)."
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Folder for results, written atomically (pipeline default: secateurs-demo).",
    ),
    threads: int = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads for torch (pipeline). Default: 1 or torch's count, whichever "
        "trains the model faster here (timed at the start).",
    ),
    quiet: bool = QuietOption,
) -> None:
    """Run a demonstration and print its results table.

    pipeline (the default): the main job on the digits CNN in a few minutes: training with
    norm clipping, a sensitivity scan, a sparsity chosen by 3-fold cross-validation within
    1 point of accuracy, fine-tuning, structured pruning, export (secateurs files and
    ONNX) and an HTML report; --steps sets the training steps.

    clipping: the exploding-gradient experiment of Pascanu et al. (2013).
    A tanh RNN learns the adding problem (length 100) with plain SGD, 5 seeds,
    without clipping and with ByValue, ByNorm, AGC, AutoClip and ZClip.
    The table: seeds that succeeded, final test MSE, steps clipped, non-finite steps.
    """
    with user_errors():
        what = what or DEFAULT_DEMO
        if what not in DEMOS:
            raise ValueError(f"unknown demo {what!r}; choose from {', '.join(DEMOS)}")
        if out is not None and out.exists() and not out.is_dir():
            raise ValueError(f"--out must be a folder, but {out} is a file")
        DEMOS[what](
            DemoOptions(
                seeds=seeds, steps=steps, quiet=quiet, out=out, workers=workers, threads=threads
            )
        )


def _console() -> Any:
    """A rich console; 120 columns when the output is not a terminal (a file, a pipe)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=120)
