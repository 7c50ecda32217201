"""Which units to remove: per-layer or global ratio, per-layer limits, rounding, ties."""

from __future__ import annotations

import fnmatch
import math
from collections import defaultdict
from collections.abc import Mapping

from secateurs.prune.structural.groups import Group


def check_ratio(ratio: float, what: str = "ratio") -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, int | float):
        raise TypeError(f"{what} must be a number in [0, 1), got {type(ratio).__name__}")
    if not 0.0 <= float(ratio) < 1.0:
        raise ValueError(f"{what} must be in [0, 1) (the fraction of units removed), got {ratio}")
    return float(ratio)


def _limit(name: str, limits: Mapping[str, float]) -> float | None:
    for pattern, value in limits.items():
        if name == pattern or name.startswith(pattern + ".") or fnmatch.fnmatchcase(name, pattern):
            return value
    return None


# Recurrent hidden sizes are rounded to a multiple of this unless `round_to` says otherwise
# (kernels work in blocks of 8 or 16 floats). On a quiet CPU it made no measurable difference
# (154 or 152 kept units of 256: 2.2-2.4x faster, BENCHMARKS.md); it costs nothing either.
RNN_MULTIPLE = 8


def _rounded_keep(n: int, keep: int, round_to: int | None, group: Group) -> int:
    if group.kind == "hidden" and round_to is None:
        round_to = RNN_MULTIPLE
    # Heads, key/value groups and GroupNorm groups are removed whole: their counts stay as-is.
    if not round_to or group.kind in ("head", "kv-head group") or group.channels_per_unit > 1:
        return keep
    if n <= round_to:
        return n
    rounded = max(round_to, round(keep / round_to) * round_to)
    return min(n, rounded)


def select(
    groups: list[Group],
    ratio: float,
    *,
    global_ratio: bool = False,
    per_layer_limits: Mapping[str, float] | None = None,
    round_to: int | None = None,
) -> dict[int, list[int]]:
    """Indices (into ``group.units``) of the units to remove, per group index."""
    ratio = check_ratio(ratio)
    limits = dict(per_layer_limits or {})
    for key, value in limits.items():
        check_ratio(value, f"per_layer_limits[{key!r}]")
    if round_to is not None and (
        isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1
    ):
        raise ValueError(f"round_to must be a positive int, got {round_to!r}")

    counts: dict[int, int] = {}
    if global_ratio:
        scored = []
        for gi, g in enumerate(groups):
            mean = sum(max(u.importance, 0.0) for u in g.units) / len(g.units) or 1.0
            scored.extend((u.importance / mean, gi) for u in g.units)
        scored.sort()
        total = sum(len(g.units) for g in groups)
        wanted: dict[int, int] = defaultdict(int)
        for _, gi in scored[: math.floor(ratio * total + 1e-9)]:
            wanted[gi] += 1
        for gi, g in enumerate(groups):
            cap = _limit(g.name, limits)
            n = len(g.units)
            k = wanted.get(gi, 0)
            if cap is not None:
                k = min(k, math.floor(cap * n + 1e-9))
            if k >= n:
                raise ValueError(
                    f"global ratio {ratio} would remove every unit of {g.name!r}; lower the ratio "
                    f"or cap it with per_layer_limits={{{g.name!r}: 0.5}}"
                )
            counts[gi] = k
    else:
        for gi, g in enumerate(groups):
            r = _limit(g.name, limits)
            r = ratio if r is None else min(ratio, r)
            n = len(g.units)
            counts[gi] = math.floor(r * n + 1e-9)

    # Rounding of the kept count, then ties (an RNN keeps one hidden size for all layers).
    for gi, g in enumerate(groups):
        n = len(g.units)
        keep = _rounded_keep(n, n - counts[gi], round_to, g)
        if keep <= 0:
            raise ValueError(f"the ratio would remove every unit of {g.name!r}; lower it")
        counts[gi] = n - keep
    ties: dict[str, list[int]] = defaultdict(list)
    for gi, g in enumerate(groups):
        if g.tie is not None:
            ties[g.tie].append(gi)
    for members in ties.values():
        expected = groups[members[0]].tie_size
        k = min(counts[gi] for gi in members) if len(members) == expected else 0
        for gi in members:
            counts[gi] = k

    chosen: dict[int, list[int]] = {}
    for gi, g in enumerate(groups):
        k = counts[gi]
        if k <= 0:
            continue
        if g.parents:
            picked = _grouped(g, k)
            if picked:
                chosen[gi] = picked
            continue
        order = sorted(range(len(g.units)), key=lambda i, g=g: (g.units[i].importance, i))
        chosen[gi] = sorted(order[:k])
    return chosen


def _grouped(group: Group, k: int) -> list[int]:
    """Remove about `k` query heads: whole key/value groups, then as many from each group.

    Every remaining key/value head keeps the same number of query heads (the attention code
    repeats each key/value head that many times). Whole groups go first, by the summed
    importance of their query heads and their own; then the least important query heads of
    each remaining group.
    """
    parents = group.parents
    sizes = {len(children) for _, children in parents}
    if len(sizes) != 1:
        return []
    (rep,) = sizes
    n_kv = len(parents)

    def weight(entry: tuple) -> float:
        parent, children = entry
        own = parent.importance if parent is not None else 0.0
        return own + sum(group.units[i].importance for i in children)

    removable = [i for i, (p, _) in enumerate(parents) if p is not None]
    whole = min(k // rep, len(removable), n_kv - 1)
    gone = sorted(removable, key=lambda i: (weight(parents[i]), i))[:whole]
    # The rest spread evenly, rounded to the nearest count per group (so that 2 key/value
    # heads with 2 query heads each still lose one query head each at ratio 0.4).
    per_group = min(math.floor((k - whole * rep) / (n_kv - whole) + 0.5), rep - 1)
    out = [c for i in gone for c in parents[i][1]]
    for i, (_, children) in enumerate(parents):
        if i in gone or per_group <= 0:
            continue
        order = sorted(children, key=lambda c: (group.units[c].importance, c))
        out.extend(order[:per_group])
    return sorted(out)
