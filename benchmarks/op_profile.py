"""Where a pruned model's time goes: CPU time per operator kind, dense vs structured-pruned.

Run (one benchmark at a time on a shared machine):

    flock /tmp/secateurs-bench.lock python benchmarks/op_profile.py [--model resnet] [--rounds 5]

Speed-up follows the MAC reduction only for the operators that do the MACs. This script
profiles one of the families of ``structured_bench.py`` (dense, pruned at ``--ratio``, and
pruned with ``round_to=16``) with ``torch.profiler`` in interleaved rounds and prints, per
operator kind, the median milliseconds per forward and the speed-up of each kind, next to the
MAC reduction. Operators with no MACs (pooling, norms, activations, additions) only shrink
with the channel count, so a model that spends much of its time in them cannot reach a
speed-up equal to its MAC reduction, whatever the pruning tool.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
import structured_bench

from secateurs._inputs import call_model
from secateurs.measure import count_macs
from secateurs.prune import structured

# Operator kinds by the ATen operators that do their work (self time, so nothing counts twice).
KINDS = {
    "convolution": ("mkldnn_convolution", "_slow_conv2d_forward", "thnn_conv2d", "conv_depthwise"),
    "matmul": ("addmm", "mm", "bmm", "_scaled_dot_product", "linear"),
    "pooling": ("max_pool", "avg_pool", "adaptive_"),
    "norm": ("batch_norm", "layer_norm", "group_norm"),
    "elementwise": ("relu", "gelu", "add", "mul", "sigmoid", "silu", "tanh", "clamp"),
}


def _kind(op: str) -> str:
    name = op.removeprefix("aten::")
    for kind, needles in KINDS.items():
        if any(n in name for n in needles):
            return kind
    return "other"


def _profile(model: nn.Module, x: Any, runs: int) -> dict[str, float]:
    """Milliseconds of self CPU time per forward, per operator kind."""
    with torch.inference_mode():
        call_model(model, x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                call_model(model, x)
    out: dict[str, float] = {}
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            kind = _kind(event.key)
            out[kind] = out.get(kind, 0.0) + event.self_cpu_time_total / runs / 1000
    out["total"] = sum(out.values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet", help="a family of structured_bench.py")
    parser.add_argument("--ratio", type=float, default=0.4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, x = structured_bench._family_models(args.batch)[args.model]
    model.eval()
    variants = {
        "dense": model,
        f"pruned {args.ratio}": structured(model, x, ratio=args.ratio)[0].eval(),
        f"pruned {args.ratio}, round_to=16": structured(model, x, ratio=args.ratio, round_to=16)[
            0
        ].eval(),
    }
    macs = {name: count_macs(m, x) for name, m in variants.items()}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for _ in range(args.rounds):  # interleaved: every variant in every round
        for name, m in variants.items():
            samples[name].append(_profile(m, x, args.runs))
    kinds = [*sorted({k for s in samples["dense"] for k in s} - {"total"}), "total"]
    median = {
        name: {k: statistics.median(s.get(k, 0.0) for s in rows) for k in kinds}
        for name, rows in samples.items()
    }
    dense = median["dense"]
    print(f"## {args.model}, batch {args.batch}, {args.threads} thread(s), ms per forward (median)")
    header = (
        "| operator kind | "
        + " | ".join(variants)
        + " | "
        + " | ".join(f"speed-up, {n}" for n in list(variants)[1:])
    )
    print(header + " |")
    print("|---" * (1 + 2 * len(variants) - 1) + "|")
    for k in kinds:
        cells = [f"{median[n][k]:.2f}" for n in variants]
        ups = [
            f"{dense[k] / median[n][k]:.2f}x" if median[n][k] > 0 else "-"
            for n in list(variants)[1:]
        ]
        print(f"| {k} | " + " | ".join(cells) + " | " + " | ".join(ups) + " |")
    cells = [f"{macs[n] / 1e6:,.0f} M" for n in variants]
    ups = [f"{macs['dense'] / macs[n]:.2f}x" for n in list(variants)[1:]]
    print("| MACs | " + " | ".join(cells) + " | " + " | ".join(ups) + " |")
    share = {k: dense[k] / dense["total"] for k in kinds if k != "total"}
    print("dense time share: " + ", ".join(f"{k} {v:.0%}" for k, v in share.items()))


if __name__ == "__main__":
    main()
