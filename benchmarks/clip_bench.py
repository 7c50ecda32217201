"""Speed of the clipping rules on CPU, as ratios to PyTorch's own functions in the same run.

Default: 100M fp32 parameters in 200 tensors of 500k (1000 x 500). Each method runs on the same
gradients, rounds interleaved, and the median of the rounds is compared:
- ByNorm (global), AutoClip, ZClip  vs  torch.nn.utils.clip_grad_norm_(foreach=True)
- ByValue                           vs  torch.nn.utils.clip_grad_value_(foreach=True)
- AGC                               vs  a straightforward per-tensor AGC (timm's algorithm)

    flock /tmp/secateurs-bench.lock python benchmarks/clip_bench.py [--size 100M] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from secateurs.clip import AGC, AutoClip, ByNorm, ByValue, ZClip

GOALS = {  # method: (baseline, largest ratio the issue asks for)
    "ByNorm(1.0)": ("torch clip_grad_norm_", 1.05),
    "AutoClip(10)": ("torch clip_grad_norm_", 1.15),
    "ZClip()": ("torch clip_grad_norm_", 1.15),
    "ByValue(0.01)": ("torch clip_grad_value_", 0.6),
    "AGC(0.01)": ("per-tensor AGC (timm)", 0.6),
}


def per_tensor_agc(params: list[torch.Tensor], clip: float = 0.01, eps: float = 1e-3) -> None:
    """AGC as timm writes it: per tensor, unit norms, a scaled copy, torch.where, copy back."""

    def unitwise_norm(x: torch.Tensor) -> torch.Tensor:
        if x.ndim <= 1:
            return x.norm(2.0)
        return torch.linalg.vector_norm(x, 2.0, dim=tuple(range(1, x.ndim)), keepdim=True)

    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            g = p.grad.detach()
            max_norm = unitwise_norm(p.detach()).clamp_(min=eps).mul_(clip)
            grad_norm = unitwise_norm(g)
            clipped = g * (max_norm / grad_norm.clamp(min=1e-6))
            p.grad.detach().copy_(torch.where(grad_norm < max_norm, g, clipped))


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "KMG" else text
    value = int(float(number) * scale)
    if value < 200:
        raise argparse.ArgumentTypeError(f"size must be at least 200 parameters, got {text}")
    return value


def make_params(total: int, tensors: int) -> list[torch.Tensor]:
    per = total // tensors
    cols = 500 if per % 500 == 0 else 1
    g = torch.Generator().manual_seed(0)
    params = []
    for _ in range(tensors):
        p = torch.randn(per // cols, cols, generator=g)
        p.grad = torch.randn(per // cols, cols, generator=g)
        params.append(p)
    return params


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=100_000_000, help="total parameters")
    parser.add_argument("--tensors", type=int, default=200, help="number of tensors")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (median)")
    args = parser.parse_args()

    params = make_params(args.size, args.tensors)
    zclip, auto = ZClip(warmup=1), AutoClip(10)
    methods: dict[str, Callable[[], object]] = {
        "torch clip_grad_norm_": lambda: torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True),
        "ByNorm(1.0)": lambda: ByNorm(1.0)(params),
        "ByNorm(1.0, nonfinite=None)": lambda: ByNorm(1.0, nonfinite=None)(params),
        "AutoClip(10)": lambda: auto(params),
        "ZClip()": lambda: zclip(params),
        "torch clip_grad_value_": lambda: torch.nn.utils.clip_grad_value_(
            params, 0.01, foreach=True
        ),
        "ByValue(0.01)": lambda: ByValue(0.01)(params),
        "ByValue(0.01, nonfinite='skip')": lambda: ByValue(0.01, nonfinite="skip")(params),
        "per-tensor AGC (timm)": lambda: per_tensor_agc(params),
        "AGC(0.01)": lambda: AGC(0.01, skip_classifier=False)(params),
    }
    for fn in methods.values():  # warm up (ZClip leaves its warm-up here)
        fn()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.rounds):
        for name, fn in methods.items():
            times[name].append(timed(fn))
    medians = {name: statistics.median(ts) for name, ts in times.items()}

    print(
        f"{args.size / 1e6:g}M fp32 parameters in {args.tensors} tensors, "
        f"{torch.get_num_threads()} threads, median of {args.rounds} rounds"
    )
    print(f"| {'method':<32} | {'median ms':>9} | {'vs':<24} | {'ratio':>6} | goal    |")
    print(f"|{'-' * 34}|{'-' * 11}|{'-' * 26}|{'-' * 8}|---------|")
    baselines = {
        "ByNorm(1.0, nonfinite=None)": "torch clip_grad_norm_",
        "ByValue(0.01, nonfinite='skip')": "torch clip_grad_value_",
    }
    for name, median in medians.items():
        base, goal = GOALS.get(name, (baselines.get(name), None))
        if base is None:
            print(f"| {name:<32} | {median * 1e3:>9.1f} | {'':<24} | {'':>6} |         |")
            continue
        ratio = median / medians[base]
        verdict = "" if goal is None else f"<= {goal:.2f} {'ok' if ratio <= goal else 'MISS'}"
        print(f"| {name:<32} | {median * 1e3:>9.1f} | {base:<24} | {ratio:>6.2f} | {verdict:<7} |")


if __name__ == "__main__":
    main()
