"""Measure a trained model the same way for every variant: metric, size, cost, speed."""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from secateurs.zoo.registry import Task, TaskData


def first_example(example: Any) -> Any:
    """The first item of an example batch (MACs are reported per example)."""
    if isinstance(example, torch.Tensor):
        return example[:1]
    if isinstance(example, tuple | list):
        return type(example)(first_example(e) for e in example)
    if isinstance(example, dict):
        return {k: first_example(v) for k, v in example.items()}
    return example


def saved_size(module: nn.Module, arch: str | None = None) -> int:
    """Bytes of the secateurs file of `module` (packed sparse tensors, see `secateurs.io`);
    `arch` names the factory that rebuilds it ("module:function")."""
    from secateurs.io import save

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.secateurs"
        save(module, path, arch=arch)
        return os.path.getsize(path)


def measure(
    task: Task,
    model: nn.Module,
    data: TaskData,
    *,
    latency_runs: int = 20,
    split: str = "test",
    baseline: nn.Module | None = None,
) -> dict[str, Any]:
    """Metric on `split` and, for the deployable module, parameters, non-zeros, MACs per
    example, file bytes and median CPU latency (ms) on the task's example batch; with a
    `baseline` model, the speed-up against it timed interleaved (`compare_latency`)."""
    from secateurs.measure import (
        compare_latency,
        count_macs,
        count_nonzeros,
        count_parameters,
        measure_latency,
    )

    metrics = task.evaluate(model, data, split)
    dep = task.deployable(model)
    timing = measure_latency(dep, data.example, warmup=3, runs=latency_runs)
    out: dict[str, Any] = {
        "value": metrics[task.metric],
        "metrics": metrics,
        "params": count_parameters(dep),
        "nonzeros": count_nonzeros(dep),
        "macs": count_macs(dep, first_example(data.example)),
        "file_bytes": None,
        "latency_ms": timing.median * 1e3,
        "latency_iqr_ms": (timing.q3 - timing.q1) * 1e3,
    }
    if baseline is not None:
        paired = compare_latency(
            task.deployable(baseline), dep, data.example, rounds=max(latency_runs, 4)
        )
        out.update(paired.as_dict())
    try:
        out["file_bytes"] = saved_size(dep, task.arch)
    except Exception as e:  # a file-format failure loses one measure, not the whole run
        out["file_error"] = f"{type(e).__name__}: {e}"
    return out


def environment() -> dict[str, Any]:
    """Versions and threads, recorded with every result."""
    import secateurs

    return {
        "secateurs": secateurs.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpu threads": torch.get_num_threads(),
        "cpu cores": os.cpu_count(),
    }
