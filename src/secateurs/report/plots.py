"""Figures of the report, drawn with matplotlib's object API on the Agg backend.

Every function takes plain results data and returns a `Figure` (or None when there is
nothing to draw); `to_svg` turns a figure into an inline `<svg>` element and `save_png`
writes a PNG atomically.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from secateurs.io.atomic import atomic_path
from secateurs.report.results import finite, pareto_front

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
CLIPPED = "#111111"  # clipped-step marks: black, a colour no variant uses


def colors(names: Sequence[str]) -> dict[str, str]:
    """A stable colour per name (variants keep their colour across all figures)."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(dict.fromkeys(names))}


# Sizes chosen so that a figure shown at the report's width (about 1270 px) keeps its text at
# least as large as the page's small print.
LEGEND = 9
SMALL = 9


def _grid(n: int, ncols: int = 2, size: tuple[float, float] = (5.6, 4.0)) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _count(x: float, _pos: int | None = None) -> str:
    """Tick label for a count: 950, 12k, 3.4M."""
    for div, unit in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def _by_model(items: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for it in items:
        out.setdefault(str(it["model"]), []).append(it)
    return out


def curves_figure(curves: Sequence[Mapping[str, Any]], kind: str) -> Figure | None:
    """One panel per model; each curve of `kind` as a line with error bars where given, an
    optional horizontal `reference` line and an optional `highlight_x` point (a star)."""
    chosen = [c for c in curves if c.get("kind", "sparsity") == kind and c.get("x")]
    if not chosen:
        return None
    groups = _by_model(chosen)
    fig, axes = _grid(len(groups))
    cmap = colors([str(c["name"]) for c in chosen])
    for ax, (model, cs) in zip(axes, groups.items(), strict=True):
        for c in cs:
            x = [finite(v) for v in c["x"]]
            y = [finite(v) for v in c["y"]]
            err = [finite(v) or 0.0 for v in c["y_err"]] if c.get("y_err") else None
            ax.errorbar(
                x,
                y,
                yerr=err,
                marker="o",
                markersize=3.5,
                capsize=3,
                linewidth=1.4,
                color=cmap[str(c["name"])],
                label=str(c["name"]),
            )
            if c.get("reference") is not None:
                ax.axhline(
                    float(c["reference"]),
                    color="#555555",
                    linestyle=":",
                    linewidth=1,
                    label=str(c.get("reference_label", "reference")),
                )
            hx = finite(c.get("highlight_x"))
            if hx is not None and hx in x:
                ax.plot(
                    [hx],
                    [y[x.index(hx)]],
                    marker="*",
                    markersize=13,
                    linestyle="none",
                    color=CLIPPED,
                    label=str(c.get("highlight_label", "chosen")),
                )
            ax.set_xlabel(str(c.get("x_label", "")))
            ax.set_ylabel(str(c.get("y_label", "")))
        ax.set_title(model)
        ax.grid(alpha=0.3)
        if len(cs) > 1 or any(c.get("reference") is not None for c in cs):
            ax.legend(fontsize=LEGEND, loc="best")
    return fig


def pareto_figure(
    summary: Sequence[Mapping[str, Any]], palette: Mapping[str, str] | None = None
) -> Figure | None:
    """Per model: metric (mean +- std over seeds) against non-zero parameters, with the
    Pareto front (fewest non-zeros for the best metric) drawn as a line."""
    rows = [r for r in summary if r.get("nonzeros_mean") and r.get("value_mean") is not None]
    if not rows:
        return None
    groups = _by_model(rows)
    fig, axes = _grid(len(groups))
    cmap = palette or colors([str(r["variant"]) for r in summary])
    for ax, (model, rs) in zip(axes, groups.items(), strict=True):
        pts = [(float(r["nonzeros_mean"]), float(r["value_mean"])) for r in rs]
        for r, (x, y) in zip(rs, pts, strict=True):
            ax.errorbar(
                [x],
                [y],
                yerr=[finite(r.get("value_std")) or 0.0],
                marker="o",
                capsize=3,
                color=cmap[str(r["variant"])],
                label=str(r["variant"]),
            )
        front = _front(rs)
        if len(front) >= 2:  # one point alone beats everything: there is no front to draw
            ax.plot(
                [pts[i][0] for i in front],
                [pts[i][1] for i in front],
                "--",
                color="#444444",
                label="Pareto front",
            )
        ax.xaxis.set_major_formatter(FuncFormatter(_count))
        ax.set_xlim(left=0)
        ax.set_xlabel("non-zero parameters")
        ax.set_ylabel(
            str(rs[0]["metric"])
            + (" (higher is better)" if rs[0]["higher_is_better"] else " (lower is better)")
        )
        ax.set_title(model)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=LEGEND, loc="best")
    return fig


def _front(rows: Sequence[Mapping[str, Any]]) -> list[int]:
    pts = [(float(r["nonzeros_mean"]), float(r["value_mean"])) for r in rows]
    return sorted(pareto_front(pts, bool(rows[0]["higher_is_better"])), key=lambda i: pts[i][0])


def pareto_caption(summary: Sequence[Mapping[str, Any]]) -> str:
    """The caption of `pareto_figure`, saying whether a front was drawn (true to the data)."""
    rows = [r for r in summary if r.get("nonzeros_mean") and r.get("value_mean") is not None]
    drawn = any(len(_front(rs)) >= 2 for rs in _by_model(rows).values())
    text = "Metric against non-zero parameters, mean ± std over seeds"
    if drawn:
        return text + (
            "; dashed: the Pareto front (the variants that no other beats in both non-zeros "
            "and metric)."
        )
    return (
        text + "; no Pareto front: one variant has both the fewest non-zeros and the best metric."
    )


def layers_figure(
    layers: Sequence[Mapping[str, Any]],
    palette: Mapping[str, str] | None = None,
    max_layers: int = 40,
) -> Figure | None:
    """Per model (stacked, each panel as tall as its layer list): sparsity of each layer,
    one bar per pruned variant."""
    rows = [r for r in layers if r.get("params")]
    if not rows:
        return None
    groups = _by_model(rows)
    cmap = palette or colors([str(r["variant"]) for r in rows])
    shapes = []
    for ls in groups.values():
        names = list(dict.fromkeys(str(r["layer"]) for r in ls))[:max_layers]
        variants = list(dict.fromkeys(str(r["variant"]) for r in ls))
        shapes.append((names, variants))
    sizes = [max(2.0, 0.24 * len(n) * len(v) + 1.0) for n, v in shapes]
    fig = Figure(figsize=(9.0, sum(sizes) + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(groups), 1, squeeze=False, height_ratios=sizes).ravel().tolist()
    for ax, (model, ls), (names, variants) in zip(axes, groups.items(), shapes, strict=True):
        height = 0.8 / len(variants)
        for k, v in enumerate(variants):
            vals = {str(r["layer"]): r for r in ls if str(r["variant"]) == v}
            ys, ws = [], []
            for i, n in enumerate(names):
                r = vals.get(n)
                if r is not None:
                    ys.append(i + k * height)
                    ws.append(1 - float(r["nonzeros"]) / float(r["params"]))
            ax.barh(ys, ws, height=height, color=cmap.get(v, PALETTE[k % len(PALETTE)]), label=v)
        pruned = {str(r["layer"]) for r in ls if float(r["nonzeros"]) < float(r["params"])}
        for i, n in enumerate(names):
            if n not in pruned:  # a bar of width 0 would look like a missing value
                y = i + 0.4 - height / 2
                ax.text(0.01, y, "dense (not pruned)", va="center", fontsize=SMALL)
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(names))], names, fontsize=SMALL)
        ax.set_ylim(len(names) - 0.2 + 0.4 - height / 2, -0.6 + 0.4 - height / 2)
        ax.set_xlim(0, 1)
        ax.set_xlabel("sparsity (fraction of zeros)", fontsize=10)
        ax.set_title(model, fontsize=12)
        ax.grid(alpha=0.3, axis="x")
        ax.legend(fontsize=LEGEND, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def traces_figure(
    traces: Sequence[Mapping[str, Any]], palette: Mapping[str, str] | None = None
) -> Figure | None:
    """Per model: gradient norm per step for each variant (log scale); for a trace with a
    norm threshold, the threshold as a dashed line and the steps where clipping acted as
    black dots."""
    chosen = [t for t in traces if t.get("grad_norm")]
    if not chosen:
        return None
    groups = _by_model(chosen)
    fig, axes = _grid(len(groups))
    cmap = palette or colors([str(t["variant"]) for t in chosen])
    for ax, (model, ts) in zip(axes, groups.items(), strict=True):
        marked = False
        # traces with a threshold last, so that they and their marks lie on top
        for t in sorted(ts, key=lambda t: finite(t.get("threshold")) is not None):
            g = [finite(v) for v in t["grad_norm"]]
            color = cmap[str(t["variant"])]
            has_thr = finite(t.get("threshold")) is not None
            ax.plot(
                range(len(g)),
                g,
                linewidth=1.0 if has_thr else 0.7,
                alpha=1.0 if has_thr else 0.75,
                color=color,
                label=str(t["variant"]),
            )
            thr = finite(t.get("threshold"))
            if thr is not None:
                ax.axhline(thr, color=color, linestyle="--", linewidth=1, label="clip threshold")
            if thr is None:
                continue  # clipped steps are marked where the threshold is drawn
            steps = [s for s in t.get("clipped_steps", []) if 0 <= s < len(g) and g[s] is not None]
            if steps:
                ax.plot(
                    steps,
                    [g[s] for s in steps],
                    linestyle="none",
                    marker="o",
                    markersize=2.2,
                    color=CLIPPED,
                    label=None if marked else "clipped step",
                )
                marked = True
        ax.set_yscale("log")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("gradient norm (before clipping)")
        ax.set_title(model)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=LEGEND, loc="best")
    return fig


def to_svg(fig: Figure, salt: str) -> str:
    """The figure as an `<svg>` element to inline in HTML (text kept as text).

    `salt` makes the element ids of this figure unique within the page.
    """
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def save_png(fig: Figure, path: str | os.PathLike, dpi: int = 140) -> None:
    """Write the figure as a PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
