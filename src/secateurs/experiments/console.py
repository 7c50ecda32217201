"""Console output shared by `secateurs compare` and `secateurs demo`: a summary table and
a log file in the output folder."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.table import Table

from secateurs.report.html import fmt_bytes, fmt_metric, fmt_ratio, fmt_speedup
from secateurs.report.results import finite, summarize


def summary_table(results: Mapping[str, Any], title: str | None = None) -> Table:
    """Mean ± std per model and variant, with compression and speed-up beside the metric."""
    table = Table(title=title, header_style="bold")
    for col in ("model", "variant", "metric", "Δ vs base", "non-zeros", "compression"):
        table.add_column(col, justify="left" if col in ("model", "variant") else "right")
    for col in ("speed-up", "file", "clip rate"):
        table.add_column(col, justify="right")
    for r in summarize(results):
        d = finite(r.get("delta_vs_baseline"))
        scale = 100.0 if r["metric"] == "accuracy" else 1.0
        delta = "–" if d is None or r["is_baseline"] else f"{d * scale:+.2f}"
        nz = finite(r.get("nonzeros_mean"))
        rate = finite(r.get("clip_rate_mean"))
        table.add_row(
            r["model"],
            r["variant"] + (f" ({r['failed']} failed)" if r["failed"] else ""),
            f"{r['metric']} {fmt_metric(r['metric'], r['value_mean'], r['value_std'])}",
            delta,
            "–" if nz is None else f"{round(nz):,}",
            fmt_ratio(r.get("compression")),
            fmt_speedup(r),
            fmt_bytes(r.get("file_bytes_mean")),
            "–" if rate is None else f"{rate:.2f}",
        )
    return table


@contextmanager
def log_to(path: Path, name: str) -> Iterator[logging.Logger]:
    """Log records of logger `name` (INFO and up) to `path`, streamed as they happen so that a
    crashed run still leaves its log; the file is replaced at the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(name)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        handler.close()
