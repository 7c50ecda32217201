"""CSR speed-up by sparsity: a pruned Linear(4096, 4096) at batch 64, dense vs torch.sparse CSR.

Also shows what `secateurs.io.to_sparse_inference` decides for each sparsity (it measures and
converts only when CSR is faster).

    flock /tmp/secateurs-bench.lock python benchmarks/prune_csr_bench.py
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from secateurs import io, prune
from secateurs.measure import time_callable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--sparsities", default="0.5,0.7,0.8,0.9,0.95,0.98")
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    print(
        f"Linear({args.size}, {args.size}), batch {args.batch}, {torch.get_num_threads()} threads"
    )
    print("| sparsity | dense (ms) | CSR (ms) | speed-up | to_sparse_inference converts |")
    print("|---:|---:|---:|---:|---|")
    x = torch.randn(args.batch, args.size)
    for s in (float(v) for v in args.sparsities.split(",")):
        torch.manual_seed(0)
        lin = nn.Linear(args.size, args.size)
        prune.unstructured_(lin, sparsity=s, exclude=[])
        prune.make_permanent(lin)
        sparse = io.SparseLinear(lin)
        with torch.no_grad():
            dense_t = time_callable(lambda lin=lin: lin(x), runs=args.runs).median
            csr_t = time_callable(lambda sparse=sparse: sparse(x), runs=args.runs).median
        _, report = io.to_sparse_inference(nn.Sequential(lin), x, runs=max(5, args.runs // 3))
        print(
            f"| {s:.2f} | {dense_t * 1e3:.2f} | {csr_t * 1e3:.2f} | {dense_t / csr_t:.2f}x | "
            f"{'yes' if report.layers[0].converted else 'no'} |"
        )


if __name__ == "__main__":
    main()
