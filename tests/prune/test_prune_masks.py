"""Masks survive training, serialisation, compilation; cover RNNs, attention, tied weights."""

import copy
import io
import pickle

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from secateurs import prune
from secateurs.prune.mask import get_mask
from secateurs.zoo.models import MLP


def _pruned_mlp(seed=0, sparsity=0.8):
    torch.manual_seed(seed)
    m = MLP((16, 32, 24, 4))
    prune.unstructured_(m, sparsity=sparsity, exclude=[])
    return m


def _zeros(m):
    return {n: (mod.weight == 0) for n, mod in m.named_modules() if get_mask(mod, "weight")}


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=1e-2),
    ],
    ids=["sgd-momentum-wd", "adamw"],
)
def test_pruned_weights_stay_zero_through_100_steps(make_opt):
    torch.manual_seed(0)
    m = MLP((16, 32, 24, 4))
    opt = make_opt(m.parameters())
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    for _ in range(5):  # optimizer state (momentum, Adam moments) exists before pruning
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    prune.unstructured_(m, sparsity=0.8, exclude=[])
    pruned = {
        n: ~get_mask(mod, "weight").mask for n, mod in m.named_modules() if get_mask(mod, "weight")
    }
    start = {n: mod.weight.detach().clone() for n, mod in m.named_modules() if n in pruned}
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    for n, gone in pruned.items():
        w = m.get_submodule(n).weight
        assert bool((w[gone] == 0).all()), n
        assert not torch.equal(w[~gone], start[n][~gone])  # the survivors did train


def test_state_dict_round_trip_into_masked_model():
    a, b = _pruned_mlp(0), _pruned_mlp(1, sparsity=0.3)
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 16)
    assert torch.equal(a(x), b(x))
    assert _zeros(a).keys() == _zeros(b).keys()
    for n in _zeros(a):
        assert torch.equal(_zeros(a)[n], _zeros(b)[n])


def test_deepcopy_is_independent():
    a = _pruned_mlp()
    b = copy.deepcopy(a)
    x = torch.randn(5, 16)
    assert torch.equal(a(x), b(x))
    prune.make_permanent(b)
    assert not parametrize.is_parametrized(b.net[1])
    assert parametrize.is_parametrized(a.net[1])
    assert torch.equal(a(x), b(x))  # the original still works after the copy lost its masks
    prune.unstructured_(b, sparsity=0.95, exclude=[])
    assert prune.sparsity_report(a).sparsity < prune.sparsity_report(b).sparsity


def test_pickle_and_torch_save_whole_module():
    a = _pruned_mlp()
    x = torch.randn(5, 16)
    b = pickle.loads(pickle.dumps(a))
    buf = io.BytesIO()
    torch.save(a, buf)
    buf.seek(0)
    c = torch.load(buf, weights_only=False)
    for other in (b, c):
        assert torch.equal(a(x), other(x))
        assert torch.equal(get_mask(other.net[1], "weight").mask, get_mask(a.net[1], "weight").mask)
        # still a live mask: training keeps zeros, and it can be made permanent
        prune.unstructured_(other, sparsity=0.9, exclude=[])
        prune.make_permanent(other)
        assert type(other.net[1]) is nn.Linear


@pytest.mark.slow
def test_torch_compile_matches_eager():
    a = _pruned_mlp()
    x = torch.randn(8, 16)
    compiled = torch.compile(a, backend="aot_eager")
    assert torch.allclose(compiled(x), a(x))
    # gradients flow through the compiled mask: pruned positions get zero gradient
    compiled(x).sum().backward()
    g = a.net[1].parametrizations.weight.original.grad
    assert bool((g[~get_mask(a.net[1], "weight").mask] == 0).all())


def test_make_permanent_bakes_the_masks_in():
    """Whatever the stored weights hold under a mask, the plain module has zeros there."""
    a = _pruned_mlp()
    keep = {
        n: get_mask(mod, "weight").mask.clone()
        for n, mod in a.named_modules()
        if get_mask(mod, "weight")
    }
    with torch.no_grad():  # e.g. a dense state dict loaded into the masked model
        for n in keep:
            a.get_submodule(n).parametrizations.weight.original.fill_(1.0)
    x = torch.randn(5, 16)
    y = a(x)
    prune.make_permanent(a)
    for n, mask in keep.items():
        w = a.get_submodule(n).weight
        assert torch.equal(w == 0, ~mask)
    assert torch.equal(a(x), y)


def test_make_permanent_leaves_plain_module_with_same_parameters():
    a = _pruned_mlp()
    before = {n: p for n, p in a.named_parameters()}
    orig = a.net[1].parametrizations.weight.original
    x = torch.randn(5, 16)
    y = a(x)
    prune.make_permanent(a)
    assert a.net[1].weight is orig  # optimizer references stay valid
    assert all(type(m) in (MLP, nn.Sequential, nn.Flatten, nn.Linear, nn.ReLU) for m in a.modules())
    assert torch.equal(a(x), y)
    assert set(a.state_dict()) == {
        k.replace("parametrizations.", "").replace(".original", "") for k in before
    }


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_lstm_weights_are_masked_in_forward():
    torch.manual_seed(0)
    lstm = nn.LSTM(8, 12, num_layers=2, bidirectional=True, proj_size=6)
    report = prune.unstructured_(lstm, sparsity=0.6, exclude=[])
    names = {x.name for x in report.layers}
    assert {"weight_ih_l0", "weight_hh_l0", "weight_hr_l0", "weight_ih_l1_reverse"} <= names
    assert not any("bias" in n for n in names)
    plain = prune.make_permanent(copy.deepcopy(lstm))
    x = torch.randn(5, 3, 8)
    assert torch.allclose(lstm(x)[0], plain(x)[0])
    # a fresh dense LSTM with the masked values gives the same result (masks really apply)
    dense = nn.LSTM(8, 12, num_layers=2, bidirectional=True, proj_size=6)
    dense.load_state_dict(plain.state_dict())
    assert torch.allclose(lstm(x)[0], dense(x)[0])
    assert float(plain.weight_hh_l0.eq(0).float().mean()) > 0.3


@pytest.mark.parametrize("train", [True, False])
def test_multihead_attention_masks_apply(train):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=True)
    report = prune.unstructured_(mha, sparsity=0.7, exclude=[])
    assert {x.name for x in report.layers} == {"in_proj_weight", "out_proj.weight"}
    plain = prune.make_permanent(copy.deepcopy(mha))
    mha.train(train)
    plain.train(train)
    q = torch.randn(2, 5, 16)
    with torch.no_grad():
        assert torch.allclose(mha(q, q, q)[0], plain(q, q, q)[0], atol=1e-6)
    assert float((plain.in_proj_weight == 0).float().mean()) > 0.5


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.mid = nn.Linear(8, 8)
        self.head = nn.Linear(8, 20, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, x):
        return self.head(torch.relu(self.mid(self.emb(x))))


def test_tied_weights_pruned_once_and_stay_tied():
    torch.manual_seed(0)
    m = Tied()
    report = prune.unstructured_(m, sparsity=0.5, exclude=[])
    assert [x.name for x in report.layers] == ["emb.weight", "mid.weight"]
    assert get_mask(m.emb, "weight") is get_mask(m.head, "weight")
    assert torch.equal(m.emb.weight, m.head.weight)
    prune.make_permanent(m)
    assert m.emb.weight is m.head.weight
    assert report.params == 20 * 8 + 8 * 8


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(10, 10))
        self.bias = nn.Parameter(torch.randn(10))
        self.norm = nn.LayerNorm(10)
        self.out = nn.Linear(10, 3)

    def forward(self, x):
        return self.out(self.norm(x @ self.kernel + self.bias))


def test_targets_include_exclude_and_defaults():
    m = Custom()
    # default: only standard layers; the last Linear stays dense -> nothing to prune
    with pytest.raises(ValueError, match="no prunable"):
        prune.unstructured_(m, sparsity=0.5)
    r = prune.unstructured_(m, sparsity=0.5, include=["kernel"])
    assert [x.name for x in r.layers] == ["kernel"]
    r = prune.unstructured_(Custom(), sparsity=0.5, include=["*"], exclude=[])
    assert {x.name for x in r.layers} == {"kernel", "out.weight"}  # biases, norms never
    with pytest.raises(ValueError, match="matched no prunable"):
        prune.unstructured_(Custom(), sparsity=0.5, include=["kernal"])
    with pytest.raises(ValueError, match="matched no prunable"):
        prune.unstructured_(MLP(), sparsity=0.5, exclude=["net.9"])
    with pytest.raises(ValueError, match="no prunable"):
        prune.unstructured_(MLP(), sparsity=0.5, exclude=[nn.Linear], include=["net.1"])


def test_default_keeps_last_linear_and_embeddings_dense():
    r = prune.unstructured_(MLP(), sparsity=0.5)
    assert [x.name for x in r.layers] == ["net.1.weight", "net.3.weight"]
    r = prune.unstructured_(Tied(), sparsity=0.5)
    assert [x.name for x in r.layers] == ["mid.weight"]
    r = prune.unstructured_(MLP(), sparsity=0.5, exclude=[])
    assert [x.name for x in r.layers] == ["net.1.weight", "net.3.weight", "net.5.weight"]


class Zoo(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.c1 = nn.Conv1d(8, 8, 3)
        self.c2 = nn.Conv2d(1, 4, 3)
        self.c3 = nn.Conv3d(1, 4, 3)
        self.t2 = nn.ConvTranspose2d(4, 4, 3)
        self.gru = nn.GRU(8, 8)
        self.rnn = nn.RNN(8, 8, bidirectional=True)
        self.bn = nn.BatchNorm2d(4)
        self.ln = nn.LayerNorm(8)
        self.head = nn.Linear(8, 2)


def test_every_standard_layer_type_is_covered():
    r = prune.unstructured_(Zoo(), sparsity=0.5, exclude=[])
    assert {x.name for x in r.layers} == {
        "emb.weight", "c1.weight", "c2.weight", "c3.weight", "t2.weight",
        "gru.weight_ih_l0", "gru.weight_hh_l0", "rnn.weight_ih_l0", "rnn.weight_hh_l0",
        "rnn.weight_ih_l0_reverse", "rnn.weight_hh_l0_reverse", "head.weight",
    }  # fmt: skip
    r = prune.unstructured_(Zoo(), sparsity=0.5)  # default: embedding and last Linear dense
    assert "emb.weight" not in {x.name for x in r.layers}
    assert "head.weight" not in {x.name for x in r.layers}
    z = Zoo()
    prune.unstructured_(z, sparsity=0.5, include=[nn.GRU, "c2"])
    x = torch.randn(4, 2, 8)
    dense = nn.GRU(8, 8)
    dense.load_state_dict(prune.make_permanent(copy.deepcopy(z)).gru.state_dict())
    assert torch.allclose(z.gru(x)[0], dense(x)[0])
