"""What a pruning operation did: one report type for every operation.

Masking operations (`unstructured_`, `nm_`, ...) fill `layers` (per tensor: size, non-zeros,
sparsity); `structured`, which removes units for real, also fills `groups` (units per group
before and after) and the model's parameter and MAC counts before and after.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayerReport:
    """One tensor: its shape, size, non-zeros after the operation, and the sparsity asked for."""

    name: str
    shape: tuple[int, ...]
    params: int
    nonzeros: int
    requested: float | None = None
    nbytes: int | None = None

    @property
    def sparsity(self) -> float:
        """Achieved fraction of zeros."""
        return 1.0 - self.nonzeros / self.params if self.params else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "shape": list(self.shape),
            "params": self.params,
            "nonzeros": self.nonzeros,
            "requested_sparsity": self.requested,
            "sparsity": self.sparsity,
        }
        if self.nbytes is not None:
            d["bytes"] = self.nbytes
        return d


@dataclass(frozen=True)
class GroupChange:
    """One structural group (channels, neurons, heads, hidden units): units before and after."""

    name: str
    kind: str
    before: int
    after: int
    modules: list[str]


@dataclass(frozen=True)
class PruneReport:
    """What a pruning operation did.

    `requested` is the overall sparsity (or, for `structured`, the ratio of units) asked for;
    `method` names the operation and its criterion or importance. `layers` lists masked tensors;
    `groups`, the parameter and MAC counts, `kept` (what could not be pruned, and why), `notes`
    and `traced` describe a structural removal and stay empty/None for masking operations.
    """

    layers: list[LayerReport] = field(default_factory=list)
    requested: float | None = None
    method: str = ""
    groups: list[GroupChange] = field(default_factory=list)
    params_before: int | None = None
    params_after: int | None = None
    macs_before: int | None = None
    macs_after: int | None = None
    kept: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    traced: bool = True

    @property
    def structural(self) -> bool:
        """True when the operation removed units (the model changed size)."""
        return self.params_before is not None

    @property
    def mac_reduction(self) -> float | None:
        """macs_before / macs_after (None when either is unknown)."""
        if not self.macs_before or not self.macs_after:
            return None
        return self.macs_before / self.macs_after

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def nonzeros(self) -> int:
        return sum(layer.nonzeros for layer in self.layers)

    @property
    def sparsity(self) -> float:
        """Achieved fraction of zeros over all reported tensors."""
        return 1.0 - self.nonzeros / self.params if self.params else 0.0

    @property
    def compression(self) -> float:
        """params / nonzeros: how many times fewer non-zero weights (inf when all are zero)."""
        return self.params / self.nonzeros if self.nonzeros else float("inf")

    def __getitem__(self, name: str) -> LayerReport:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r} in the report; layers: {[x.name for x in self.layers]}")

    def as_dict(self) -> dict[str, Any]:
        if self.structural:
            return {
                "method": self.method,
                "requested": self.requested,
                "params_before": self.params_before,
                "params_after": self.params_after,
                "macs_before": self.macs_before,
                "macs_after": self.macs_after,
                "mac_reduction": self.mac_reduction,
                "groups": [asdict(g) for g in self.groups],
                "kept": dict(self.kept),
                "notes": list(self.notes),
                "traced": self.traced,
            }
        return {
            "method": self.method,
            "layers": [layer.as_dict() for layer in self.layers],
            "total": {
                "params": self.params,
                "nonzeros": self.nonzeros,
                "requested_sparsity": self.requested,
                "sparsity": self.sparsity,
                "compression": self.compression if self.nonzeros else None,
            },
        }

    def to_table(self, *, rich: bool = False, title: str | None = None) -> str:
        """A table as text: plain aligned columns, or rich's box drawing with `rich=True`."""
        if self.structural:
            return self._structural_table(title)
        show_req = any(layer.requested is not None for layer in self.layers)
        show_bytes = any(layer.nbytes is not None for layer in self.layers)
        header = ["layer", "shape", "params", "nonzeros", "sparsity"]
        if show_req:
            header.insert(4, "requested")
        if show_bytes:
            header.append("bytes")
        rows = [
            self._row(
                x.name,
                x.shape,
                x.params,
                x.nonzeros,
                x.requested,
                x.sparsity,
                x.nbytes,
                show_req,
                show_bytes,
            )
            for x in self.layers
        ]
        total_bytes = sum(x.nbytes or 0 for x in self.layers) if show_bytes else None
        total = self._row(
            "total",
            None,
            self.params,
            self.nonzeros,
            self.requested,
            self.sparsity,
            total_bytes,
            show_req,
            show_bytes,
        )
        if rich:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=title)
            for i, h in enumerate(header):
                table.add_column(h, justify="left" if i < 2 else "right")
            for r in rows:
                table.add_row(*r)
            table.add_section()
            table.add_row(*total)
            buf = io.StringIO()
            Console(file=buf, width=200, color_system=None).print(table)
            return buf.getvalue().rstrip()
        widths = [max(len(h), *(len(r[i]) for r in [*rows, total])) for i, h in enumerate(header)]

        def fmt(cells: list[str]) -> str:
            return "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        lines = [title] if title else []
        lines += [fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows), fmt(total)]
        lines += [f"left dense: {name}: {why}" for name, why in self.kept.items()]
        return "\n".join([*lines, *self.notes])

    def _structural_table(self, title: str | None) -> str:
        lines = [title] if title else []
        lines.append(f"{'group':<40} {'kind':<14} {'before':>7} {'after':>7}")
        for g in self.groups:
            lines.append(f"{g.name:<40} {g.kind:<14} {g.before:>7} {g.after:>7}")
        lines.append(f"parameters: {self.params_before:,} -> {self.params_after:,}")
        if self.macs_before is not None and self.macs_after is not None:
            lines.append(
                f"MACs: {self.macs_before:,} -> {self.macs_after:,} "
                f"({self.mac_reduction:.2f}x fewer)"
            )
        for name, reason in sorted(self.kept.items()):
            lines.append(f"kept {name}: {reason}")
        lines.extend(self.notes)
        return "\n".join(lines)

    @staticmethod
    def _row(name, shape, params, nonzeros, requested, sparsity, nbytes, show_req, show_bytes):
        cells = [
            name,
            "x".join(map(str, shape)) if shape else "",
            f"{params:,}",
            f"{nonzeros:,}",
            f"{sparsity:.2%}",
        ]
        if show_req:
            cells.insert(4, "" if requested is None else f"{requested:.2%}")
        if show_bytes:
            cells.append("" if nbytes is None else f"{nbytes:,}")
        return cells

    def __str__(self) -> str:
        return self.to_table()
