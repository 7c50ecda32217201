"""The training loop's clipping contract: once per optimizer step, after unscaling, and
nothing clipped on steps the GradScaler skips."""

import copy
import math

import torch
from torch import nn

from secateurs.clip import AutoClip, ByNorm, ClipMonitor, ZClip, wrap
from secateurs.train import HistoryCallback, LogCallback, fit


def regression_data(n_batches: int, batch: int, seed: int = 0, poison: int | None = None):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_batches):
        x = torch.randn(batch, 6, generator=g)
        y = x.sum(dim=1, keepdim=True)
        if i == poison:
            y = torch.full_like(y, math.inf)  # non-finite gradients on this step only
        out.append((x, y))
    return out


def net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))


class Counting:
    def __init__(self, rule):
        self.rule, self.calls, self.norms = rule, 0, []

    def __call__(self, model):
        self.calls += 1
        stats = self.rule(model)
        self.norms.append(stats.norm_before)
        return stats


def test_clip_runs_once_per_optimizer_step_with_accumulation():
    data = regression_data(12, 4)
    counting = Counting(ByNorm(0.5))
    result = fit(net(), data, lr=0.01, loss_fn=nn.functional.mse_loss, clip=counting, accumulate=3)
    assert counting.calls == 4 == len(result.steps)


def test_accumulated_steps_equal_large_batches():
    small = regression_data(8, 4)
    large = [
        (torch.cat([small[i][0], small[i + 1][0]]), torch.cat([small[i][1], small[i + 1][1]]))
        for i in range(0, 8, 2)
    ]
    a, b = net(), net()
    ca, cb = Counting(ByNorm(0.3)), Counting(ByNorm(0.3))
    mse = nn.functional.mse_loss
    fit(
        a,
        small,
        optimizer=torch.optim.SGD(a.parameters(), lr=0.1),
        loss_fn=mse,
        clip=ca,
        accumulate=2,
    )
    fit(b, large, optimizer=torch.optim.SGD(b.parameters(), lr=0.1), loss_fn=mse, clip=cb)
    for x, y in zip(ca.norms, cb.norms, strict=True):
        assert math.isclose(x, y, rel_tol=1e-5)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_gradscaler_path_unscales_then_clips_and_skips_overflow():
    data = regression_data(6, 8, poison=3)
    model = net()
    auto, z = AutoClip(50, history=10, nonfinite=None), ZClip(warmup=2, nonfinite=None)
    seen = []

    class Spy:
        def __call__(self, m):
            s1 = auto(m)
            s2 = z(m)
            seen.append(s1.norm_before)
            return s2

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    ref = copy.deepcopy(model)
    result = fit(model, data, lr=0.01, loss_fn=nn.functional.mse_loss, clip=Spy(), scaler=scaler)
    skipped = [r.skipped for r in result.steps]
    assert skipped == [False, False, False, True, False, False]
    assert result.steps[3].clip is None  # nothing clipped on the step the scaler skipped
    assert len(seen) == 5 and all(math.isfinite(v) for v in seen)
    assert torch.isfinite(auto.norms).all() and auto.norms.numel() == 5
    assert math.isfinite(z.mean) and math.isfinite(z.std)
    # the rule saw unscaled gradients: the same norm as without a scaler on step 0
    ref_rule = Counting(ByNorm(1e9))
    fit(ref, data[:1], lr=0.01, loss_fn=nn.functional.mse_loss, clip=ref_rule)
    assert math.isclose(seen[0], ref_rule.norms[0], rel_tol=1e-5)


def test_gradscaler_with_wrapped_optimizer():
    data = regression_data(5, 8, poison=2)
    model = net()
    auto = AutoClip(50, history=10, nonfinite=None)
    opt = wrap(torch.optim.SGD(model.parameters(), lr=0.01), auto, model)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    for i, (x, y) in enumerate(data):
        opt.zero_grad()
        scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
        before = [p.detach().clone() for p in model.parameters()]
        scaler.step(opt)
        scaler.update()
        if i == 2:
            assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))
    assert opt.steps == 4  # step() was not called on the overflow step
    assert auto.norms.numel() == 4 and torch.isfinite(auto.norms).all()


def test_skip_policy_in_fit_counts_skipped_steps():
    data = regression_data(5, 8, poison=1)
    monitor = ClipMonitor()
    result = fit(
        net(), data, lr=0.01, loss_fn=nn.functional.mse_loss, clip=ByNorm(1.0), callbacks=[monitor]
    )
    assert result.skipped_steps == 1 and result.steps[1].skipped
    assert monitor.summary()["skipped"] == 1 and monitor.summary()["steps"] == 5


def test_log_and_history_callbacks_report_loss_and_clip_stats():
    lines: list[str] = []
    hist = HistoryCallback()
    fit(
        net(),
        regression_data(4, 8),
        lr=0.01,
        loss_fn=nn.functional.mse_loss,
        clip=ByNorm(0.1),
        callbacks=[LogCallback(every=2, log=lines.append), hist],
    )
    assert len(lines) == 2 and lines[0].startswith("step     0")
    assert "loss" in lines[0] and "norm" in lines[0] and "->" in lines[0]
    assert [r["step"] for r in hist.rows] == [0, 1, 2, 3]
    assert all(r["clipped"] and r["rule"] == "norm" for r in hist.rows)
