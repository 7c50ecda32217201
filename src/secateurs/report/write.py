"""`write_report`: results in, one self-contained HTML file and its numbers as CSV/JSON out."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secateurs.io.atomic import write_text_atomic
from secateurs.report import html as H
from secateurs.report.results import summarize, validate


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by `write_report`: the HTML page, the data files beside it, and PNG
    copies of the figures when asked for."""

    html: Path
    data: dict[str, Path] = field(default_factory=dict)
    pngs: dict[str, Path] = field(default_factory=dict)


def to_csv(rows: Sequence[Mapping[str, Any]], columns: list[str] | None = None) -> str:
    """Rows of dicts as CSV text: the columns are every key seen, in first-seen order;
    nested values (dicts, lists) are written as JSON."""
    cols = columns or list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r.get(k)) for k in cols})
    return buf.getvalue()


def _cell(v: Any) -> Any:
    if isinstance(v, dict | list):
        return json.dumps(v, sort_keys=True)
    return "" if v is None else v


def _long_curves(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for c in results.get("curves", []):
        errs = c.get("y_err") or [None] * len(c["x"])
        for x, y, e in zip(c["x"], c["y"], errs, strict=True):
            out.append(
                {
                    "model": c["model"],
                    "kind": c.get("kind", "sparsity"),
                    "name": c["name"],
                    "x_label": c.get("x_label"),
                    "y_label": c.get("y_label"),
                    "x": x,
                    "y": y,
                    "y_err": e,
                }
            )
    return out


def _long_traces(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for t in results.get("traces", []):
        clipped = set(t.get("clipped_steps", []))
        losses = t.get("loss") or []
        for step, g in enumerate(t.get("grad_norm", [])):
            out.append(
                {
                    "model": t["model"],
                    "variant": t["variant"],
                    "seed": t.get("seed"),
                    "step": step,
                    "grad_norm": g,
                    "loss": losses[step] if step < len(losses) else None,
                    "clipped": step in clipped,
                    "threshold": t.get("threshold"),
                }
            )
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def _sanitize(v: Any) -> Any:
    """JSON has no NaN or infinity: write them as null (the CSVs keep the strings)."""
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None
    if isinstance(v, dict):
        return {k: _sanitize(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_sanitize(x) for x in v]
    return v


def dump_json(data: Any) -> str:
    """Strict JSON (non-finite numbers become null), indented, keys in insertion order."""
    return json.dumps(_sanitize(data), indent=1, default=_json_default, allow_nan=False) + "\n"


def write_report(
    results: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    png_dir: str | os.PathLike | None = None,
) -> ReportFiles:
    """Write the HTML report for `results` (see `secateurs.report.results`) to `path`.

    Beside it, with the same stem: `.summary.csv` (mean ± std per model and variant),
    `.runs.csv` (every run), `.curves.csv`, `.layers.csv`, `.traces.csv` (the plotted data,
    long format) and `.data.json` (results and summary). Every file is written atomically,
    the HTML last. With `png_dir`, each figure is also saved there as a PNG.
    """
    from secateurs.report import plots

    res = validate(results)
    out = Path(path)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"path must end in .html, got {str(out)!r}")
    summary = summarize(res)
    stem = out.with_suffix("")
    data: dict[str, Path] = {}

    def beside(kind: str, text: str) -> None:
        p = Path(f"{stem}.{kind}")
        write_text_atomic(p, text)
        data[kind] = p

    beside("summary.csv", to_csv(summary))
    beside("runs.csv", to_csv([{k: v for k, v in r.items()} for r in res["runs"]]))
    if res.get("curves"):
        beside("curves.csv", to_csv(_long_curves(res)))
    if res.get("layers"):
        beside("layers.csv", to_csv(list(res["layers"])))
    if res.get("traces"):
        beside("traces.csv", to_csv(_long_traces(res)))
    beside("data.json", dump_json({"results": res, "summary": summary}))

    palette = plots.colors([str(r["variant"]) for r in res["runs"]])
    figures = {
        "sparsity": (
            plots.curves_figure(res.get("curves", []), "sparsity"),
            "Metric against sparsity: mean ± std (over seeds or folds) at each sparsity.",
        ),
        "sensitivity": (
            plots.curves_figure(res.get("curves", []), "sensitivity"),
            "Sensitivity scan: the metric when one layer alone is pruned to each sparsity.",
        ),
        "pareto": (
            plots.pareto_figure(summary, palette),
            plots.pareto_caption(summary),
        ),
        "layers": (
            plots.layers_figure(res.get("layers", []), palette),
            "Sparsity of each layer after pruning (first seed).",
        ),
        "traces": (
            plots.traces_figure(res.get("traces", []), palette),
            "Global gradient norm at each optimizer step, before clipping (first seed); "
            "dashed: the norm-clipping threshold; black dots: steps where norm clipping acted.",
        ),
    }
    pngs: dict[str, Path] = {}
    svgs: dict[str, str] = {}
    for name, (fig, _) in figures.items():
        if fig is None:
            continue
        svgs[name] = plots.to_svg(fig, salt=name)
        if png_dir is not None:
            p = Path(png_dir) / f"{stem.name}-{name}.png"
            plots.save_png(fig, p)
            pngs[name] = p

    title = str(res.get("title") or "secateurs report")
    sections = [
        (
            "summary",
            "Summary",
            H.summary_table(summary)
            + '<p class="note">Δ vs baseline: difference of the mean metric to the same model '
            "trained without clipping or pruning. Compression: baseline non-zero parameters / "
            "non-zero parameters. Speed-up: baseline CPU latency / latency, timed interleaved with "
            "the baseline (median ratio over rounds); ≈1 (noise) when the spread of the ratios "
            "includes 1 (unstructured zeros are still computed, so they rarely speed anything "
            "up). "
            "Steps to target: optimizer steps until the validation metric first met the task's "
            "target.</p>",
        ),
        (
            "sparsity",
            "Metric against sparsity",
            H.figure(svgs.get("sparsity"), figures["sparsity"][1]),
        ),
        (
            "sensitivity",
            "Per-layer sensitivity",
            H.figure(svgs.get("sensitivity"), figures["sensitivity"][1]),
        ),
        (
            "pareto",
            "Pareto: metric against size",
            H.figure(svgs.get("pareto"), figures["pareto"][1]),
        ),
        ("layers", "Per-layer sparsity", H.figure(svgs.get("layers"), figures["layers"][1])),
        (
            "traces",
            "Gradient norms and clipping",
            H.figure(svgs.get("traces"), figures["traces"][1]),
        ),
        ("models", "Per-model comparison", H.model_tables(res, summary)),
    ]
    notes = res.get("notes") or []
    if notes:
        sections.append(
            ("notes", "Notes", "<ul>" + "".join(f"<li>{H.esc(n)}</li>" for n in notes) + "</ul>")
        )
    files = "".join(
        f'<li><a href="{H.esc(p.name)}">{H.esc(p.name)}</a></li>' for p in data.values()
    )
    sections.append(("data", "Data files", f'<ul class="files">{files}</ul>'))
    present = [(k, t, b) for k, t, b in sections if b]
    nav = "".join(f'<a href="#{k}">{H.esc(t)}</a>' for k, t, _ in present)
    body = [
        f'<header><h1>{H.esc(title)}</h1><p class="meta">{H.environment(res)}</p>'
        f"{H.config_block(res)}</header>",
        f"<nav>{nav}</nav>",
        *(f'<section id="{k}"><h2>{H.esc(t)}</h2>{b}</section>' for k, t, b in present),
    ]
    write_text_atomic(out, H.page(title, "\n".join(body)))
    return ReportFiles(html=out, data=data, pngs=pngs)
