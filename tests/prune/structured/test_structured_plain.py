"""Plain PyTorch architectures: exact removal, shapes kept, >= 25% fewer parameters, io."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import secateurs.io as sio
from secateurs.prune import structured

from .helpers import call, zero_units
from .models import Encoder, Recurrent, SeparableSE, TiedLM, TwoInTwoOut, UNet

g = torch.Generator().manual_seed(0)
CASES = {
    "separable-se": (SeparableSE, torch.randn(2, 3, 16, 16, generator=g)),
    "unet": (UNet, torch.randn(2, 3, 16, 16, generator=g)),
    "two-in-two-out": (TwoInTwoOut, (torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 6))),
    "tied-lm": (TiedLM, torch.randint(0, 40, (2, 7), generator=g)),
    "transformer-encoder": (Encoder, torch.randint(0, 30, (2, 7), generator=g)),
    "lstm-gru": (Recurrent, torch.randint(0, 30, (2, 7), generator=g)),
}


def _flat(out):
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("case", sorted(CASES))
def test_plain_model_prunes_exactly(case: str, tmp_path) -> None:
    torch.manual_seed(0)
    factory, x = CASES[case]
    model = factory()
    model.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        call(model, x)
    model.eval()
    zero_units(model, x, 0.4)
    with torch.no_grad():
        expected = _flat(call(model, x))
    pruned, report = structured(model, x, ratio=0.4, importance="l1")
    with torch.no_grad():
        got = _flat(call(pruned.eval(), x))
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    if case != "tied-lm":  # its embedding width is tied to the output layer: only the MLP goes
        assert report.params_after <= 0.75 * report.params_before, report.to_table()
    sio.save(pruned, tmp_path / "m.safetensors")
    # The user's own class: loading names the code to run (it never imports what a file names)
    loaded = sio.load(tmp_path / "m.safetensors", arch=factory).eval()
    with torch.no_grad():
        for a, b in zip(_flat(call(loaded, x)), got, strict=True):
            torch.testing.assert_close(a, b)


def test_tied_embedding_stays_tied_and_mlp_is_pruned() -> None:
    pruned, report = structured(TiedLM(), torch.randint(0, 40, (2, 5)), ratio=0.5)
    assert pruned.out.weight is pruned.emb.weight
    assert pruned.ff[0].out_features == 32
    assert "emb" in report.kept and "out" in report.kept


def test_protect_a_parent_protects_everything_inside() -> None:
    x = torch.randn(2, 3, 16, 16)
    pruned, _ = structured(SeparableSE(), x, ratio=0.5, protect=["blocks.0"])
    assert pruned.blocks[0][0].out_channels == 48
    assert pruned.blocks[1][0].out_channels == 24
    with pytest.raises(ValueError, match="matches no module"):
        structured(SeparableSE(), x, ratio=0.5, protect=["blocks.7"])


def test_a_users_importance_object_works_without_editing_the_library() -> None:
    class KeepFirst:
        """Ranks units by position: the first ones are the most important."""

        def score(self, model: nn.Module, unit) -> float:
            return -float(min(s.positions[0] for s in unit.slices))

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    pruned, report = structured(model, torch.randn(3, 4), ratio=0.5, importance=KeepFirst())
    torch.testing.assert_close(pruned[0].weight, model[0].weight[:4])
    assert report.method == "structured/KeepFirst"
