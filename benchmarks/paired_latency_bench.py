"""Why speed-ups are timed interleaved: the digits CNN against an exact copy of itself.

    flock /tmp/secateurs-bench.lock python benchmarks/paired_latency_bench.py [--repeats 10]

Each repeat measures the speed-up of the copy over the original twice: the old way (the
median latency of each model measured separately, one after the other, as `compare` did) and
with `secateurs.measure.compare_latency` (A B, B A, ... after a warm-up). The true ratio is
1.00. Prints both ratios per repeat and how often each method claimed a difference.
"""

from __future__ import annotations

import argparse
import copy
import os

import torch

from secateurs.measure import compare_latency, measure_latency
from secateurs.zoo import TASKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = TASKS["cnn"]
    a = task.model(0).eval()
    b = copy.deepcopy(a)
    x = task.data(0).example
    print(f"cores {os.cpu_count()}, threads {args.threads}, load {os.getloadavg()}")
    print("| repeat | separate medians: ratio | interleaved: ratio (IQR) | interleaved says |")
    print("|---:|---:|---:|---|")
    claimed_sep = claimed_int = 0
    for i in range(args.repeats):
        first = measure_latency(a, x, runs=args.runs).median
        sep = first / measure_latency(b, x, runs=args.runs).median
        s = compare_latency(a, b, x, rounds=args.runs)
        claimed_sep += not 0.95 <= sep <= 1.05
        claimed_int += not s.within_noise
        says = "within noise" if s.within_noise else f"{s.ratio:.2f}x"
        print(f"| {i + 1} | {sep:.2f} | {s.ratio:.2f} ({s.q1:.2f}-{s.q3:.2f}) | {says} |")
    print(
        f"\nseparate medians off by more than 5%: {claimed_sep}/{args.repeats}; "
        f"interleaved claiming a difference: {claimed_int}/{args.repeats}"
    )


if __name__ == "__main__":
    main()
