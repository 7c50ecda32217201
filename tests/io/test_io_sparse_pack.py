"""Packing is lossless (bit for bit) and picks the smallest format."""

import pytest
import torch

from secateurs.io.sparse import pack, packed_sizes, unpack


def _sparse(shape, density, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=g).to(dtype)
    t[torch.rand(shape, generator=g) >= density] = 0
    return t


def _bits_equal(a, b):
    if a.is_floating_point():
        size = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.uint8}[a.element_size()]
        return torch.equal(a.view(size), b.view(size))
    return torch.equal(a, b)


@pytest.mark.parametrize("packing", ["dense", "bitmask", "csr"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("shape", [(64, 33), (7, 3, 5, 5), (300,), (0, 4)])
def test_round_trip_is_bitwise(packing, dtype, shape):
    t = _sparse(shape, 0.2, dtype)
    if t.numel() > 3:
        t.view(-1)[1] = -0.0
        t.view(-1)[2] = float("nan")
    kind, parts = pack(t, packing)
    back = unpack(kind, parts, list(t.shape), t.dtype)
    assert back.shape == t.shape and back.dtype == t.dtype
    assert _bits_equal(back, t)


def test_integer_and_bool_tensors():
    for t in (torch.randint(-3, 3, (100, 10)), torch.rand(100, 10) > 0.7):
        for packing in ("dense", "bitmask", "csr"):
            kind, parts = pack(t, packing)
            assert torch.equal(unpack(kind, parts, list(t.shape), t.dtype), t)


@pytest.mark.parametrize(
    ("density", "expected"), [(0.99, "dense"), (0.2, "bitmask"), (0.01, "csr")]
)
def test_auto_picks_smallest(density, expected):
    t = _sparse((256, 256), density)
    kind, parts = pack(t)
    assert kind == expected
    stored = sum(p.numel() * p.element_size() for p in parts.values())
    assert stored == min(packed_sizes(t, int((t != 0).sum())).values())


def test_bitmask_size_at_90_percent():
    t = _sparse((512, 512), 0.1)
    _kind, parts = pack(t, "bitmask")
    stored = sum(p.numel() * p.element_size() for p in parts.values())
    assert stored <= 0.14 * t.numel() * 4


def test_corrupt_parts_are_detected():
    t = _sparse((32, 32), 0.3)
    kind, parts = pack(t, "bitmask")
    with pytest.raises(ValueError, match="corrupt"):
        unpack(kind, {"mask": parts["mask"], "values": parts["values"][:-1]}, [32, 32], t.dtype)
    kind, parts = pack(t, "csr")
    bad = dict(parts, col=parts["col"].clone().fill_(99))
    with pytest.raises(ValueError, match="corrupt"):
        unpack(kind, bad, [32, 32], t.dtype)
    with pytest.raises(ValueError, match="packing"):
        pack(t, "zip")
