import math

import pytest
from grad_helpers import set_grads, small_model

from secateurs.clip import ZClip


def zclip_reference(norms, z=2.5, alpha=0.97, warmup=25, eps=1e-6, mode="adaptive"):
    """The paper's algorithm in float64: the norm each step is clipped to (None: untouched)."""
    buf, mean, var, out = [], None, None, []
    for g in norms:
        if mean is None:
            buf.append(g)
            if len(buf) == warmup:
                mean = sum(buf) / len(buf)
                var = sum((x - mean) ** 2 for x in buf) / len(buf)
            out.append(None)
            continue
        std = math.sqrt(var)
        zt = (g - mean) / (std + eps)
        if zt > z:
            gc = mean + (z * z / zt) * std if mode == "adaptive" else mean
            out.append(gc)
        else:
            gc = g
            out.append(None)
        mean = alpha * mean + (1 - alpha) * gc
        var = alpha * var + (1 - alpha) * (gc - mean) ** 2
    return out


def spiky_run(rule, steps, seed0=0):
    m = small_model()
    records = []
    for s in range(steps):
        scale = 8.0 if s in (12, 20, 27) else 1.0 + 0.02 * math.sin(s)
        set_grads(m.parameters(), seed=seed0 + s, scale=scale)
        st = rule(m)
        records.append((st.norm_before, st.norm_after, st.clipped))
    return records


@pytest.mark.parametrize("mode", ["adaptive", "mean"])
def test_matches_float64_reference(mode):
    records = spiky_run(ZClip(z=2.5, alpha=0.9, warmup=10, mode=mode), 30)
    expected = zclip_reference([r[0] for r in records], alpha=0.9, warmup=10, mode=mode)
    assert sum(e is not None for e in expected) >= 2  # the spikes after warm-up were clipped
    for (before, after, clipped), e in zip(records, expected, strict=True):
        if e is None:
            assert not clipped and after == pytest.approx(before, rel=1e-6)
        else:
            assert clipped and after == pytest.approx(e, rel=1e-5)


def test_nothing_clipped_during_warmup_unless_max_norm():
    assert not any(r[2] for r in spiky_run(ZClip(warmup=25), 25))
    capped = spiky_run(ZClip(warmup=25, max_norm=1.0), 5)
    assert all(r[1] == pytest.approx(1.0, rel=1e-5) for r in capped)


def test_state_dict_round_trip_resumes_identically():
    a = ZClip(warmup=10, alpha=0.9)
    spiky_run(a, 14)
    b = ZClip(warmup=10, alpha=0.9)
    b.load_state_dict(a.state_dict())
    assert spiky_run(a, 16, seed0=50) == spiky_run(b, 16, seed0=50)


def test_state_round_trip_during_warmup():
    a = ZClip(warmup=10)
    spiky_run(a, 4)
    b = ZClip(warmup=10)
    b.load_state_dict(a.state_dict())
    assert spiky_run(a, 12, seed0=7) == spiky_run(b, 12, seed0=7)


def test_nonfinite_norm_does_not_move_the_ema():
    rule = ZClip(warmup=3, nonfinite=None)
    spiky_run(rule, 5)
    mean, std = rule.mean, rule.std
    m = small_model()
    set_grads(m.parameters(), seed=3)
    next(iter(m.parameters())).grad[0, 0, 0, 0] = math.nan
    rule(m)
    assert (rule.mean, rule.std) == (mean, std)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"z": 0}, "z must be"),
        ({"z": math.nan}, "z must be"),
        ({"alpha": 1.0}, "alpha must be in"),
        ({"warmup": 0}, "warmup must be"),
        ({"mode": "median"}, "mode must be"),
        ({"max_norm": -1.0}, "max_norm must be"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ZClip(**kwargs)
