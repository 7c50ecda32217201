import math
import random

import pytest


def make_results(models=("cnn", "charlm"), seeds=3):
    """A results document with every section, shaped like `secateurs compare` output."""
    rng = random.Random(0)
    runs, traces, layers, curves = [], [], [], []
    spec = {"cnn": ("accuracy", True, 0.98), "charlm": ("perplexity", False, 8.0)}
    variants = [
        ("baseline", 1.0, 1.0, 1.0),
        ("clip-norm", 1.0, 1.0, 1.0),
        ("prune-unstructured", 1.0, 0.2, 1.0),
        ("prune-structured", 0.5, 0.5, 0.6),
    ]
    for model in models:
        metric, hib, base = spec[model]
        for variant, pf, nzf, lat in variants:
            for seed in range(seeds):
                runs.append(
                    {
                        "model": model,
                        "variant": variant,
                        "seed": seed,
                        "metric": metric,
                        "higher_is_better": hib,
                        "value": base + 0.01 * seed,
                        "metrics": {metric: base + 0.01 * seed, "loss": 0.1},
                        "params": int(80000 * pf),
                        "nonzeros": int(80000 * nzf),
                        "macs": 1_000_000,
                        "file_bytes": int(320000 * nzf),
                        "latency_ms": lat * (1 + 0.01 * seed),
                        "steps_to_target": 100 + 10 * seed,
                        "loss_spikes": seed,
                        "nonfinite_steps": 0,
                        "clip_rate": 0.4 if "clip" in variant else None,
                        "train_seconds": 5.0,
                    }
                )
            g = [math.exp(rng.gauss(0, 0.5)) for _ in range(120)]
            clip = variant == "clip-norm"
            traces.append(
                {
                    "model": model,
                    "variant": variant,
                    "seed": 0,
                    "grad_norm": g,
                    "threshold": 1.0 if clip else None,
                    "clipped_steps": [i for i, x in enumerate(g) if x > 1] if clip else [],
                }
            )
            if variant.startswith("prune"):
                for name in ("stem.0.weight", "block1.conv1.weight", "fc.weight"):
                    layers.append(
                        {
                            "model": model,
                            "variant": variant,
                            "layer": name,
                            "params": 1000,
                            "nonzeros": rng.randint(100, 900),
                        }
                    )
        xs = [0.0, 0.3, 0.5, 0.7, 0.9]
        curves.append(
            {
                "model": model,
                "kind": "sparsity",
                "name": "one-shot",
                "x_label": "sparsity",
                "y_label": metric,
                "x": xs,
                "y": [base - x**3 * 0.3 for x in xs],
                "y_err": [0.01] * 5,
            }
        )
    return {
        "schema": "secateurs.results/1",
        "title": "Test <report> & co",
        "runs": runs,
        "traces": traces,
        "layers": layers,
        "curves": curves,
        "environment": {"torch": "x"},
        "config": {"seeds": seeds},
        "notes": ["a <b>note</b>"],
    }


@pytest.fixture
def results_doc():
    return make_results()
