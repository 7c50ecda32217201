"""Prunable groups: which parameter slices disappear together when one unit is removed.

A *unit* is one removable channel (or head, or hidden unit): the list of slices of module
parameters that go with it. A *group* is the set of units that share their producing layers
(the units of one layer, or of the layers tied by residual additions); ratios apply per group.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from secateurs.prune.structural.graph import Analysis


@dataclass(frozen=True)
class Slice:
    """Positions `positions` of module `module` along the axis that `role` names.

    Roles: ``out`` (output features/channels), ``in`` (input features/channels), ``norm``
    (per-channel norm parameters), ``dw`` (input channels of a depthwise convolution),
    ``hidden:L`` (hidden units of layer L of an RNN).
    """

    module: str
    role: str
    positions: tuple[int, ...]


@dataclass
class Unit:
    slices: list[Slice]
    importance: float = 0.0


@dataclass
class Group:
    """Units removed by one ratio. `kind` says what a unit is (channel, head, ...).

    `parents` (grouped-query attention): each entry is a key/value head's own slices and the
    indices of the query-head units that read it. Query heads are removed in equal numbers
    per key/value head; a key/value head goes only with all its query heads.
    """

    name: str
    kind: str
    units: list[Unit]
    tie: str | None = None  # groups with the same tie remove the same number of units
    tie_size: int = 1  # how many groups share the tie
    channels_per_unit: int = 1
    parents: list[tuple[Unit | None, list[int]]] = field(default_factory=list)

    @property
    def modules(self) -> set[str]:
        units = self.units + [p for p, _ in self.parents if p is not None]
        return {s.module for u in units for s in u.slices}

    def removed_slices(self, indices: Iterable[int]) -> list[Slice]:
        """The slices that go when units `indices` go (and parents left without readers)."""
        chosen = set(indices)
        out = [s for i in sorted(chosen) for s in self.units[i].slices]
        for parent, children in self.parents:
            if parent is not None and set(children) <= chosen:
                out.extend(parent.slices)
        return out


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(
        name == p or name.startswith(p + ".") or fnmatch.fnmatchcase(name, p) for p in patterns
    )


def _is_producer(role: str) -> bool:
    return role == "out" or role.startswith("hidden:")


def graph_groups(model: nn.Module, analysis: Analysis) -> tuple[list[Group], dict[str, str]]:
    """Groups from the exported graph, and the reasons why layers' channels were kept."""
    uf = analysis.uf
    members: dict[int, dict[tuple[str, str], list[int]]] = defaultdict(lambda: defaultdict(list))
    for usage in analysis.usages:
        for pos, element in enumerate(usage.ids):
            members[uf.find(element)][(usage.module, usage.role)].append(pos)
    heads = {uf.find(h): size for h, size in analysis.heads.items()}
    kept: dict[str, str] = {}
    modules = dict(model.named_modules())

    def producers(root: int) -> tuple[str, ...]:
        return tuple(sorted({m for (m, role) in members.get(root, {}) if _is_producer(role)}))

    def unit(root: int) -> Unit:
        slots = members[root]
        return Unit([Slice(m, role, tuple(sorted(set(pos)))) for (m, role), pos in slots.items()])

    if not analysis.prune_embedding:
        # An embedding's width (the model's hidden size) is kept unless asked; a table whose
        # width is a number of heads (T5's relative position bias) goes with those heads.
        for root, slots in members.items():
            if root not in heads and any(
                role == "out" and isinstance(modules.get(m), nn.Embedding) for m, role in slots
            ):
                uf.frozen.setdefault(
                    root, "embedding width (pass prune_embedding=True to prune it)"
                )

    def usable(root: int) -> bool:
        reason = uf.frozen.get(root)
        if reason is not None:
            for p in producers(root):
                kept.setdefault(p, reason)
            return False
        return bool(producers(root))

    # Grouped-query attention: key/value heads (parents) and the query heads reading them.
    child_parents: dict[int, set[int]] = defaultdict(set)
    for parent, children in analysis.expansions:
        for c in children:
            child_parents[uf.find(c)].add(uf.find(parent))
    in_expansion = set(child_parents) | {p for ps in child_parents.values() for p in ps}
    gqa = _gqa_groups(child_parents, heads, producers, unit, usable, uf)
    groups: list[Group] = []
    if gqa is None:
        for root in in_expansion:
            if producers(root):
                for p in producers(root):
                    kept.setdefault(p, "repeated heads whose grouping could not be followed")
    else:
        groups.extend(gqa)

    by_key: dict[tuple[str, ...], list[tuple[int, Unit]]] = defaultdict(list)
    for root in members:
        if root in in_expansion or not usable(root):
            continue
        by_key[producers(root)].append((root, unit(root)))
    for prods, entries in by_key.items():
        units = [u for _, u in entries]
        rnns = [p for p in prods if isinstance(modules.get(p), nn.RNNBase)]
        if len(rnns) > 1:
            for p in prods:
                kept.setdefault(p, "two recurrent layers share these units")
            continue
        tie = rnns[0] if rnns else None
        width = min(len(s.positions) for s in units[0].slices if _is_producer(s.role))
        is_head = any(r in heads for r, _ in entries)
        if is_head:
            width = next(heads[r] for r, _ in entries if r in heads)
        groups.append(
            Group(
                name="+".join(prods),
                kind="hidden" if tie else ("head" if is_head else "channel"),
                units=units,
                tie=tie,
                tie_size=modules[tie].num_layers if tie is not None else 1,
                channels_per_unit=width,
            )
        )
    return groups, kept


def _gqa_groups(child_parents, heads, producers, unit, usable, uf) -> list[Group] | None:
    """One group per attention: query heads as units, key/value heads as their parents."""
    # Key and value heads that share query heads form one key/value group.
    link = {p: p for ps in child_parents.values() for p in ps}

    def top(p: int) -> int:
        while link[p] != p:
            p = link[p]
        return p

    for ps in child_parents.values():
        first, *rest = sorted(ps)
        for p in rest:
            link[top(p)] = top(first)
    kv_groups: dict[int, list[int]] = defaultdict(list)
    for child, ps in child_parents.items():
        kv_groups[top(next(iter(ps)))].append(child)
    by_attention: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for kv, children in kv_groups.items():
        by_attention[tuple(sorted({m for c in children for m in producers(c)}))].append(kv)
    groups = []
    for prods, kvs in by_attention.items():
        units: list[Unit] = []
        parents: list[tuple[Unit | None, list[int]]] = []
        ok = True
        for kv in sorted(kvs):
            children = sorted(kv_groups[kv])
            if not all(usable(c) for c in children):
                ok = False
                break
            own = [p for p in link if top(p) == kv]
            parent_ok = all(usable(p) for p in own)
            start = len(units)
            units.extend(unit(c) for c in children)
            slices = [s for p in own for s in unit(p).slices] if parent_ok else []
            parents.append((Unit(slices) if parent_ok else None, list(range(start, len(units)))))
        if not ok or not units:
            continue
        if not all(c in heads for c in (uf.find(c) for c in kv_groups[kvs[0]])):
            # Not attention heads: a key/value unit goes only with all its readers.
            units = [
                Unit(u.slices + [s for i in idx for s in units[i].slices])
                for u, idx in parents
                if u is not None
            ]
            parents = []
            if not units:
                continue
        width = heads.get(uf.find(kv_groups[kvs[0]][0]), 1)
        groups.append(
            Group(
                name="+".join(prods),
                kind="head",
                units=units,
                channels_per_unit=width,
                parents=parents,
            )
        )
    return groups


def drop_protected(groups: list[Group], protect: Iterable[str]) -> list[Group]:
    """Remove units that touch a protected module (name, prefix or glob pattern)."""
    patterns = tuple(protect)
    if not patterns:
        return groups
    out = []
    for g in groups:
        if g.parents:  # indices tie query heads to key/value heads: all or nothing
            if not any(_matches(m, patterns) for m in g.modules):
                out.append(g)
            continue
        units = [u for u in g.units if not any(_matches(s.module, patterns) for s in u.slices)]
        if units:
            g.units = units
            out.append(g)
    return out
