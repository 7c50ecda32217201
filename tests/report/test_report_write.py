"""`write_report`: aggregation against hand computations, files beside, safe HTML."""

import csv
import json
import statistics

import pytest

from secateurs.report import load_results, summarize, validate, write_report
from secateurs.report.results import mean_std, pareto_front


def test_summary_means_stds_and_ratios(results_doc):
    rows = {(r["model"], r["variant"]): r for r in summarize(results_doc)}
    base = rows[("cnn", "baseline")]
    vals = [0.98, 0.99, 1.00]
    assert base["value_mean"] == pytest.approx(statistics.fmean(vals))
    assert base["value_std"] == pytest.approx(statistics.stdev(vals))
    assert base["seeds"] == 3 and base["failed"] == 0
    pu = rows[("cnn", "prune-unstructured")]
    assert pu["compression"] == pytest.approx(80000 / 16000)
    assert pu["sparsity"] == pytest.approx(0.8)
    ps = rows[("cnn", "prune-structured")]
    lat = statistics.fmean([1.0, 1.01, 1.02])
    assert ps["speedup"] == pytest.approx(lat / (0.6 * lat))
    assert ps["size_ratio"] == pytest.approx(2.0)
    assert rows[("cnn", "clip-norm")]["delta_vs_baseline"] == pytest.approx(0.0, abs=1e-12)
    assert rows[("cnn", "clip-norm")]["clip_rate_mean"] == pytest.approx(0.4)
    assert base["clip_rate_mean"] is None


def test_mean_std_skips_missing_and_non_finite():
    assert mean_std([1.0, None, float("nan"), 3.0]) == (2.0, statistics.stdev([1, 3]), 2)
    assert mean_std([None]) == (None, None, 0)
    assert mean_std([5]) == (5.0, 0.0, 1)


def test_pareto_front():
    pts = [(10, 0.9), (5, 0.9), (5, 0.8), (1, 0.5), (20, 0.95)]
    assert sorted(pareto_front(pts, higher_is_better=True)) == [1, 3, 4]
    # lower is better: (1, 0.5) dominates everything with a higher cost
    assert pareto_front(pts, higher_is_better=False) == [3]


def test_validate_names_the_bad_field(results_doc):
    bad = dict(results_doc, runs=[{"model": "x", "variant": "y", "seed": 0, "metric": "m"}])
    with pytest.raises(ValueError, match="'value'"):
        validate(bad)
    with pytest.raises(ValueError, match="runs"):
        validate({"runs": []})
    with pytest.raises(ValueError, match="schema"):
        validate(dict(results_doc, schema="other/9"))
    with pytest.raises(TypeError):
        validate([1, 2])
    c = dict(results_doc["curves"][0], y_err=[0.1])
    with pytest.raises(ValueError, match="y_err"):
        validate(dict(results_doc, curves=[c]))


def test_write_report_files_and_numbers_round_trip(results_doc, tmp_path):
    files = write_report(results_doc, tmp_path / "r.html", png_dir=tmp_path / "png")
    assert files.html == tmp_path / "r.html"
    assert set(files.data) == {
        "summary.csv",
        "runs.csv",
        "curves.csv",
        "layers.csv",
        "traces.csv",
        "data.json",
    }
    assert set(files.pngs) == {"sparsity", "pareto", "layers", "traces"}
    assert all(p.stat().st_size > 5000 for p in files.pngs.values())
    # the CSV summary holds the same numbers as the JSON beside it
    data = json.loads((tmp_path / "r.data.json").read_text())
    with open(tmp_path / "r.summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(data["summary"]) == 8
    for row, js in zip(rows, data["summary"], strict=True):
        assert float(row["value_mean"]) == pytest.approx(js["value_mean"])
        assert row["model"] == js["model"] and row["variant"] == js["variant"]
    with open(tmp_path / "r.runs.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(results_doc["runs"])
    with open(tmp_path / "r.traces.csv", newline="") as f:
        trace_rows = list(csv.DictReader(f))
    assert len(trace_rows) == sum(len(t["grad_norm"]) for t in results_doc["traces"])


def test_html_is_self_contained_and_escaped(results_doc, tmp_path):
    write_report(results_doc, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert page.count("<svg") == 4  # sparsity, pareto, layers, traces (no sensitivity data)
    assert "<script" not in page.lower()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    # nothing is fetched: the only URLs are XML namespace names inside the SVGs
    for attr in ('src="http', "src='http", 'href="http', "url(http", "@import"):
        assert attr not in page
    assert "Test &lt;report&gt; &amp; co" in page and "<b>note</b>" not in page
    for section in ("summary", "sparsity", "pareto", "layers", "traces", "models", "data"):
        assert f'id="{section}"' in page


def test_failed_runs_are_shown_not_dropped(results_doc, tmp_path):
    doc = dict(results_doc)
    doc["runs"] = [
        *doc["runs"],
        {
            "model": "cnn",
            "variant": "prune-structured",
            "seed": 9,
            "metric": "accuracy",
            "value": None,
            "error": "ValueError: unsupported <layer>",
        },
    ]
    write_report(doc, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert "unsupported &lt;layer&gt;" in page
    row = next(
        r for r in summarize(doc) if r["variant"] == "prune-structured" and r["model"] == "cnn"
    )
    assert row["seeds"] == 4 and row["failed"] == 1


def test_bad_path_writes_nothing(results_doc, tmp_path):
    with pytest.raises(ValueError, match=r"\.html"):
        write_report(results_doc, tmp_path / "r.txt")
    with pytest.raises(ValueError, match="runs"):
        write_report({"runs": []}, tmp_path / "r.html")
    assert list(tmp_path.iterdir()) == []


def test_load_results_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "missing.json")
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_results(p)


def test_non_finite_numbers_become_null_in_json(results_doc, tmp_path):
    results_doc["runs"][0]["value"] = float("nan")
    results_doc["runs"][1]["latency_ms"] = float("inf")
    write_report(results_doc, tmp_path / "r.html")
    data = json.loads((tmp_path / "r.data.json").read_text())  # strict JSON parses
    assert data["results"]["runs"][0]["value"] is None
