"""Honest measurements: parameters, non-zeros, MACs, latency, file size, task metrics."""

import os

from secateurs.measure.counts import count_nonzeros, count_parameters, parameter_bytes
from secateurs.measure.latency import (
    Speedup,
    Timing,
    compare_latency,
    measure_latency,
    time_callable,
)
from secateurs.measure.macs import count_macs
from secateurs.measure.metrics import accuracy, mean_loss


def file_size(path: str | os.PathLike) -> int:
    """Size of a file in bytes."""
    return os.path.getsize(path)


__all__ = [
    "Speedup",
    "Timing",
    "accuracy",
    "compare_latency",
    "count_macs",
    "count_nonzeros",
    "count_parameters",
    "file_size",
    "mean_loss",
    "measure_latency",
    "parameter_bytes",
    "time_callable",
]
