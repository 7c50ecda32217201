"""`secateurs prune unstructured|nm|structured|recipe MODEL ... -o OUT`: prune a model file.

One small command per mode. Each parses its own options, prunes, and hands the result to
`_finish`, which prints the report (and the metric before and after, with --eval), bakes the
masks in and writes a compact secateurs file. Nothing is written on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from secateurs.cli.app import app
from secateurs.cli.common import EXIT_FAILED, QuietOption, fail, user_errors
from secateurs.cli.export import PruneFormatOption, parse_shape
from secateurs.cli.options import (
    MODEL_HELP,
    ArchOption,
    CodeOption,
    EvalOption,
    TrustArchOption,
    TrustPickleOption,
    load_cli_model,
    metrics,
    metrics_table,
    resolve_function,
)

if TYPE_CHECKING:
    from torch import nn

prune_app = typer.Typer(
    help="Prune a model file and save a compact one: one command per mode.",
    no_args_is_help=True,
)
app.add_typer(prune_app, name="prune")

# Shown in --help; the commands accept every registered criterion but movement (which needs
# training between steps). A static list keeps `secateurs --help` from importing torch.
_CRITERIA = ("magnitude", "random", "taylor", "snip")

ModelArgument = typer.Argument(..., help=MODEL_HELP)
OutputOption = typer.Option(
    ...,
    "--output",
    "-o",
    help="The pruned model to write: NAME.pt/.pth a torch.save state dict for your own class; "
    "any other name (.safetensors included) the compact secateurs file; see --format.",
)
CriterionOption = typer.Option(
    "magnitude",
    "--criterion",
    help=f"Importance: {', '.join(_CRITERIA)} (taylor/snip need --data).",
)
IncludeOption = typer.Option(
    [], "--include", help="Only prune parameters matching this glob (repeatable)."
)
ExcludeOption = typer.Option(
    [],
    "--exclude",
    help="Keep parameters matching this glob dense (repeatable; replaces the default, which "
    "keeps the last Linear and embeddings dense).",
)
AllOption = typer.Option(False, "--all", help="Prune the last Linear and embeddings too.")
DataOption = typer.Option(
    None,
    "--data",
    help="'package.module:function' returning (inputs, targets) batches, for the "
    "data-driven criteria and importances (taylor, snip, activation).",
)
InputShapeOption = typer.Option(
    None, "--input-shape", help="Example input shape for tracing, e.g. 1,1,8,8 (structured)."
)


@dataclass
class _Job:
    """What every mode shares: the loaded model, its metric before, the batches, the output."""

    source: Path
    output: Path
    arch: str | None
    net: nn.Module
    batches: Any
    evaluate: Any
    before: dict[str, float]
    quiet: bool
    kind: str = "secateurs"  # what -o writes (`secateurs.cli.export.prune_format`)


def _start(
    model: Path,
    output: Path,
    arch: str | None,
    trust: tuple[bool, bool, Path | None],
    eval_fn: str | None,
    data: str | None,
    quiet: bool,
    fmt: str | None = None,
) -> _Job:
    """Check the shared options, load the model and measure it (exit 2 on bad input)."""
    from secateurs.cli.export import prune_format

    with user_errors():
        kind = prune_format(output, fmt)
        if kind != "hf" and output.is_dir():
            raise ValueError(f"--output {output} is a folder")
        evaluate = resolve_function(eval_fn) if eval_fn else None
        batches = resolve_function(data, "--data")() if data else None
        net = load_cli_model(model, arch, *trust)  # (trust_pickle, trust_arch, code)
    before = _run_eval(evaluate, net)
    return _Job(model, output, arch, net, batches, evaluate, before, quiet, kind)


def _finish(job: _Job, net: nn.Module, report: Any) -> None:
    """Print the report and metrics, bake the masks in and write the file."""
    from secateurs.cli.export import write_pruned
    from secateurs.prune import make_permanent

    after = _run_eval(job.evaluate, net)
    if not job.quiet:
        typer.echo(report.to_table())
        if job.evaluate is not None:
            typer.echo(metrics_table(job.before, after))
    with user_errors():
        make_permanent(net)
        meta: dict[str, Any] = {"source": str(job.source), "command": "prune"}
        if job.before or after:
            meta["eval"] = {"before": job.before, "after": after}
        written = write_pruned(
            net,
            job.output,
            job.kind,
            arch=job.arch or None,
            metadata=meta,
            reference=job.net if net is not job.net else None,  # structured: a new model
            quiet=job.quiet,
        )
    typer.echo(written)


def _selection(include: list[str], exclude: list[str], prune_all: bool) -> dict[str, Any]:
    """The include/exclude keywords of `unstructured_` and `nm_`."""
    if prune_all and exclude:
        raise ValueError("--all and --exclude contradict each other; use one")
    kwargs: dict[str, Any] = {"include": include or None}
    if exclude or prune_all:
        kwargs["exclude"] = list(exclude)
    return kwargs


def _check_criterion(criterion: str, batches: Any) -> None:
    from secateurs.prune.criteria import CRITERIA

    allowed = sorted(set(CRITERIA) - {"movement"})
    if criterion not in allowed:
        raise ValueError(f"--criterion must be one of {allowed}, got {criterion!r}")
    if criterion in ("taylor", "snip") and batches is None:
        raise ValueError(f"--criterion {criterion} needs --data package.module:function")


@prune_app.command("unstructured")
def unstructured_cmd(
    model: Path = ModelArgument,
    output: Path = OutputOption,
    sparsity: float | None = typer.Option(
        None, "--sparsity", "-s", help="Fraction of the chosen weights to zero, in [0, 1)."
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", "-t", help="Zero the weights whose |score| < T (|w| for magnitude)."
    ),
    criterion: str = CriterionOption,
    scope: str = typer.Option(
        "global", "--scope", help="global: rank all layers together; layer: each alone."
    ),
    include: list[str] = IncludeOption,
    exclude: list[str] = ExcludeOption,
    prune_all: bool = AllOption,
    force: bool = typer.Option(
        False, "--force", help="Allow a threshold that empties a whole layer."
    ),
    data: str | None = DataOption,
    arch: str | None = ArchOption,
    trust_pickle: bool = TrustPickleOption,
    trust_arch: bool = TrustArchOption,
    code: Path | None = CodeOption,
    fmt: str | None = PruneFormatOption,
    eval_fn: str | None = EvalOption,
    quiet: bool = QuietOption,
) -> None:
    """Zero individual weights: a --sparsity (global or per layer) or a --threshold."""
    with user_errors():
        if (sparsity is None) == (threshold is None):
            raise ValueError("give exactly one of --sparsity or --threshold")
        if scope not in ("global", "layer"):
            raise ValueError(f"--scope must be 'global' or 'layer', got {scope!r}")
        kwargs = _selection(include, exclude, prune_all)
    job = _start(model, output, arch, (trust_pickle, trust_arch, code), eval_fn, data, quiet, fmt)
    with user_errors():
        from secateurs.prune import unstructured_

        _check_criterion(criterion, job.batches)
        report = unstructured_(
            job.net,
            sparsity=sparsity,
            threshold=threshold,
            scope=scope,
            criterion=criterion,
            force=force,
            data=job.batches,
            **kwargs,
        )
    _finish(job, job.net, report)


@prune_app.command("nm")
def nm_cmd(
    model: Path = ModelArgument,
    output: Path = OutputOption,
    pattern: str = typer.Option(
        ..., "--pattern", "-p", help="N:M: keep N of every M consecutive input weights, e.g. 2:4."
    ),
    criterion: str = CriterionOption,
    include: list[str] = IncludeOption,
    exclude: list[str] = ExcludeOption,
    prune_all: bool = AllOption,
    data: str | None = DataOption,
    arch: str | None = ArchOption,
    trust_pickle: bool = TrustPickleOption,
    trust_arch: bool = TrustArchOption,
    code: Path | None = CodeOption,
    fmt: str | None = PruneFormatOption,
    eval_fn: str | None = EvalOption,
    quiet: bool = QuietOption,
) -> None:
    """N:M semi-structured sparsity (2:4 runs on sparse tensor cores)."""
    with user_errors():
        n, m = _parse_nm(pattern)
        kwargs = _selection(include, exclude, prune_all)
    job = _start(model, output, arch, (trust_pickle, trust_arch, code), eval_fn, data, quiet, fmt)
    with user_errors():
        from secateurs.prune import nm_

        _check_criterion(criterion, job.batches)
        report = nm_(job.net, n, m, criterion=criterion, data=job.batches, **kwargs)
    _finish(job, job.net, report)


@prune_app.command("structured")
def structured_cmd(
    model: Path = ModelArgument,
    output: Path = OutputOption,
    ratio: float = typer.Option(
        ..., "--ratio", help="Fraction of the units (channels, neurons, heads) to remove."
    ),
    input_shape: str = typer.Option(
        ..., "--input-shape", help="Example input shape for tracing, e.g. 1,1,8,8."
    ),
    importance: str = typer.Option(
        "l2",
        "--importance",
        help="l2, l1, bn, taylor, activation, random (taylor/activation need --data).",
    ),
    protect: list[str] = typer.Option(
        [], "--protect", help="Keep the width of modules matching this name or glob (repeatable)."
    ),
    prune_embedding: bool = typer.Option(
        False,
        "--prune-embedding",
        help="Also narrow the model's hidden size (the residual stream, through its norms); "
        "the result then differs from the dense model by more than the removed units.",
    ),
    round_to: int | None = typer.Option(
        None, "--round-to", min=1, help="Round kept channel counts to a multiple of this."
    ),
    data: str | None = DataOption,
    arch: str | None = ArchOption,
    trust_pickle: bool = TrustPickleOption,
    trust_arch: bool = TrustArchOption,
    code: Path | None = CodeOption,
    fmt: str | None = PruneFormatOption,
    eval_fn: str | None = EvalOption,
    quiet: bool = QuietOption,
) -> None:
    """Remove whole units for real: a smaller, faster ordinary model."""
    with user_errors():
        shape = parse_shape(input_shape)
    job = _start(model, output, arch, (trust_pickle, trust_arch, code), eval_fn, data, quiet, fmt)
    with user_errors():
        import torch

        from secateurs.prune import structured

        net, report = structured(
            job.net,
            torch.randn(*shape),
            ratio=ratio,
            importance=importance,
            protect=tuple(protect),
            prune_embedding=prune_embedding,
            round_to=round_to,
            data=job.batches,
        )
    _finish(job, net, report)


@prune_app.command("recipe")
def recipe_cmd(
    model: Path = ModelArgument,
    recipe: Path = typer.Argument(..., help="A recipe YAML (`secateurs sweep`'s best-recipe)."),
    output: Path = OutputOption,
    input_shape: str | None = InputShapeOption,
    data: str | None = DataOption,
    arch: str | None = ArchOption,
    trust_pickle: bool = TrustPickleOption,
    trust_arch: bool = TrustArchOption,
    code: Path | None = CodeOption,
    fmt: str | None = PruneFormatOption,
    eval_fn: str | None = EvalOption,
    quiet: bool = QuietOption,
) -> None:
    """Apply the pruning settings of a recipe YAML (one shot; fine-tune afterwards)."""
    with user_errors():
        from secateurs.search.recipe import load_recipe, recipe_caveat

        settings = load_recipe(recipe)
        if settings.prune.method == "none":
            raise ValueError("the recipe prunes nothing (method: none); there is nothing to apply")
        shape = parse_shape(input_shape) if input_shape is not None else None
        if settings.prune.method == "structured" and shape is None:
            raise ValueError("the recipe prunes structurally: give --input-shape to trace MODEL")
    if (note := recipe_caveat(settings)) and not quiet:
        typer.echo(note, err=True)
    job = _start(model, output, arch, (trust_pickle, trust_arch, code), eval_fn, data, quiet, fmt)
    with user_errors():
        import torch

        from secateurs.search.recipe import apply_recipe

        example = torch.randn(*shape) if shape is not None else None
        net, report = apply_recipe(job.net, settings, example_inputs=example, data=job.batches)
    _finish(job, net, report)


def _parse_nm(text: str) -> tuple[int, int]:
    try:
        n, m = (int(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"--pattern must look like N:M (e.g. 2:4), got {text!r}") from None
    return n, m


def _run_eval(evaluate: Any, net: nn.Module) -> dict[str, float]:
    if evaluate is None:
        return {}
    try:
        return metrics(evaluate, net)
    except Exception as e:  # the user's metric failed: the work failed, not the input
        raise fail(f"--eval failed: {type(e).__name__}: {e}", EXIT_FAILED) from None
