"""A small training loop, reused for fine-tuning, search and comparison."""

from secateurs.train.callbacks import HistoryCallback, LogCallback, format_step
from secateurs.train.loop import Callback, FitResult, StepRecord, fit
from secateurs.train.norms import record_norms

__all__ = [
    "Callback",
    "FitResult",
    "HistoryCallback",
    "LogCallback",
    "StepRecord",
    "fit",
    "format_step",
    "record_norms",
]
