"""The seed flow on real data: LeNet-300-100's shape on digits, iterative magnitude pruning
with fine-tuning, at least 10x fewer non-zero weights for at most 0.5 points of accuracy."""

import pytest
import torch

from secateurs import pipeline, prune
from secateurs.measure import accuracy
from secateurs.train import fit
from secateurs.zoo.data import digits
from secateurs.zoo.models import MLP


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead on a shared machine
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
def test_iterative_magnitude_pruning_keeps_accuracy_at_10x(one_thread):
    split = digits()
    train, _, test = split.loaders(batch_size=64, seed=0)
    torch.manual_seed(0)
    model = MLP((64, 300, 100, 10))
    fit(model, train, lr=1e-3, epochs=20)
    base = accuracy(model, test)
    assert base > 0.95

    result = pipeline.iterative_prune_(
        model,
        train,
        target=0.93,
        rounds=5,
        epochs=10,
        exclude=[],
        eval_fn=lambda m: {"test_acc": accuracy(m, test)},
    )
    after = accuracy(model, test)
    weights = prune.sparsity_report(model, include_all=False)  # the prunable weights
    overall = prune.sparsity_report(model)  # every parameter, biases included
    assert weights.compression >= 10.0
    assert overall.compression >= 10.0
    assert (base - after) * 100 <= 0.5
    assert result.final.metrics["test_acc"] == after
    assert [r.round for r in result.rounds] == list(range(6))
    # the masks are real: pruned weights are zero and stay zero after make_permanent
    prune.make_permanent(model)
    assert prune.sparsity_report(model).nonzeros == overall.nonzeros
