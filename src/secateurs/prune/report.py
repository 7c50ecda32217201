"""What a pruning operation did: per layer and in total, parameters, non-zeros, sparsity."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
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
class PruneReport:
    """Per-layer results plus totals; `requested` is the overall sparsity asked for, if any."""

    layers: list[LayerReport] = field(default_factory=list)
    requested: float | None = None
    method: str = ""

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
