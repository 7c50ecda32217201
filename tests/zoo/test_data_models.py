import torch

from secateurs.zoo import MLP, ResCNN, digits


def test_digits_split_is_stratified_disjoint_and_deterministic():
    a, b = digits(seed=0), digits(seed=0)
    assert torch.equal(a.x_test, b.x_test)
    n = len(a.y_train) + len(a.y_val) + len(a.y_test)
    assert n == 1797
    assert a.x_train.shape[1] == 64
    assert float(a.x_train.min()) >= 0.0 and float(a.x_train.max()) <= 1.0
    # every class appears in each split in about the overall proportion
    for y in (a.y_train, a.y_val, a.y_test):
        frac = torch.bincount(y, minlength=10).float() / len(y)
        assert float(frac.min()) > 0.07 and float(frac.max()) < 0.13
    img = digits(image=True)
    assert img.x_train.shape[1:] == (1, 8, 8)


def test_models_forward_shapes():
    assert MLP()(torch.randn(3, 64)).shape == (3, 10)
    assert ResCNN(width=8)(torch.randn(3, 1, 8, 8)).shape == (3, 10)
