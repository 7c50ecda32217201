"""The speed-up shown is the interleaved (paired) one when runs have it, and a spread that
includes 1 is shown as noise, not as a number."""

from secateurs.report.html import fmt_speedup
from secateurs.report.results import summarize


def _run(variant, latency, paired=None, seed=0):
    run = {"model": "m", "variant": variant, "seed": seed, "metric": "accuracy", "value": 0.9,
           "latency_ms": latency, "nonzeros": 10, "params": 10}  # fmt: skip
    if paired is not None:
        run["paired_speedup"], run["paired_speedup_q1"], run["paired_speedup_q3"] = paired
    return run


def test_paired_speedup_replaces_the_ratio_of_separate_latencies():
    rows = {
        r["variant"]: r
        for r in summarize(
            {
                "runs": [
                    _run("baseline", 10.0),
                    _run("same-arch", 0.04, paired=(1.02, 0.97, 1.06)),  # the 257x of the issue
                    _run("smaller", 4.0, paired=(2.4, 2.2, 2.6)),
                    _run("old", 5.0),  # a results file from before paired timing
                ]
            }
        )
    }
    assert rows["same-arch"]["speedup"] == 1.02 and rows["same-arch"]["speedup_within_noise"]
    assert fmt_speedup(rows["same-arch"]) == "≈1 (noise)"
    assert rows["smaller"]["speedup_within_noise"] is False
    assert fmt_speedup(rows["smaller"]) == "2.40×"
    assert rows["old"]["speedup"] == 2.0 and rows["old"]["speedup_within_noise"] is None
    assert fmt_speedup(rows["baseline"]) == "1.00×"


def test_seeds_are_averaged_before_judging_the_noise():
    rows = summarize(
        {
            "runs": [
                _run("baseline", 10.0),
                _run("v", 5.0, paired=(1.3, 1.1, 1.5), seed=0),
                _run("v", 5.0, paired=(1.1, 0.8, 1.2), seed=1),
            ]
        }
    )
    v = next(r for r in rows if r["variant"] == "v")
    # mean ratio 1.2, but the mean quartiles (0.95 to 1.35) include 1: noise, said so
    assert abs(v["speedup"] - 1.2) < 1e-12 and v["speedup_within_noise"] is True
