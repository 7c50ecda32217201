"""The pipeline's stages compose, and a pipeline does exactly what the same calls by hand do."""

import copy

import pytest
import torch

from secateurs import prune
from secateurs.clip import ByNorm
from secateurs.measure import accuracy, count_nonzeros
from secateurs.pipeline import Bake, Measure, Pipeline, Prune, Run, Seed, Train, in_place
from secateurs.train import fit
from secateurs.zoo.data import digits
from secateurs.zoo.models import MLP


def _train():
    """A fresh loader each time: the same batch order for the pipeline and by hand."""
    return digits().loaders(batch_size=64, seed=0)[0]


def test_pipeline_equals_the_same_calls_by_hand():
    val = digits().loaders(batch_size=64, seed=0)[1]
    torch.manual_seed(1)
    model = MLP((64, 32, 10))
    by_hand = copy.deepcopy(model)

    def train_steps(net, rule, steps=30):
        return fit(net, _train(), clip=rule, max_steps=steps)

    run = Pipeline(
        Seed(0),
        Train(train_steps),
        Prune(in_place(prune.unstructured_, sparsity=0.7)),
        Measure("before", lambda net: accuracy(net, val)),
        Train(lambda net, rule: train_steps(net, rule, 10), "finetune"),
        Bake(),
        Measure("after", lambda net: accuracy(net, val)),
        Measure("nonzeros", count_nonzeros),
    )(Run(model, rule=ByNorm(0.5)))

    torch.manual_seed(0)
    fit(by_hand, _train(), clip=ByNorm(0.5), max_steps=30)
    report = prune.unstructured_(by_hand, sparsity=0.7)
    before = accuracy(by_hand, val)
    fit(by_hand, _train(), clip=ByNorm(0.5), max_steps=10)
    prune.make_permanent(by_hand)

    assert run.model is model  # in-place stages keep the object
    for a, b in zip(run.model.state_dict().values(), by_hand.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert run.metrics["before"] == before and run.metrics["after"] == accuracy(by_hand, val)
    assert run.metrics["nonzeros"] == count_nonzeros(by_hand)
    assert run.report.sparsity == report.sparsity
    assert set(run.fits) == {"train", "finetune"} and len(run.fits["finetune"].steps) == 10
    assert set(run.seconds) == {"train", "finetune"}


def test_a_prune_that_returns_a_new_model_flows_on():
    model = MLP((64, 32, 10)).eval()
    x = torch.randn(2, 64)
    run = Pipeline(
        Prune(lambda net: prune.structured(net, x, ratio=0.5)),
        Measure("params", lambda net: sum(p.numel() for p in net.parameters())),
    )(Run(model))
    assert run.model is not model and run.report.structural
    assert run.metrics["params"] == run.report.params_after < run.report.params_before


def test_stages_must_be_callable():
    with pytest.raises(TypeError, match="stage"):
        Pipeline(Seed(0), "train")
