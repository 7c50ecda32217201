"""Which weights to remove: exact k-smallest selection without concatenating all scores.

`torch.nn.utils.prune.global_unstructured` concatenates every score into one vector and sorts
it (time and several copies of the weights in memory). Here the k-th smallest score is found
by a bracket search: a fixed-seed sample of the scores gives a narrow interval that holds the
k-th value with overwhelming probability; one counting pass over the tensors (one at a time)
counts the scores below the interval and gathers the few inside it; `kthvalue` on those gives
the exact threshold. If the bracket missed (or the sample was unlucky) it is widened and the
pass repeated, so the result is always exact. A last pass builds the bool masks.

Ties at the threshold are broken deterministically: the first ones in flat order (targets in
order, then row-major index) are removed, so exactly `k` weights go.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

# Scores of one tensor, computed on demand (the selection never holds all of them at once).
# It is given a float32 scratch tensor shaped like the weight that it may fill and return
# (no allocation: fresh multi-megabyte temporaries cost page faults on every pass), or None.
ScoreFn = Callable[[torch.Tensor | None], torch.Tensor]
# Scores at given flat positions of one tensor (cheap sampling).
SampleFn = Callable[[torch.Tensor], torch.Tensor]

SAMPLE = 1 << 18


CHUNK = 1 << 20  # elements per comparison step: small buffers, exact float32 counts


class _Scratch:
    """Reusable buffers: float32 scores sized for the largest tensor, two float32 chunks.

    Comparisons write float 0/1 into the chunks and are summed as floats: on CPU that is
    several times faster than producing and counting bool tensors.
    """

    def __init__(self, shapes: Sequence[tuple[int, ...]]) -> None:
        n = max((math.prod(s) for s in shapes), default=0)
        self.f = torch.empty(n)
        self.c1 = torch.empty(min(n, CHUNK))
        self.c2 = torch.empty(min(n, CHUNK))

    def floats(self, shape: tuple[int, ...]) -> torch.Tensor:
        return self.f[: math.prod(shape)].view(shape)


def _sample(sizes: Sequence[int], samplers: Sequence[SampleFn], total: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    parts = []
    for n, sample_at in zip(sizes, samplers, strict=True):
        if n == 0:
            continue
        m = max(1, round(SAMPLE * n / total))
        idx = torch.randint(n, (m,), generator=g)
        parts.append(sample_at(idx).float().reshape(-1).cpu())
    return torch.sort(torch.cat(parts)).values


class _Bracket:
    """What one pass over the scores learns about the interval [lo, hi]."""

    def __init__(self, capacity: int) -> None:
        self.below = 0  # scores < lo
        self.vals = torch.empty(capacity)  # scores in [lo, hi], in flat order
        self.idx = torch.empty(capacity, dtype=torch.int64)  # their flat positions
        self.counts: list[int] = []  # how many of them per tensor
        self.used = 0

    def add(self, vals: torch.Tensor, idx: torch.Tensor) -> None:
        n = vals.numel()
        if self.used + n > self.vals.numel():
            size = max(2 * self.vals.numel(), self.used + n)
            vals_new, idx_new = torch.empty(size), torch.empty(size, dtype=torch.int64)
            vals_new[: self.used] = self.vals[: self.used]
            idx_new[: self.used] = self.idx[: self.used]
            self.vals, self.idx = vals_new, idx_new
        self.vals[self.used : self.used + n] = vals
        self.idx[self.used : self.used + n] = idx
        self.used += n

    @property
    def inside(self) -> torch.Tensor:
        return self.vals[: self.used]


def _bracket_pass(
    scores: Sequence[ScoreFn],
    shapes: Sequence[tuple[int, ...]],
    scratch: _Scratch,
    lo: float,
    hi: float,
    capacity: int,
    masks: list[torch.Tensor] | None = None,
) -> _Bracket:
    """One pass: count scores < lo, gather those in [lo, hi] with their positions, and (if
    `masks` is given) write keep = score > hi, which is final for every score outside the
    bracket. The scores inside are decided later, once the exact threshold is known.

    The gathered values go to preallocated buffers: keeping many small tensors alive
    between the large per-tensor temporaries fragments the heap and raises peak RSS.
    """
    out = _Bracket(capacity)
    for i, (fn, shape) in enumerate(zip(scores, shapes, strict=True)):
        flat = fn(scratch.floats(shape)).reshape(-1)
        if masks is not None and masks[i].device != flat.device:
            masks[i] = torch.empty(shape, dtype=torch.bool, device=flat.device)
        keep = masks[i].view(-1) if masks is not None else None
        before = out.used
        for start in range(0, flat.numel(), CHUNK):
            s = flat[start : start + CHUNK]
            if s.device.type == "cpu" and s.dtype == torch.float32:
                ge, gt = scratch.c1[: s.numel()], scratch.c2[: s.numel()]
                torch.ge(s, lo, out=ge)
                torch.gt(s, hi, out=gt)
            else:
                ge, gt = (s >= lo).float(), (s > hi).float()
            out.below += s.numel() - int(ge.sum())  # exact: at most 2**20 ones per chunk
            if keep is not None:
                keep[start : start + s.numel()].copy_(gt)
            ge.sub_(gt)  # 1 where lo <= s <= hi
            # nonzero + gather is an order of magnitude faster than masked_select here
            idx = ge.nonzero().squeeze(1)
            out.add(s[idx].float().cpu(), (idx + start).cpu())
            del s, idx
        out.counts.append(out.used - before)
        del flat
    return out


def _find(
    scores: Sequence[ScoreFn],
    sizes: Sequence[int],
    k: int,
    samplers: Sequence[SampleFn],
    shapes: Sequence[tuple[int, ...]],
    masks: list[torch.Tensor] | None,
) -> tuple[float, int, _Bracket]:
    """Threshold t (the k-th smallest score), the count below it, and the bracket pass."""
    total = sum(sizes)
    scratch = _Scratch(shapes)
    sample = _sample(sizes, samplers, total)
    s = sample.numel()
    q = k / total
    margin = 6.0 * math.sqrt(s * q * (1 - q)) + 8.0
    for _ in range(6):
        lo_i, hi_i = math.floor(q * s - margin), math.ceil(q * s + margin)
        lo = float(sample[lo_i]) if lo_i > 0 else -math.inf
        hi = float(sample[hi_i]) if hi_i < s - 1 else math.inf
        expected = (min(hi_i, s - 1) - max(lo_i, 0) + 1) / s * total
        b = _bracket_pass(scores, shapes, scratch, lo, hi, int(1.5 * expected) + 1024, masks)
        if b.below < k <= b.below + b.used:
            t = float(torch.kthvalue(b.inside, k - b.below).values)
            return t, b.below + int((b.inside < t).sum()), b
        if math.isinf(lo) and math.isinf(hi):
            break
        margin *= 8.0
    raise ValueError("scores contain NaN; cannot rank them (check the weights and gradients)")


def kth_smallest(
    scores: Sequence[ScoreFn],
    sizes: Sequence[int],
    k: int,
    samplers: Sequence[SampleFn],
    shapes: Sequence[tuple[int, ...]] | None = None,
) -> tuple[float, int]:
    """The k-th smallest score (1-based) over all tensors, and how many scores are below it."""
    total = sum(sizes)
    if not 1 <= k <= total:
        raise ValueError(f"k must be in [1, {total}], got {k}")
    if total <= SAMPLE:
        flat = torch.cat([fn(None).reshape(-1).float().cpu() for fn in scores])
        t = float(torch.kthvalue(flat, k).values)
        return t, int((flat < t).sum())
    shapes = [(n,) for n in sizes] if shapes is None else [tuple(s) for s in shapes]
    t, below, _ = _find(scores, sizes, k, samplers, shapes, None)
    return t, below


def _compare(op, s: torch.Tensor, value: float, out: torch.Tensor, scratch: _Scratch) -> None:
    """out = op(s, value) as bool, through float chunks when on CPU (faster than bool output)."""
    if s.device.type != "cpu" or s.dtype != torch.float32:
        op(s, value, out=out)
        return
    flat_s, flat_o = s.reshape(-1), out.view(-1)
    for start in range(0, flat_s.numel(), CHUNK):
        chunk = scratch.c1[: min(CHUNK, flat_s.numel() - start)]
        op(flat_s[start : start + CHUNK], value, out=chunk)
        flat_o[start : start + CHUNK].copy_(chunk)


def _decide_ties(keep: torch.Tensor, vals: torch.Tensor, t: float, r: int) -> int:
    """Among `vals` equal to t (in flat order) drop the first `r` and keep the rest; `keep`
    already holds vals > t. Returns how many ties are still to drop."""
    eq = (vals == t).nonzero().squeeze(1)
    if r >= eq.numel():
        return r - eq.numel()
    keep[eq[r:]] = True
    return 0


def keep_masks(
    scores: Sequence[ScoreFn],
    shapes: Sequence[tuple[int, ...]],
    threshold: float,
    ties_to_remove: int,
) -> list[torch.Tensor]:
    """Masks keeping scores > threshold, and the ties after the first `ties_to_remove`."""
    shapes = [tuple(s) for s in shapes]
    masks = [torch.empty(shape, dtype=torch.bool) for shape in shapes]
    scratch = _Scratch(shapes)
    r = ties_to_remove
    for i, fn in enumerate(scores):
        s = fn(scratch.floats(shapes[i]))
        if masks[i].device != s.device:  # scores on an accelerator: masks go there too
            masks[i] = torch.empty(s.shape, dtype=torch.bool, device=s.device)
        keep = masks[i]
        if r == 0:
            _compare(torch.ge, s, threshold, keep, scratch)
        else:
            _compare(torch.gt, s, threshold, keep, scratch)
            r = _decide_ties(keep.view(-1), s.reshape(-1), threshold, r)
        del s
    return masks


def select_smallest(
    scores: Sequence[ScoreFn],
    sizes: Sequence[int],
    k: int,
    samplers: Sequence[SampleFn] | None = None,
    shapes: Sequence[tuple[int, ...]] | None = None,
) -> list[torch.Tensor]:
    """Bool keep-masks removing exactly the `k` lowest scores across all tensors.

    `scores[i](scratch)` returns tensor i's scores (recomputed per pass, so only one is
    alive at a time); `samplers[i](index)` returns the scores at flat positions (defaults to
    computing all and indexing). Large inputs take one pass: the masks are written while
    bracketing, and only the few scores inside the bracket are revisited.
    """
    shapes = [tuple(fn(None).shape) for fn in scores] if shapes is None else shapes
    shapes = [tuple(s) for s in shapes]
    if samplers is None:
        samplers = [lambda idx, fn=fn: fn(None).reshape(-1)[idx] for fn in scores]
    total = sum(sizes)
    if k <= 0:
        return [torch.ones(shape, dtype=torch.bool) for shape in shapes]
    if k >= total:
        return [torch.zeros(shape, dtype=torch.bool) for shape in shapes]
    if total <= SAMPLE:
        t, below = kth_smallest(scores, sizes, k, samplers, shapes)
        return keep_masks(scores, shapes, t, k - below)
    # Masks are allocated before any score so that they sit together in memory instead of
    # between freed temporaries (which would raise peak RSS).
    masks = [torch.empty(shape, dtype=torch.bool) for shape in shapes]
    t, below, b = _find(scores, sizes, k, samplers, shapes, masks)
    r = k - below
    pos = 0
    for mask, count in zip(masks, b.counts, strict=True):
        vals, idx = b.vals[pos : pos + count], b.idx[pos : pos + count]
        pos += count
        keep = vals > t
        r = _decide_ties(keep, vals, t, r)
        mask.view(-1)[idx.to(mask.device)] = keep.to(mask.device)
    return masks
