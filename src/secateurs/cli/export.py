"""`secateurs export MODEL -o OUT`: write a model in a format other tools load without secateurs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

FORMAT_HELP = (
    "safetensors or pt: the ordinary state dict, masks baked in (load_state_dict into your "
    "own class); hf: a save_pretrained folder; onnx: checked with onnxruntime (needs "
    "--input-shape); secateurs: the compact secateurs file. Default: from the name of OUT "
    "(.safetensors, .pt/.pth/.bin, .onnx, .secateurs; no suffix: hf)."
)
InputShapeOption = typer.Option(
    None, "--input-shape", help="Example input shape for ONNX, e.g. 1,64 (float inputs)."
)


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,1,8,8' -> (1, 1, 8, 8), positive sizes only (ValueError otherwise)."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--input-shape must be comma-separated ints, got {text!r}") from None
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"--input-shape needs positive sizes, got {text!r}")
    return shape


def prune_format(output: Path, fmt: str | None) -> str:
    """What `prune -o OUTPUT` writes: .pt/.pth/.bin a torch.save state dict, an existing
    folder a Hugging Face one, any other name (.safetensors included) the compact secateurs
    file (architecture recorded, `secateurs.io.load` rebuilds it); `--format` overrides."""
    from secateurs.io.export import format_for

    if fmt is not None:
        kind = format_for(output, fmt)
    elif output.suffix.lower() in (".pt", ".pth", ".bin"):
        kind = "pt"
    elif output.suffix.lower() == ".onnx":
        kind = "onnx"
    else:
        kind = "hf" if output.is_dir() else "secateurs"
    if kind == "onnx":
        raise ValueError(
            "prune writes a model file; for ONNX prune to a .safetensors file, then "
            "`secateurs export OUT -o model.onnx --input-shape ...`"
        )
    return kind


PruneFormatOption = typer.Option(
    None,
    "--format",
    "-f",
    help="safetensors or pt: the ordinary state dict (masks baked in) for your own class; "
    "hf: a save_pretrained folder; secateurs: the compact file. Default: pt for .pt/.pth/.bin "
    "names, hf for an existing folder, else secateurs (.safetensors names included).",
)


def write_pruned(
    net: Any,
    output: Path,
    kind: str,
    *,
    arch: str | None,
    metadata: dict[str, Any],
    reference: Any = None,
    quiet: bool = False,
) -> str:
    """Write a pruned model as `prune -o OUTPUT` does (`kind` from `prune_format`) and return
    what to print: the path and size, and any layer-size file written beside it."""
    from secateurs.io.export import export

    result = export(net, output, kind, arch=arch, metadata=metadata, reference=reference)
    size = f" ({output.stat().st_size:,} bytes)" if output.is_file() else ""
    lines = [f"wrote {output}{size}"]
    if result.extra and not quiet:
        lines[1:] = describe_export(result).splitlines()[1:]
    return "\n".join(lines)


def describe_export(result: Any) -> str:
    """One line per written file, plus the ONNX parity and the layer-size note."""
    what = {
        "safetensors": "state dict (safetensors)",
        "pt": "state dict (torch.save)",
        "hf": "Hugging Face folder",
        "onnx": "ONNX",
        "secateurs": "secateurs file",
    }[result.format]
    lines = [f"wrote {result.path} ({what})"]
    if result.onnx_max_diff is not None:
        lines.append(f"onnxruntime matches PyTorch to {result.onnx_max_diff:.2g}")
    for extra in result.extra:
        lines.append(
            f"wrote {extra} (sizes of the layers that pruning made smaller: build your class "
            "with them before load_state_dict)"
        )
    return "\n".join(lines)


@app.command("export")
def export_cmd(
    model: Path = typer.Argument(..., help=MODEL_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="The file (or folder) to write."),
    fmt: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    input_shape: str | None = InputShapeOption,
    arch: str | None = ArchOption,
    trust_pickle: bool = TrustPickleOption,
    trust_arch: bool = TrustArchOption,
    code: Path | None = CodeOption,
    quiet: bool = QuietOption,
) -> None:
    """Write MODEL so that other tools load it without secateurs.

    safetensors/pt give the model's ordinary state dict with the pruning baked in:
    `model.load_state_dict(safetensors.torch.load_file(OUT))` or
    `torch.load(OUT, weights_only=True)` into your own class. A structurally pruned model
    also gets OUT.layers.json, the sizes of the layers that became smaller. hf writes a
    folder that `from_pretrained` loads; onnx is checked against PyTorch with onnxruntime.
    """
    import torch

    from secateurs.io.export import export, format_for

    with user_errors():
        kind = format_for(output, fmt)
        shape = parse_shape(input_shape) if input_shape is not None else None
        if kind == "onnx" and shape is None:
            raise ValueError("--format onnx needs --input-shape, e.g. 1,64")
        net = load_cli_model(model, arch, trust_pickle, trust_arch, code)
        example = torch.randn(*shape) if shape is not None else None
        result = export(
            net,
            output,
            kind,
            example_inputs=example,
            arch=arch,
            metadata={"source": str(model), "command": "export"},
        )
    typer.echo(describe_export(result) if not quiet else str(result.path))
