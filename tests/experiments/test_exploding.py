import math

import pytest
import torch

from secateurs.experiments import exploding
from secateurs.zoo.sequence import BASELINE_MSE, TanhRNN, adding_problem


def test_adding_problem_targets_and_markers():
    x, y = adding_problem(64, 100, seed=3)
    assert x.shape == (64, 100, 2) and y.shape == (64,)
    markers = x[..., 1]
    assert torch.equal(markers.sum(1), torch.full((64,), 2.0))
    first = markers[:, :50].argmax(1)
    second = markers[:, 50:].argmax(1) + 50
    assert (markers[:, :50].sum(1) == 1).all()  # one marker in each half
    rows = torch.arange(64)
    torch.testing.assert_close(y, x[rows, first, 0] + x[rows, second, 0])
    assert torch.equal(adding_problem(64, 100, seed=3)[0], x)  # reproducible
    assert pytest.approx(1 / 6) == BASELINE_MSE


def test_adding_problem_span_and_bad_input():
    x, _ = adding_problem(32, 100, span=20, seed=1)
    assert x[:, :80, 1].sum() == 0
    with pytest.raises(ValueError, match="span"):
        adding_problem(4, 100, span=101)
    with pytest.raises(ValueError, match="n must be"):
        adding_problem(0)


def test_tanh_rnn_shapes():
    out = TanhRNN(8)(torch.zeros(3, 20, 2))
    assert out.shape == (3,)
    torch.testing.assert_close(out, torch.ones(3))  # zero state, zero input: the head bias


def test_tiny_budget_produces_the_table():
    cfg = exploding.config(seeds=1, steps=3, length=12, span=6, hidden=4, batch=4, test_size=8)
    result = exploding.run(cfg, workers=1)
    assert len(result.runs) == len(exploding.RULES)
    table = result.table()
    assert table.splitlines()[0].startswith("| rule | seeds succeeded")
    for rule in exploding.RULES:
        assert f"| {rule} | " in table
    data = result.as_dict()
    assert data["config"]["steps"] == 3 and len(data["summary"]) == len(exploding.RULES)
    for run in result.runs:
        assert run.steps == 3 and 0 <= run.clipped_steps <= 3


def test_divergence_is_detected():
    cfg = exploding.config(
        seeds=1,
        steps=20,
        length=30,
        span=10,
        hidden=8,
        batch=8,
        lr=1e6,
        test_size=8,
        rules=("none", "norm"),
    )
    runs = {r.rule: r for r in exploding.run(cfg, workers=1).runs}
    assert runs["none"].diverged and not runs["none"].succeeded
    assert runs["none"].nonfinite_steps >= 1 and math.isnan(runs["none"].test_mse)
    assert not runs["norm"].diverged  # clipping bounds every step


def test_bad_config():
    with pytest.raises(ValueError, match="rules must"):
        exploding.config(rules=("sgd",)).validate()
    with pytest.raises(ValueError, match="lr must"):
        exploding.config(lr=-1.0).validate()
    with pytest.raises(ValueError, match="span must be between"):
        exploding.config(length=12).validate()  # the default span is 20
