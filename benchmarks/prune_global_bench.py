"""Global magnitude pruning: secateurs vs torch.nn.utils.prune.global_unstructured.

Each method runs in its own subprocess so that its peak RSS is its own. The model is
`--layers` x Linear(1000, 1000) (100 layers = 100M weights, 400 MB); the amount is 0.9.
"Extra" is peak RSS during the call minus RSS just before it, masks included.

    flock /tmp/secateurs-bench.lock python benchmarks/prune_global_bench.py [--layers 100]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

METHODS = ("secateurs", "torch", "kthvalue")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(method: str, layers: int, amount: float) -> dict:
    import torch
    from torch import nn
    from torch.nn.utils import prune as tprune

    from secateurs import prune

    torch.manual_seed(0)
    with torch.no_grad():
        model = nn.Sequential(*[nn.Linear(1000, 1000, bias=False) for _ in range(layers)])
        for m in model:
            m.weight.normal_()
    n = sum(p.numel() for p in model.parameters())
    weights_mb = n * 4 / 2**20
    before = _rss_mb()
    t0 = time.perf_counter()
    if method == "secateurs":
        report = prune.unstructured_(model, sparsity=amount, exclude=[])
        removed = report.params - report.nonzeros
    elif method == "torch":
        tprune.global_unstructured(
            [(m, "weight") for m in model], pruning_method=tprune.L1Unstructured, amount=amount
        )
        removed = int(sum((m.weight_mask == 0).sum() for m in model))
    else:
        with torch.no_grad():
            flat = torch.cat([m.weight.detach().abs().reshape(-1) for m in model])
            k = round(amount * n)
            t = torch.kthvalue(flat, k).values
            del flat
            masks = [m.weight.detach().abs() > t for m in model]
            removed = int(sum((~mk).sum() for mk in masks))
    seconds = time.perf_counter() - t0
    extra = _peak_mb() - before
    return {
        "method": method,
        "params": n,
        "seconds": seconds,
        "extra_mb": extra,
        "extra_pct_of_weights": 100 * extra / weights_mb,
        "removed": removed,
        "requested": round(amount * n),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=100, help="Linear(1000,1000) layers (100=100M)")
    ap.add_argument("--amount", type=float, default=0.9)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.layers, args.amount)))
        return
    rows = []
    for method in args.methods.split(","):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                method,
                "--layers",
                str(args.layers),
                "--amount",
                str(args.amount),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    ref = next((r["seconds"] for r in rows if r["method"] == "torch"), None)
    print(
        f"{args.layers} x Linear(1000, 1000) = {rows[0]['params']:,} weights, amount {args.amount}"
    )
    print(
        "| method | time (s) | speed-up vs torch | peak extra RSS (MB) | extra / weights | exact |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        speed = f"{ref / r['seconds']:.1f}x" if ref else ""
        exact = "yes" if r["removed"] == r["requested"] else f"{r['removed']:,}"
        print(
            f"| {r['method']} | {r['seconds']:.3f} | {speed} | {r['extra_mb']:.0f} | "
            f"{r['extra_pct_of_weights']:.0f}% | {exact} |"
        )


if __name__ == "__main__":
    main()
