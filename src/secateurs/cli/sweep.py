"""`secateurs sweep CONFIG.yaml` runs (or resumes) a search; `secateurs sweep show` reads one."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from typer.core import TyperGroup

from secateurs.cli.app import app
from secateurs.cli.common import EXIT_FAILED, QuietOption, fail, user_errors


def _console() -> Console:
    """A console as wide as the terminal, or 120 columns when printing to a file or pipe."""
    return Console() if sys.stdout.isatty() else Console(width=120)


_STORAGE_HELP = (
    "Study storage: sqlite:///FILE.db (default sqlite:///sweeps.db) or "
    "postgresql://user:password@host:port/db to share a study among machines."
)


class _RunByDefault(TyperGroup):
    """`sweep CONFIG.yaml ...` means `sweep run CONFIG.yaml ...`; `sweep show` stays itself."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


sweep_app = typer.Typer(
    cls=_RunByDefault,
    no_args_is_help=True,
    help=(
        "Choose pruning and clipping settings by validation: `secateurs sweep CONFIG.yaml` "
        "runs or resumes a search; `secateurs sweep show [STUDY]` prints its results.\n\n"
        "A sweep config is a program: its model, data and trainer fields name Python "
        "functions ('package.module:function') that are imported and run, as Hydra's "
        "_target_ does. Run only configs you trust; the functions are listed before the run."
    ),
)
app.add_typer(sweep_app, name="sweep")


def _storage_option() -> typer.Option:
    return typer.Option(None, "--storage", envvar="SECATEURS_STORAGE", help=_STORAGE_HELP)


@sweep_app.command("run")
def run(
    config: Path = typer.Argument(..., help="Sweep configuration (YAML); see examples/."),
    storage: str | None = _storage_option(),
    study: str | None = typer.Option(
        None, "--study", help="Study name (default: the config's `study`, else its file name)."
    ),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Local worker processes."),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads per worker. Default with one worker: 1 or torch's count, whichever "
        "trains the model faster here (timed at the start). N workers get cores / N each.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for trials.csv, results.json, best-recipe.yaml (default: sweeps/STUDY).",
    ),
    quiet: bool = QuietOption,
) -> None:
    """Run a search, or resume it: rerunning the same command skips completed trials.

    Ctrl-C or kill -9 loses no completed trial. Several commands (or --workers N) may work
    on one study at once; a different config under the same study name is refused.

    The config is a program: the functions its model, data and trainer fields name are
    imported and run (they are printed first), so run only configs you trust.
    """
    from secateurs.measure.threads import set_threads
    from secateurs.search.config import check_name, load_config
    from secateurs.search.results import render_table, write_results
    from secateurs.search.sources import named_code
    from secateurs.search.storage import DEFAULT_STORAGE
    from secateurs.search.study import WorkerError, best_setting, run_sweep

    with user_errors():
        cfg = load_config(config)
        name = check_name(study or cfg.study or config.stem, "study")
        url = storage or DEFAULT_STORAGE
        if not quiet:
            calls = ", ".join(f"{k}={v}" for k, v in named_code(cfg).items())
            typer.echo(f"{config} runs code: {calls}", err=True)
        if workers > 1 and threads is not None:
            raise ValueError("--threads is for one worker; N workers get cores / N threads each")
        if workers == 1:
            chosen = set_threads(threads, lambda: _threads_for_sweep(cfg))
            if not quiet:
                typer.echo(chosen, err=True)
        try:
            outcome = run_sweep(cfg, url, name, workers=workers, progress=not quiet)
        except WorkerError as e:
            raise fail(str(e), EXIT_FAILED) from None
        target = out or Path("sweeps") / name
        paths = write_results(outcome.prepared.study, target)
    st = outcome.prepared.study
    if not quiet:
        console = _console()
        dense = outcome.prepared.dense
        console.print(render_table(st, title=f"study {name}"))
        console.print(
            f"dense {cfg.objective.metric}: {dense['mean']:.4f} ± {dense['std']:.4f}; "
            f"tolerance {cfg.objective.tolerance:g}; {outcome.seconds:.1f} s"
        )
        best = best_setting(st, cfg.objective.tolerance)
        if best is None:
            console.print("no setting stayed within the tolerance")
    for kind, path in paths.items():
        typer.echo(f"{kind}: {path}")
    if paths and "report" not in paths:
        typer.echo('report: skipped (matplotlib is not installed: pip install "secateurs[report]")')
    if outcome.errors:
        raise fail(
            "; ".join(outcome.errors) + " (completed trials are kept; rerun to resume)",
            EXIT_FAILED,
        )


def _threads_for_sweep(cfg):
    """Time a training step of the sweep's model on a batch of its data (1 vs torch's count)."""
    import torch
    from torch.utils.data import default_collate

    from secateurs.measure.threads import fastest_threads, training_step
    from secateurs.search.sources import load_data, model_factory

    with torch.random.fork_rng():
        model = model_factory(cfg)()
        data = load_data(cfg)
        n = cfg.budget.batch_size
        if isinstance(data, tuple):
            example = data[0][:n]
        else:  # a Dataset of (input, label) pairs
            example = default_collate([data[i] for i in range(min(n, len(data)))])[0]
        return fastest_threads(training_step(model, example))


@sweep_app.command("show")
def show(
    study: str | None = typer.Argument(None, help="Study name (omit to list the studies)."),
    storage: str | None = _storage_option(),
    out: Path | None = typer.Option(None, "--out", help="Also write CSV, JSON and the recipe."),
) -> None:
    """Print a study's trials, best setting and Pareto front (or list the stored studies)."""
    import optuna

    from secateurs.search.results import render_table, summary, write_results
    from secateurs.search.storage import DEFAULT_STORAGE, open_storage, redact

    url = storage or DEFAULT_STORAGE
    with user_errors():
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            raise FileNotFoundError(f"no study storage at {url} (pass --storage)")
        store = open_storage(url, heartbeat=False)
        names = sorted(optuna.get_all_study_names(store))
        if study is None and len(names) == 1:
            study = names[0]
        if study is None:
            if not names:
                raise ValueError(f"{redact(url)} holds no study")
            for n in names:
                typer.echo(n)
            return
        if study not in names:
            raise ValueError(f"no study {study!r} in {redact(url)}; it holds {names}")
        st = optuna.load_study(study_name=study, storage=store)
        data = summary(st)
        paths = write_results(st, out) if out is not None else {}
    console = _console()
    console.print(render_table(st, title=f"study {study}"))
    dense = data.get("dense") or {}
    if dense:
        console.print(f"dense: {dense['mean']:.4f} ± {dense['std']:.4f}")
    best = data.get("best")
    if best is not None:
        console.print(f"best (most compressed within {data['tolerance']:g}): trial {best['trial']}")
    else:
        console.print("no completed setting within the tolerance yet")
    if data["pareto"]:
        console.print("pareto front: trials " + ", ".join(str(r["trial"]) for r in data["pareto"]))
    states: dict[str, int] = {}
    for r in data["trials"]:
        states[r["state"]] = states.get(r["state"], 0) + 1
    console.print("trials: " + ", ".join(f"{v} {k.lower()}" for k, v in sorted(states.items())))
    for kind, path in paths.items():
        typer.echo(f"{kind}: {path}")
    if paths and "report" not in paths:
        typer.echo('report: skipped (matplotlib is not installed: pip install "secateurs[report]")')
