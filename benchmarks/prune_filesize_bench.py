"""File size by sparsity: secateurs.io.save vs dense safetensors vs torch.nn.utils.prune.

Model: Linear(1024,1024) x 4 + biases (4.2M parameters), every weight pruned by global
magnitude (exclude=[]). Ratios are to the dense fp32 safetensors file of the same model.

    flock /tmp/secateurs-bench.lock python benchmarks/prune_filesize_bench.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import prune as tprune

from secateurs import io, prune


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(4)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsities", default="0,0.5,0.7,0.8,0.9,0.95,0.98")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        dense_path = Path(d) / "dense.safetensors"
        save_file({k: v.contiguous() for k, v in model().state_dict().items()}, str(dense_path))
        dense = os.path.getsize(dense_path)
        print(f"dense fp32 safetensors: {dense:,} bytes")
        print(
            "| sparsity | secateurs file (bytes) | ratio | packings "
            "| torch.nn.utils.prune state_dict | ratio |"
        )
        print("|---:|---:|---:|---|---:|---:|")
        for s in (float(x) for x in args.sparsities.split(",")):
            m = model()
            if s > 0:
                prune.unstructured_(m, sparsity=s, exclude=[])
            p = io.save(m, Path(d) / f"s{s}.safetensors")
            size = os.path.getsize(p)
            kinds = sorted({e["packing"] for e in io.read_header(p)["tensors"].values()})
            t = model()
            if s > 0:
                tprune.global_unstructured(
                    [(x, "weight") for x in t], pruning_method=tprune.L1Unstructured, amount=s
                )
            tp = Path(d) / f"t{s}.pt"
            torch.save(t.state_dict(), tp)
            tsize = os.path.getsize(tp)
            print(
                f"| {s:.2f} | {size:,} | {size / dense:.3f} | {', '.join(kinds)} | "
                f"{tsize:,} | {tsize / dense:.2f} |"
            )


if __name__ == "__main__":
    main()
