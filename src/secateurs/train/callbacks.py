"""Callbacks for `secateurs.train.fit`: per-step logging of loss and clipping statistics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from secateurs.train.loop import StepRecord


def format_step(record: StepRecord) -> str:
    """One line: step, loss and, when a rule ran, its norm before/after and what it did."""
    parts = [f"step {record.step:>5}", f"loss {record.loss:.4g}"]
    stats = record.clip
    if stats is not None:
        before = getattr(stats, "norm_before", None)
        after = getattr(stats, "norm_after", None)
        if before is not None:
            parts.append(f"norm {before:.4g}")
        if after is not None and getattr(stats, "clipped", False):
            parts.append(f"-> {after:.4g}")
        if getattr(stats, "nonfinite", None):
            parts.append(f"nonfinite {stats.nonfinite}")
    if record.skipped:
        parts.append("skipped")
    return "  ".join(parts)


class LogCallback:
    """Report every `every`-th step (and every skipped step) through `log` (default: print).

    Reading the loss and the statistics synchronises with the device, so on a GPU keep
    `every` large.
    """

    def __init__(self, every: int = 10, log: Callable[[str], Any] = print) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self.log = log

    def on_step_end(self, record: StepRecord, model: nn.Module) -> bool:
        if record.skipped or record.step % self.every == 0:
            self.log(format_step(record))
        return False


class HistoryCallback:
    """Collect per-step dictionaries (loss, skipped, and the rule's `as_dict()`) in `rows`."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def on_step_end(self, record: StepRecord, model: nn.Module) -> bool:
        row: dict[str, Any] = {"step": record.step, "epoch": record.epoch, "loss": record.loss}
        row["skipped"] = record.skipped
        if record.clip is not None and hasattr(record.clip, "as_dict"):
            for k, v in record.clip.as_dict().items():
                row.setdefault(f"clip_{k}" if k in row else k, v)
        self.rows.append(row)
        return False
