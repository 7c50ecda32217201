"""Cost of the non-finite check per optimizer step: ByNorm with nonfinite="skip" (decided on
the device, `step_unless`) against nonfinite=None (no check, what clip_grad_norm_ does).

Interleaved A B A B after a warm-up; prints the median and the spread of microseconds per
step (rule + optimizer step) for a small MLP. On a CUDA device it also runs the checked step
under `torch.cuda.set_sync_debug_mode("error")`, which raises if the host waits.

    python benchmarks/skip_bench.py [--rounds 7] [--steps 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from secateurs.clip import ByNorm, wrap


def bench(policy: str | None, steps: int, device: str, no_sync: bool = False) -> float:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 256)).to(device)
    fused = device == "cuda"
    opt = wrap(torch.optim.Adam(model.parameters(), fused=fused), ByNorm(1.0, nonfinite=policy))
    grads = [torch.randn_like(p) for p in model.parameters()]
    for p, g in zip(model.parameters(), grads, strict=True):
        p.grad = g.clone()
    opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    if no_sync:  # raise if the host waits for the device inside the loop
        torch.cuda.set_sync_debug_mode("error")
    t0 = time.perf_counter()
    try:
        for _ in range(steps):
            for p, g in zip(model.parameters(), grads, strict=True):
                p.grad.copy_(g)
            opt.step()
    finally:
        if no_sync:
            torch.cuda.set_sync_debug_mode("default")
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bench("skip", 20, device), bench(None, 20, device)  # warm-up
    times: dict[str, list[float]] = {"skip": [], "none": []}
    for _ in range(args.rounds):
        times["skip"].append(bench("skip", args.steps, device))
        times["none"].append(bench(None, args.steps, device))
    for name, xs in times.items():
        print(f"{device} nonfinite={name:5s} median {statistics.median(xs):8.1f} us/step "
              f"(min {min(xs):.1f}, max {max(xs):.1f}, {len(xs)} rounds)")  # fmt: skip
    if device == "cuda":
        bench("skip", 10, device, no_sync=True)
        print("cuda: no host synchronisation in the checked step")


if __name__ == "__main__":
    main()
