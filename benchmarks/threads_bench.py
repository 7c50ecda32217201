"""One training step of each demo model on 1 thread vs torch's default (all cores), timed
interleaved, and the count `secateurs.measure.threads.fastest_threads` picks.

    flock /tmp/secateurs-bench.lock python benchmarks/threads_bench.py [--rounds 15]

Prints a Markdown table: per model, the median (and quartiles) of one forward + backward on
the task's example batch at each thread count, their ratio, and the choice.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from secateurs.measure.threads import fastest_threads, training_step
from secateurs.zoo import TASKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--models", default="mlp,cnn,vit,lstm,charlm")
    args = parser.parse_args()
    most = torch.get_num_threads()
    counts = sorted({1, most})
    print(f"cores {os.cpu_count()}, torch default threads {most}, load {os.getloadavg()}")
    print("| model | " + " | ".join(f"{c} thread(s), ms" for c in counts) + " | ratio | picked |")
    print("|---|" + "---:|" * (len(counts) + 2))
    for name in args.models.split(","):
        task = TASKS[name]
        torch.manual_seed(0)
        step = training_step(task.deployable(task.model(0)), task.data(0).example)
        times: dict[int, list[float]] = {c: [] for c in counts}
        for _ in range(args.rounds):
            for c in counts:
                torch.set_num_threads(c)
                step()
                t0 = time.perf_counter()
                step()
                times[c].append(time.perf_counter() - t0)
        cells = []
        for c in counts:
            q1, med, q3 = statistics.quantiles(times[c], n=4)
            cells.append(f"{med * 1e3:.2f} ({q1 * 1e3:.2f}-{q3 * 1e3:.2f})")
        ratio = statistics.median(times[most]) / statistics.median(times[1])
        torch.set_num_threads(most)
        picked = fastest_threads(step).threads
        print(f"| {name} | " + " | ".join(cells) + f" | {ratio:.2f} | {picked} |")


if __name__ == "__main__":
    main()
