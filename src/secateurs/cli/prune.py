"""`secateurs prune MODEL ... -o OUT`: prune a model file and save a compact one."""

from __future__ import annotations

from pathlib import Path

import typer

from secateurs.cli.app import app
from secateurs.cli.common import EXIT_FAILED, QuietOption, fail, user_errors
from secateurs.cli.export import PruneFormatOption
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

# Shown in --help; the command accepts every registered criterion but movement (which needs
# training between steps). A static list keeps `secateurs --help` from importing torch.
_CRITERIA = ("magnitude", "random", "taylor", "snip")


def _parse_nm(text: str) -> tuple[int, int]:
    try:
        n, m = (int(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"--nm must look like N:M (e.g. 2:4), got {text!r}") from None
    return n, m


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--input-shape must be comma-separated ints, got {text!r}") from None
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"--input-shape needs positive sizes, got {text!r}")
    return shape


@app.command("prune")
def prune_cmd(
    model: Path = typer.Argument(..., help=MODEL_HELP),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="The pruned model to write: NAME.safetensors (or .secateurs) the compact "
        "secateurs file; NAME.pt/.pth a torch.save state dict; a folder a Hugging Face one.",
    ),
    fmt: str | None = PruneFormatOption,
    sparsity: float | None = typer.Option(
        None, "--sparsity", "-s", help="Fraction of the chosen weights to zero, in [0, 1)."
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", "-t", help="Zero the weights whose |score| < T (|w| for magnitude)."
    ),
    criterion: str = typer.Option(
        "magnitude",
        "--criterion",
        help=f"Importance: {', '.join(_CRITERIA)} (taylor/snip need --data).",
    ),
    scope: str = typer.Option(
        "global", "--scope", help="global: rank all layers together; layer: each alone."
    ),
    nm: str | None = typer.Option(
        None, "--nm", help="N:M semi-structured sparsity instead, e.g. 2:4."
    ),
    include: list[str] = typer.Option(
        [], "--include", help="Only prune parameters matching this glob (repeatable)."
    ),
    exclude: list[str] = typer.Option(
        [],
        "--exclude",
        help="Keep parameters matching this glob dense (repeatable; replaces the "
        "default, which keeps the last Linear and embeddings dense).",
    ),
    prune_all: bool = typer.Option(
        False, "--all", help="Prune the last Linear and embeddings too."
    ),
    force: bool = typer.Option(
        False, "--force", help="Allow a threshold that empties a whole layer."
    ),
    data: str | None = typer.Option(
        None,
        "--data",
        help="'package.module:function' returning (inputs, targets) batches, for taylor/snip.",
    ),
    structured: bool = typer.Option(
        False, "--structured", help="Structured pruning (channels, heads) instead."
    ),
    ratio: float | None = typer.Option(
        None, "--ratio", help="Structured: fraction of channels to remove."
    ),
    importance: str = typer.Option(
        "l2", "--importance", help="Structured importance: l2, l1, bn, taylor, activation, random."
    ),
    input_shape: str | None = typer.Option(
        None, "--input-shape", help="Structured: example input shape, e.g. 1,1,8,8."
    ),
    recipe: Path | None = typer.Option(
        None, "--recipe", help="Settings from a recipe YAML (`secateurs sweep`'s best-recipe)."
    ),
    arch: str | None = ArchOption,
    trust_pickle: bool = TrustPickleOption,
    trust_arch: bool = TrustArchOption,
    code: Path | None = CodeOption,
    eval_fn: str | None = EvalOption,
    quiet: bool = QuietOption,
) -> None:
    """Prune MODEL and write a compact secateurs file (masks baked in, sparse tensors packed).

    Exactly one of --sparsity, --threshold, --nm, --structured or --recipe (a recipe YAML
    from `secateurs sweep`). Prints the per-layer report and, with --eval, the metric before
    and after. Nothing is written on bad input.
    """
    import torch

    from secateurs.cli.export import prune_format, write_pruned
    from secateurs.prune import make_permanent

    with user_errors():
        if recipe is not None:
            from secateurs.search.recipe import recipe_cli_options

            typed = {"sparsity": sparsity, "threshold": threshold, "nm": nm, "ratio": ratio}
            o = recipe_cli_options(recipe, structured=structured, **typed)
            sparsity, threshold, nm, ratio = (o[k] for k in typed)
            structured, criterion, scope, importance = (
                o[k] for k in ("structured", "criterion", "scope", "importance")
            )
            if o["note"] and not quiet:
                typer.echo(o["note"], err=True)
        modes = [sparsity is not None, threshold is not None, nm is not None, structured]
        if sum(modes) != 1:
            raise ValueError("give exactly one of --sparsity, --threshold, --nm or --structured")
        if structured and (ratio is None or input_shape is None):
            raise ValueError("--structured needs --ratio and --input-shape")
        if not structured and (ratio is not None or input_shape is not None):
            raise ValueError("--ratio and --input-shape are for --structured")
        from secateurs.prune.criteria import CRITERIA

        allowed = sorted(set(CRITERIA) - {"movement"})
        if criterion not in allowed:
            raise ValueError(f"--criterion must be one of {allowed}, got {criterion!r}")
        if criterion in ("taylor", "snip") and data is None:
            raise ValueError(f"--criterion {criterion} needs --data package.module:function")
        if scope not in ("global", "layer"):
            raise ValueError(f"--scope must be 'global' or 'layer', got {scope!r}")
        if prune_all and exclude:
            raise ValueError("--all and --exclude contradict each other; use one")
        nm_pair = _parse_nm(nm) if nm is not None else None
        shape = _parse_shape(input_shape) if input_shape is not None else None
        evaluate = resolve_function(eval_fn) if eval_fn else None
        batches = resolve_function(data, "--data")() if data else None
        kind = prune_format(output, fmt)
        if kind != "hf" and output.is_dir():
            raise ValueError(f"--output {output} is a folder")
        net = load_cli_model(model, arch, trust_pickle, trust_arch, code)
    original = net

    before = _run_eval(evaluate, net)
    kwargs: dict = {"include": include or None}
    if exclude or prune_all:
        kwargs["exclude"] = list(exclude)
    with user_errors():
        if structured:
            from secateurs.prune import structured as structured_prune

            net, report = structured_prune(
                net, torch.randn(*shape), ratio=ratio, importance=importance
            )
        elif nm_pair is not None:
            report = _nm(net, nm_pair, criterion, batches, kwargs)
        else:
            from secateurs.prune import unstructured_

            report = unstructured_(
                net,
                sparsity=sparsity,
                threshold=threshold,
                scope=scope,
                criterion=criterion,
                force=force,
                data=batches,
                **kwargs,
            )
    after = _run_eval(evaluate, net)
    if not quiet:
        typer.echo(report.to_table() if hasattr(report, "to_table") else str(report))
        if evaluate is not None:
            typer.echo(metrics_table(before, after))
    with user_errors():
        make_permanent(net)
        meta = {"source": str(model), "command": "prune"}
        if before or after:
            meta["eval"] = {"before": before, "after": after}
        reference = original if net is not original else None
        written = write_pruned(
            net, output, kind, arch=arch, metadata=meta, reference=reference, quiet=quiet
        )
    typer.echo(written)


def _nm(net, pair, criterion, batches, kwargs):
    from secateurs.prune import nm_

    n, m = pair
    return nm_(net, n, m, criterion=criterion, data=batches, **kwargs)


def _run_eval(evaluate, net) -> dict[str, float]:
    if evaluate is None:
        return {}
    try:
        return metrics(evaluate, net)
    except Exception as e:  # the user's metric failed: the work failed, not the input
        raise fail(f"--eval failed: {type(e).__name__}: {e}", EXIT_FAILED) from None
