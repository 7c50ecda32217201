"""A small training loop, reused for fine-tuning, search and comparison."""

from secateurs.train.loop import Callback, FitResult, StepRecord, fit

__all__ = ["Callback", "FitResult", "StepRecord", "fit"]
