"""`secateurs compare` on a tiny budget: complete, consistent results."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from secateurs.cli import app
from secateurs.clip import GradNormRecorder
from secateurs.experiments.compare import (
    VARIANTS,
    CompareConfig,
    replace_deployable,
    run_compare,
    write_outputs,
)
from secateurs.experiments.tracking import ValidationTracker, loss_spikes
from secateurs.report import validate
from secateurs.zoo import TASKS


@pytest.mark.slow
def test_compare_tiny_budget_is_complete(tmp_path):
    cfg = CompareConfig(
        models=("mlp", "wgan"),
        seeds=2,
        steps=4,
        finetune_steps=2,
        eval_every=2,
        latency_runs=1,
        sparsities=(0.0, 0.5),
    )
    partial = []
    res = run_compare(cfg, progress=False, on_partial=partial.append)
    assert len(partial) == 4  # after each (model, seed)
    validate(res)
    runs = res["runs"]
    keys = [(r["model"], r["variant"], r["seed"]) for r in runs]
    assert sorted(keys) == sorted((m, v, s) for m in cfg.models for v in VARIANTS for s in (0, 1))
    for r in runs:
        assert "error" not in r, r
        for k in ("value", "params", "nonzeros", "macs", "file_bytes", "latency_ms"):
            assert r[k] is not None and math.isfinite(r[k]) and r[k] > 0, (k, r)
        assert r["loss_spikes"] >= 0 and r["nonfinite_steps"] == 0
        if r["variant"].startswith("clip"):
            assert 0.0 <= r["clip_rate"] <= 1.0
        else:
            assert r["clip_rate"] is None
    by = {(r["model"], r["variant"], r["seed"]): r for r in runs}
    for m in cfg.models:
        base = by[(m, "baseline", 0)]
        pu = by[(m, "prune-unstructured", 0)]
        ps = by[(m, "prune-structured", 0)]
        assert pu["params"] == base["params"] and pu["nonzeros"] < 0.6 * base["params"]
        assert ps["params"] < base["params"]  # physically smaller
        assert ps["macs"] < base["macs"]
        assert by[(m, "clip-norm", 0)]["clip_threshold"] > 0
    # a GAN's critic is clipped at a threshold from its own gradients, not the generator's
    gan = by[("wgan", "clip-norm", 0)]
    assert gan["critic_clip_threshold"] > 0
    assert gan["critic_clip_threshold"] != gan["clip_threshold"]
    assert "critic_clip_threshold" not in by[("mlp", "clip-norm", 0)]
    # GAN metric is the Frechet distance: lower is better
    assert by[("wgan", "baseline", 0)]["higher_is_better"] is False
    # traces of the first seed only, one gradient norm per optimizer step
    assert {(t["model"], t["seed"]) for t in res["traces"]} == {("mlp", 0), ("wgan", 0)}
    assert all(len(t["grad_norm"]) == 4 for t in res["traces"])
    norm = next(t for t in res["traces"] if t["variant"] == "clip-norm" and t["model"] == "mlp")
    base_trace = next(
        t for t in res["traces"] if t["variant"] == "baseline" and t["model"] == "mlp"
    )
    # the norm threshold is the median of the baseline's norms (same seed, same batches)
    assert norm["threshold"] == pytest.approx(
        float(torch.tensor(base_trace["grad_norm"]).quantile(0.5))
    )
    assert norm["clipped_steps"] == [
        i for i, g in enumerate(norm["grad_norm"]) if g > norm["threshold"] * (1 + 1e-6)
    ]
    # the curves: mean ± std over the 2 seeds at each sparsity, for two training sources
    assert len(res["curves"]) == 4
    assert all(len(c["y_err"]) == 2 and c["x"][0] == 0.0 for c in res["curves"])
    assert {c["model"] for c in res["curves"]} == {"mlp", "wgan"}
    assert any(layer["model"] == "wgan" for layer in res["layers"])
    paths = write_outputs(res, tmp_path)
    assert json.loads(paths["results"].read_text())["runs"][0]["model"] == "mlp"
    assert paths["report"].read_text().count("<svg") >= 4


def test_runs_are_reproducible():
    cfg = CompareConfig(
        models=("mlp",), seeds=1, steps=3, variants=("baseline",), latency_runs=1, sparsities=(0.0,)
    )
    a = run_compare(cfg, progress=False)["runs"][0]
    b = run_compare(cfg, progress=False)["runs"][0]
    assert a["value"] == b["value"] and a["metrics"]["loss"] == b["metrics"]["loss"]


def test_compare_cli_writes_results_report_and_log(tmp_path):
    out = tmp_path / "cmp"
    r = CliRunner().invoke(
        app,
        [
            "compare",
            "--models",
            "mlp",
            "--seeds",
            "1",
            "--steps",
            "3",
            "--finetune-steps",
            "2",
            "--latency-runs",
            "1",
            "--variants",
            "baseline,clip-norm",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    names = {p.name for p in out.iterdir()}
    assert {"compare.log", "results.json", "runs.csv", "report.html", "report.summary.csv"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    assert (out / "report.html").is_file()
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [x["variant"] for x in runs] == ["baseline", "clip-norm"]
    log = (out / "compare.log").read_text()
    assert "mlp seed 0 clip-norm" in log
    assert "results: " in r.output and "report: " in r.output


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"models": ("nope",)}, "unknown model"),
        ({"models": ()}, "models is empty"),
        ({"models": ("mlp", "mlp")}, "twice"),
        ({"variants": ("clip-foo",)}, "unknown variants"),
        ({"seeds": 0}, "seeds"),
        ({"steps": 0}, "steps"),
        ({"sparsities": (1.0,)}, "sparsities"),
    ],
)
def test_config_errors_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CompareConfig(**kwargs)


def test_plan_adds_what_variants_need():
    assert CompareConfig(variants=("clip-norm+prune",)).plan == (
        "baseline",
        "clip-norm",
        "clip-norm+prune",
    )


def test_compare_cli_bad_input_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "x"
    r = CliRunner().invoke(app, ["compare", "--models", "mlp,nope", "--out", str(out)])
    assert r.exit_code == 2 and "unknown model 'nope'" in r.output
    assert not out.exists()


def test_grad_monitor_norm_matches_torch_and_counts_clipping():
    from secateurs.clip import ByNorm

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2))
    model(torch.randn(8, 5)).pow(2).sum().backward()
    ref = float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]))
    biggest = max(float(p.grad.abs().max()) for p in model.parameters())
    mon = GradNormRecorder(ByNorm(ref / 2))
    mon(model)
    assert mon.record.norms[0] == pytest.approx(ref, rel=1e-6)
    assert mon.record.max_abs[0] == pytest.approx(biggest)
    after = float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]))
    assert after == pytest.approx(ref / 2, rel=1e-4)
    mon(model)  # now under the threshold: no clipping
    assert mon.clipped == [True, False] and mon.clip_rate == 0.5 and mon.clipped_steps == [0]
    assert GradNormRecorder().clip_rate is None


def test_loss_spikes():
    flat = [1.0 + 0.01 * ((i * 7) % 5) for i in range(60)]
    assert loss_spikes(flat) == 0
    spiky = list(flat)
    spiky[30] = 5.0
    spiky[45] = float("nan")  # non-finite steps are counted elsewhere, not as spikes
    assert loss_spikes(spiky) == 1
    # negative losses (a WGAN critic) work the same way
    assert loss_spikes([-x for x in flat[:40]] + [3.0]) == 1
    # a steady decrease is not a spike
    assert loss_spikes([2.0 * 0.97**i for i in range(100)]) == 0


def test_validation_tracker_finds_first_step_at_target():
    task = TASKS["mlp"]

    class Rec:
        def __init__(self, step):
            self.step = step

    values = iter([0.5, 0.95, 0.99])

    class FakeTask:
        metric = "accuracy"

        def evaluate(self, model, data, split):
            return {"accuracy": next(values)}

        def reached(self, v):
            return task.reached(v)

    tr = ValidationTracker(FakeTask(), None, every=10)
    for s in range(30):
        tr.on_step_end(Rec(s), None)
    assert tr.history == [(10, 0.5), (20, 0.95), (30, 0.99)]
    assert tr.steps_to_target == 20
    with pytest.raises(ValueError, match="every"):
        ValidationTracker(FakeTask(), None, every=0)


def test_replace_deployable():
    task = TASKS["wgan"]
    model = task.model(0)
    new = torch.nn.Linear(32, 64)
    assert replace_deployable(task, model, new).generator is new
    mlp = TASKS["mlp"]
    assert replace_deployable(mlp, mlp.model(0), new) is new
