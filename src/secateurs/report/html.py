"""Assemble the self-contained HTML report: inline CSS, inline SVG plots, no scripts and
no network (a Content-Security-Policy forbids every fetch)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from secateurs.report.results import finite, group_runs, mean_std

CSS = """
:root { --fg:#1d2125; --muted:#5f6b76; --line:#d9dee3; --accent:#2b6cb0; --bg:#ffffff; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); margin: 0 auto; max-width: 1320px;
       padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px;
     border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
p.meta, p.note, figcaption { color: var(--muted); font-size: 12.5px; }
nav { margin: 14px 0 8px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
nav a:hover { text-decoration: underline; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 12.5px; width: 100%; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: right;
         white-space: nowrap; }
th { background: #f3f5f7; font-weight: 600; position: sticky; top: 0; white-space: normal;
     vertical-align: bottom; }
td.l, th.l { text-align: left; }
td.num { font-variant-numeric: tabular-nums; }
tr.base td { background: #f7fafc; font-weight: 600; }
td.good { color: #1e7b34; } td.bad { color: #b42318; }
.scroll { overflow-x: auto; }
figure { margin: 10px 0 18px; }
figure svg { max-width: 100%; height: auto; display: block; }
code { background: #f3f5f7; padding: 1px 4px; border-radius: 3px; }
ul.files li { margin: 2px 0; }
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt_num(x: Any, digits: int = 3) -> str:
    v = finite(x)
    if v is None:
        return "–"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 10 ** (-digits)):
        return f"{v:.{digits}g}"
    if float(v).is_integer() and abs(v) >= 100:
        return f"{int(v):,}"
    return f"{v:.{digits}g}" if abs(v) >= 1000 else f"{v:.{digits}f}".rstrip("0").rstrip(".")


def fmt_int(x: Any) -> str:
    v = finite(x)
    return "–" if v is None else f"{round(v):,}"


def fmt_bytes(x: Any) -> str:
    v = finite(x)
    if v is None:
        return "–"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(v) < 1000 or unit == "GB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1000
    return "–"


def fmt_ratio(x: Any) -> str:
    v = finite(x)
    return "–" if v is None else f"{v:.2f}×"


def fmt_speedup(row: Mapping[str, Any]) -> str:
    """The speed-up of a summary row, or "≈1 (noise)" when the baseline and the variant,
    timed interleaved, could not be told apart (the spread of the ratios contains 1)."""
    if row.get("speedup_within_noise"):
        return "≈1 (noise)"
    return fmt_ratio(row.get("speedup"))


def fmt_metric(metric: str, mean: Any, std: Any = None) -> str:
    """Accuracy in percent, other metrics as they are; `± std` where known."""
    m = finite(mean)
    if m is None:
        return "–"
    scale, unit, digits = (100.0, " %", 1) if metric == "accuracy" else (1.0, "", 2)
    s = finite(std)
    text = f"{m * scale:.{digits}f}"
    if s is not None:
        text += f" ± {s * scale:.{digits}f}"
    return text + unit


def fmt_pm(mean: Any, std: Any, digits: int = 2) -> str:
    m = finite(mean)
    if m is None:
        return "–"
    s = finite(std)
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if s else "")


def table(head: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] = ()) -> str:
    """An HTML table; cells are already-escaped HTML. The first column is left-aligned."""
    th = "".join(f'<th class="{"l" if i < 2 else ""}">{esc(h)}</th>' for i, h in enumerate(head))
    body = []
    for k, r in enumerate(rows):
        cls = f' class="{classes[k]}"' if k < len(classes) and classes[k] else ""
        tds = "".join(f'<td class="{"l" if i < 2 else "num"}">{c}</td>' for i, c in enumerate(r))
        body.append(f"<tr{cls}>{tds}</tr>")
    rows_html = "".join(body)
    return (
        f'<div class="scroll"><table><thead><tr>{th}</tr></thead>'
        f"<tbody>{rows_html}</tbody></table></div>"
    )


def _delta(row: Mapping[str, Any]) -> str:
    d = finite(row.get("delta_vs_baseline"))
    if d is None or row["is_baseline"]:
        return "–"
    scale = 100.0 if row["metric"] == "accuracy" else 1.0
    good = (d > 0) == bool(row["higher_is_better"]) if d != 0 else None
    cls = "" if good is None else ("good" if good else "bad")
    unit = " pt" if row["metric"] == "accuracy" else ""
    return f'<span class="{cls}">{d * scale:+.2f}{unit}</span>'


def summary_table(summary: Sequence[Mapping[str, Any]]) -> str:
    head = [
        "model",
        "variant",
        "metric",
        "Δ vs baseline",
        "sparsity",
        "compression",
        "speed-up",
        "file size",
        "steps to target",
        "clip rate",
        "seeds",
    ]
    rows, classes = [], []
    for r in summary:
        rows.append(
            [
                esc(r["model"]),
                esc(r["variant"]),
                f"{esc(r['metric'])} {fmt_metric(r['metric'], r['value_mean'], r['value_std'])}",
                _delta(r),
                fmt_num(r.get("sparsity"), 3),
                fmt_ratio(r.get("compression")),
                fmt_speedup(r),
                fmt_bytes(r.get("file_bytes_mean")),
                fmt_pm(r.get("steps_to_target_mean"), r.get("steps_to_target_std"), 0),
                fmt_pm(r.get("clip_rate_mean"), r.get("clip_rate_std"), 2),
                f"{r['seeds'] - r['failed']}/{r['seeds']}",
            ]
        )
        classes.append("base" if r["is_baseline"] else "")
    return table(head, rows, classes)


def model_tables(results: Mapping[str, Any], summary: Sequence[Mapping[str, Any]]) -> str:
    """One detailed table per model: every measure, mean ± std over seeds."""
    groups = group_runs(results["runs"])
    parts = []
    models = list(dict.fromkeys(r["model"] for r in summary))
    for model in models:
        rows, classes = [], []
        extra_keys: list[str] = []
        for (m, _), runs in groups.items():
            if m == model:
                for run in runs:
                    for k in run.get("metrics") or {}:
                        if k not in extra_keys and k != run["metric"]:
                            extra_keys.append(k)
        head = [
            "variant",
            "seeds",
            "metric",
            *extra_keys,
            "params",
            "non-zeros",
            "compression",
            "MACs",
            "file size",
            "latency (ms)",
            "speed-up",
            "steps to target",
            "loss spikes",
            "non-finite steps",
            "clip rate",
            "train (s)",
        ]
        errors = []
        for r in summary:
            if r["model"] != model:
                continue
            runs = groups[(model, r["variant"])]
            extras = []
            for k in extra_keys:
                mean, std, _ = mean_std((run.get("metrics") or {}).get(k) for run in runs)
                extras.append(fmt_pm(mean, std, 3))
            errors += [
                f"{esc(r['variant'])} seed {esc(x.get('seed'))}: {esc(x['error'])}"
                for x in runs
                if x.get("error")
            ]
            rows.append(
                [
                    esc(r["variant"]),
                    f"{r['seeds'] - r['failed']}/{r['seeds']}",
                    fmt_metric(r["metric"], r["value_mean"], r["value_std"]),
                    *extras,
                    fmt_int(r.get("params_mean")),
                    fmt_int(r.get("nonzeros_mean")),
                    fmt_ratio(r.get("compression")),
                    fmt_int(r.get("macs_mean")),
                    fmt_bytes(r.get("file_bytes_mean")),
                    fmt_pm(r.get("latency_ms_mean"), r.get("latency_ms_std"), 3),
                    fmt_speedup(r),
                    fmt_pm(r.get("steps_to_target_mean"), r.get("steps_to_target_std"), 0),
                    fmt_pm(r.get("loss_spikes_mean"), r.get("loss_spikes_std"), 1),
                    fmt_pm(r.get("nonfinite_steps_mean"), r.get("nonfinite_steps_std"), 1),
                    fmt_pm(r.get("clip_rate_mean"), r.get("clip_rate_std"), 2),
                    fmt_pm(r.get("train_seconds_mean"), r.get("train_seconds_std"), 1),
                ]
            )
            classes.append("base" if r["is_baseline"] else "")
        first = next(r for r in summary if r["model"] == model)
        direction = "higher is better" if first["higher_is_better"] else "lower is better"
        parts.append(f"<h3>{esc(model)} <small>({esc(first['metric'])}, {direction})</small></h3>")
        parts.append(table(head, rows, classes))
        if errors:
            parts.append('<p class="note">Failed runs: ' + "; ".join(errors) + "</p>")
        file_errors = sorted(
            {
                str(x["file_error"])
                for (m, _), rs in groups.items()
                if m == model
                for x in rs
                if x.get("file_error")
            }
        )
        if file_errors:
            parts.append(
                '<p class="note">File size not measured: '
                + "; ".join(esc(e) for e in file_errors)
                + "</p>"
            )
    return "\n".join(parts)


def environment(results: Mapping[str, Any]) -> str:
    env = results.get("environment") or {}
    bits = [f"{esc(k)} {esc(v)}" for k, v in env.items()]
    created = results.get("created")
    if created:
        bits.insert(0, f"created {esc(created)}")
    return " · ".join(bits)


def config_block(results: Mapping[str, Any]) -> str:
    cfg = results.get("config") or {}
    if not cfg:
        return ""
    items = "".join(f"<li><code>{esc(k)}</code>: {esc(v)}</li>" for k, v in cfg.items())
    return f"<details><summary>Configuration</summary><ul>{items}</ul></details>"


def figure(svg: str | None, caption: str) -> str:
    if not svg:
        return ""
    return f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>"


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
