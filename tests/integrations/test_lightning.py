"""Lightning callbacks on digits with the real Trainer (CPU; one test runs 2 DDP processes)."""

from __future__ import annotations

import json

import pytest
import torch
from integration_helpers import ROOT, run_python
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")

from secateurs.clip import AGC, AutoClip, ByNorm, ZClip, chain  # noqa: E402
from secateurs.integrations.lightning import (  # noqa: E402
    Clipping,
    NMPruner,
    Pruning,
    StructuredPruning,
)
from secateurs.prune import check_nm, schedules  # noqa: E402
from secateurs.prune.mask import masked_modules  # noqa: E402
from secateurs.zoo.data import digits  # noqa: E402


class Net(pl.LightningModule):
    def __init__(self, nan_at: int = -1) -> None:
        super().__init__()
        self.nan_at = nan_at
        self.model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(),
                                   nn.Linear(16, 10))  # fmt: skip

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        if self.global_step == self.nan_at:
            loss = loss * float("nan")
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _loader(n: int = 320) -> DataLoader:
    split = digits()
    data = TensorDataset(split.x_train[:n], split.y_train[:n])
    return DataLoader(data, batch_size=32, shuffle=False)


def _trainer(callbacks, steps: int, **kw) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        max_steps=steps,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kw,
    )


class Grabber(pl.Callback):
    """Copies the gradients when its hook runs (placed before and after Clipping)."""

    def __init__(self) -> None:
        self.seen: list[list[torch.Tensor]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.seen.append([p.grad.detach().clone().double() for p in pl_module.parameters()])


def _agc_reference(grads, weights, clip, eps, skip):
    """AGC in float64 from the paper's formula, row by row, last Linear left alone."""
    out = []
    for i, (g, w) in enumerate(zip(grads, weights, strict=True)):
        if i in skip:
            out.append(g.clone())
            continue
        dims = tuple(range(1, g.ndim))
        gn = g.norm(dim=dims, keepdim=True) if g.ndim > 1 else g.norm()
        wn = w.norm(dim=dims, keepdim=True) if w.ndim > 1 else w.norm()
        limit = clip * wn.clamp(min=eps)
        out.append(g * torch.clamp(limit / gn.clamp(min=1e-6), max=1.0))
    return out


def test_clipping_matches_an_independent_agc_and_logs_through_lightning():
    torch.manual_seed(0)
    before, after = Grabber(), Grabber()
    weights: list[list[torch.Tensor]] = []

    class Weights(pl.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            weights.append([p.detach().clone().double() for p in pl_module.parameters()])

    clipping = Clipping(AGC(0.02, eps=1e-3))
    module = Net()
    trainer = _trainer([Weights(), before, clipping, after], steps=4)
    trainer.fit(module, _loader())
    assert len(before.seen) == 4
    n = len(list(module.parameters()))
    skip = {n - 2, n - 1}  # the final classifier's weight and bias
    for g0, g1, w in zip(before.seen, after.seen, weights, strict=True):
        expected = _agc_reference(g0, w, 0.02, 1e-3, skip)
        for e, got in zip(expected, g1, strict=True):
            torch.testing.assert_close(got, e, rtol=1e-5, atol=1e-9)
    # the stats of the last step: the norm over all clipped units, before and after
    g0, g1 = before.seen[-1], after.seen[-1]
    clipped = [i for i in range(n) if i not in skip]
    norm_before = torch.cat([g0[i].reshape(-1) for i in clipped]).norm()
    norm_after = torch.cat([g1[i].reshape(-1) for i in clipped]).norm()
    assert clipping.last.norm_before == pytest.approx(float(norm_before), rel=1e-5)
    assert clipping.last.norm_after == pytest.approx(float(norm_after), rel=1e-5)
    logged = trainer.callback_metrics
    assert float(logged["clip/norm_before"]) == pytest.approx(float(norm_before), rel=1e-5)
    assert clipping.monitor.summary()["steps"] == 4


def test_a_nonfinite_step_is_skipped_without_touching_parameters_or_adam_state():
    torch.manual_seed(0)
    params_at: list[list[torch.Tensor]] = []

    class Snap(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            params_at.append([p.detach().clone() for p in pl_module.parameters()])

    clipping = Clipping(chain(ZClip(warmup=2), ByNorm(1.0)))
    module = Net(nan_at=2)
    trainer = _trainer([Snap(), clipping], steps=4)
    trainer.fit(module, _loader())
    assert clipping.monitor.summary()["skipped"] == 1
    # batch 2 gave NaN gradients: the parameters after it equal those before it
    for a, b in zip(params_at[2], params_at[3], strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(params_at[1][0], params_at[2][0])
    state = trainer.optimizers[0].state
    assert {int(s["step"]) for s in state.values()} == {3}  # 4 batches, 1 skipped
    assert all(torch.isfinite(p).all() for p in module.parameters())


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.schedule("cubic", target=0.7, end=6, frequency=2),
        schedules.schedule("iterative", target=0.7, rounds=3, every=2),
    ],
    ids=["cubic", "iterative"],
)
def test_pruning_reaches_the_target_and_the_checkpoint_loads_into_the_plain_class(
    schedule, tmp_path
):
    torch.manual_seed(0)
    pruning = Pruning(schedule)
    module = Net()
    trainer = _trainer([pruning, Clipping(ByNorm(1.0))], steps=8)
    trainer.fit(module, _loader())
    assert not masked_modules(module)  # made permanent at fit end
    pruned = [module.model[0].weight, module.model[2].weight]  # the classifier stays dense
    zeros = sum(int((w == 0).sum()) for w in pruned)
    assert zeros == round(0.7 * sum(w.numel() for w in pruned))
    assert int((module.model[4].weight == 0).sum()) == 0
    sparsities = [r.sparsity for _, r in pruning.reports]
    assert sparsities == sorted(sparsities) and len(sparsities) >= 3
    path = tmp_path / "net.ckpt"
    trainer.save_checkpoint(path)
    reloaded = Net.load_from_checkpoint(path)
    assert not masked_modules(reloaded)
    mine, theirs = module.state_dict(), reloaded.state_dict()
    assert mine.keys() == theirs.keys()
    for key, value in mine.items():
        assert torch.equal(value, theirs[key]), key


def test_a_checkpoint_written_while_masks_are_live_holds_plain_weights_and_resumes(tmp_path):
    torch.manual_seed(0)
    pruning = Pruning(schedules.schedule("one_shot", target=0.5, at=1), permanent=False)
    clipping = Clipping(AutoClip(50, history=8))
    module = Net()
    trainer = _trainer([pruning, clipping], steps=3)
    trainer.fit(module, _loader())
    assert masked_modules(module)  # permanent=False: masks still there
    path = tmp_path / "mid.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=True)["state_dict"]
    assert not any("parametrizations" in k for k in state)
    zeros = int((state["model.0.weight"] == 0).sum())
    assert zeros >= 0.5 * 64 * 32 - 1
    # resume: the zeros are masked again and stay zero while training goes on
    again = Pruning(schedules.schedule("one_shot", target=0.5, at=1))
    clipping_again = Clipping(AutoClip(50, history=8))
    resumed = Net()
    _trainer([again, clipping_again], steps=6).fit(resumed, _loader(), ckpt_path=path)
    assert int((resumed.model[0].weight == 0).sum()) >= zeros
    # the rule's history and the monitor came back from the checkpoint, then grew
    first = clipping.rule.norms.tolist()
    assert len(first) == 3 and clipping_again.rule.norms.tolist()[:3] == first
    assert len(clipping_again.rule.norms) == 6 and clipping_again.monitor.steps == 6


def test_nm_pruner_gives_a_valid_2_4_pattern():
    torch.manual_seed(0)
    module = Net()
    _trainer([Pruning(NMPruner(2, 4, at=2))], steps=4).fit(module, _loader())
    for i in (0, 2):
        assert check_nm(module.model[i].weight, 2, 4)
        assert int((module.model[i].weight == 0).sum()) == module.model[i].weight.numel() // 2


@pytest.mark.parametrize("at", [0, 2])
def test_structured_pruning_makes_the_network_smaller_and_training_goes_on(at):
    torch.manual_seed(0)
    module = Net()
    cb = StructuredPruning(torch.zeros(1, 64), ratio=0.5, at=at)
    _trainer([cb], steps=4).fit(module, _loader())
    assert module.model[0].out_features == 16 and module.model[2].out_features == 8
    assert module.model[4].out_features == 10
    x = digits().x_test[:4]
    assert module(x).shape == (4, 10)


def test_ddp_on_two_cpu_processes(tmp_path):
    """Two gloo processes: every rank ends with the same pruned weights and clip history."""
    run_python([str(ROOT / "tests/integrations/lightning_ddp_run.py"), str(tmp_path)], 300)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for key in ranks[0]["state"]:
        assert torch.equal(ranks[0]["state"][key], ranks[1]["state"][key]), key
    assert ranks[0]["norms"] == ranks[1]["norms"] and len(ranks[0]["norms"]) == 6
    w = ranks[0]["state"]["model.0.weight"]
    assert int((w == 0).sum()) >= 0.6 * w.numel() - 1
    info = json.loads((tmp_path / "rank0.json").read_text())
    assert info["world_size"] == 2 and info["strategy"] == "DDPStrategy"
    reloaded = torch.load(tmp_path / "final.ckpt", weights_only=True)["state_dict"]
    assert torch.equal(reloaded["model.0.weight"], w)


def test_under_fp16_amp_the_rule_sees_unscaled_gradients_and_not_the_scalers_skipped_steps():
    """GradScaler on the CPU: the hook runs after `unscale_`; an overflowed step is the
    scaler's to skip, and the rule's history never sees it."""
    from lightning.pytorch.plugins import MixedPrecision

    torch.manual_seed(0)
    before = Grabber()
    clipping = Clipping(ZClip(warmup=2))
    module = Net(nan_at=2)
    plugin = MixedPrecision(
        "16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**12)
    )
    trainer = _trainer([before, clipping], steps=4, plugins=[plugin])
    trainer.fit(module, _loader())
    assert len(before.seen) == 4  # the hook ran every step ...
    assert clipping.monitor.steps == 3  # ... the rule only on the three finite ones
    norms = clipping.monitor.norms.tolist()
    finite_steps = [g for i, g in enumerate(before.seen) if i != 2]
    for norm, grads in zip(norms, finite_steps, strict=True):
        expected = float(torch.cat([g.reshape(-1) for g in grads]).norm())
        assert norm == pytest.approx(expected, rel=1e-4)  # unscaled: not 4096x larger
    assert norms[0] < 50
