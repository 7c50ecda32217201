"""Prunable groups: which parameter slices disappear together when one unit is removed.

A *unit* is one removable channel (or head, or hidden unit): the list of slices of module
parameters that go with it. A *group* is the set of units that share their producing layers
(the units of one layer, or of the layers tied by residual additions); ratios apply per group.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
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
    """Units removed by one ratio. `kind` says what a unit is (channel, head, ...)."""

    name: str
    kind: str
    units: list[Unit]
    tie: str | None = None  # groups with the same tie remove the same number of units
    tie_size: int = 1  # how many groups share the tie
    channels_per_unit: int = 1

    @property
    def modules(self) -> set[str]:
        return {s.module for u in self.units for s in u.slices}


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(
        name == p or name.startswith(p + ".") or fnmatch.fnmatchcase(name, p) for p in patterns
    )


def graph_groups(model: nn.Module, analysis: Analysis) -> tuple[list[Group], dict[str, str]]:
    """Groups from the traced graph, and the reasons why layers' channels were kept."""
    uf = analysis.uf
    members: dict[int, dict[tuple[str, str], list[int]]] = defaultdict(lambda: defaultdict(list))
    for usage in analysis.usages:
        for pos, element in enumerate(usage.ids):
            members[uf.find(element)][(usage.module, usage.role)].append(pos)
    kept: dict[str, str] = {}
    by_key: dict[tuple[str, ...], list[Unit]] = defaultdict(list)
    modules = dict(model.named_modules())
    for root, slots in members.items():
        producers = sorted({m for (m, role) in slots if role == "out"})
        if not producers:
            continue
        reason = uf.frozen.get(root)
        if reason is not None:
            for p in producers:
                kept.setdefault(p, reason)
            continue
        slices = [Slice(m, role, tuple(sorted(set(pos)))) for (m, role), pos in slots.items()]
        by_key[tuple(producers)].append(Unit(slices))
    groups = []
    for producers, units in by_key.items():
        rnns = [p for p in producers if isinstance(modules.get(p), nn.RNNBase)]
        tie = rnns[0] if len(rnns) == 1 else None
        if len(rnns) > 1:
            for p in producers:
                kept.setdefault(p, "two recurrent layers share these units")
            continue
        tie_size = modules[tie].num_layers if tie is not None else 1
        # Channels per unit: >1 when GroupNorm groups are removed whole.
        width = min(len(s.positions) for s in units[0].slices if s.role == "out")
        if tie is not None:
            units = [
                Unit(
                    [
                        Slice(s.module, f"hidden:{modules[tie].num_layers - 1}", s.positions)
                        if s.module == tie and s.role == "out"
                        else s
                        for s in u.slices
                    ]
                )
                for u in units
            ]
        groups.append(
            Group(
                name="+".join(producers),
                kind="hidden" if tie else "channel",
                units=units,
                tie=tie,
                tie_size=tie_size,
                channels_per_unit=width,
            )
        )
    return groups, kept


def drop_protected(groups: list[Group], protect: Iterable[str]) -> list[Group]:
    """Remove units that touch a protected module (name, prefix or glob pattern)."""
    patterns = tuple(protect)
    if not patterns:
        return groups
    out = []
    for g in groups:
        units = [u for u in g.units if not any(_matches(s.module, patterns) for s in u.slices)]
        if units:
            g.units = units
            out.append(g)
    return out
