"""The two one-shot rules: what each gathers from the calibration inputs and how it prunes.

A rule prunes one ``[out, in]`` float32 matrix ``W`` whose inputs ``X`` (tokens x in) were
seen during calibration. Both keep a `Pattern`: a fraction of every output row (Wanda) or of
every block of columns (SparseGPT), or exactly N of every M consecutive inputs of a row.

- `Wanda` (Sun et al. 2023, "A Simple and Effective Pruning Approach for LLMs"): score
  ``|W_ij| * ||X_j||_2``, compared within each output row; the kept weights are unchanged.
- `SparseGPT` (Frantar & Alistarh 2023): optimal brain surgeon on ``H = X^T X`` column by
  column: each pruned weight's error is compensated on the columns not yet processed, using
  the Cholesky factor of the damped inverse Hessian; the mask of every `block_size` columns is
  chosen on ``W^2 / [H^-1]_jj^2`` just before those columns are processed ("lazy batch
  updates" and "adaptive mask selection" of the paper).

Input statistics are summed in float64: a float32 sum over many thousand tokens loses digits
that the Cholesky factorisation of a nearly singular Hessian needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from secateurs.prune.nm import nm_keep


@dataclass(frozen=True)
class Pattern:
    """What to keep: `sparsity` (fraction removed) or `nm` = (n kept, m per group)."""

    sparsity: float | None = None
    nm: tuple[int, int] | None = None

    @property
    def requested(self) -> float:
        if self.nm is not None:
            return 1 - self.nm[0] / self.nm[1]
        assert self.sparsity is not None
        return self.sparsity

    def __str__(self) -> str:
        return f"{self.nm[0]}:{self.nm[1]}" if self.nm is not None else f"{self.sparsity:g}"

    def keep_rows(self, score: torch.Tensor) -> torch.Tensor:
        """Keep-mask from scores of an ``[out, in]`` matrix: per row, or N:M along rows.
        Among equal scores the earlier column goes first (as in `nm_keep`)."""
        if self.nm is not None:
            return nm_keep(score, self.nm[0], self.nm[1], dim=1)
        assert self.sparsity is not None
        k = round(self.sparsity * score.shape[1])
        order = torch.argsort(score, dim=1, stable=True)
        keep = torch.ones_like(score, dtype=torch.bool)
        keep.scatter_(1, order[:, :k], False)
        return keep


class ColumnNorms:
    """Sum over tokens of x_j^2 for every input j (float64)."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.sq = torch.zeros(n, dtype=torch.float64, device=device)

    def update(self, x: torch.Tensor) -> None:
        self.sq += x.float().square().sum(0)


class Hessian:
    """X^T X summed over tokens (float64; each batch's product in float32)."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.h = torch.zeros(n, n, dtype=torch.float64, device=device)
        self.factor: torch.Tensor | None = None  # set once by SparseGPT (shared by q/k/v)

    def update(self, x: torch.Tensor) -> None:
        xf = x.float()
        self.h += xf.t() @ xf


class SingularHessianError(ValueError):
    """The damped Hessian of a layer is not positive definite."""


def _with_pruned(score: torch.Tensor, pruned: torch.Tensor | None) -> torch.Tensor:
    """Already pruned weights score lowest, so they are the first to go."""
    if pruned is None:
        return score
    return score.masked_fill(pruned, -torch.inf)


class Wanda:
    """Keep the weights with the largest ``|W_ij| * ||X_j||_2`` in each output row."""

    name = "wanda"
    Statistic = ColumnNorms

    def prune(
        self,
        w: torch.Tensor,
        stat: ColumnNorms,
        pattern: Pattern,
        pruned: torch.Tensor | None,
        name: str = "",
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(None: weights unchanged, keep-mask)."""
        score = w.abs().double() * stat.sq.sqrt()
        return None, pattern.keep_rows(_with_pruned(score, pruned))


class SparseGPT:
    """Prune and reconstruct: remove weights and update the rest to keep ``W X`` (OBS).

    `block_size`: columns processed together (lazy updates; the unstructured mask is chosen
    per block). `dampening`: fraction of the mean Hessian diagonal added to its diagonal.
    """

    name = "sparsegpt"
    Statistic = Hessian

    def __init__(self, block_size: int = 128, dampening: float = 0.01) -> None:
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be a positive int, got {block_size!r}")
        if not dampening >= 0:
            raise ValueError(f"dampening must be >= 0 (e.g. 0.01), got {dampening}")
        self.block_size = block_size
        self.dampening = float(dampening)

    def inverse_factor(self, h: torch.Tensor, name: str = "") -> torch.Tensor:
        """Upper Cholesky factor U of the damped H^-1 (H^-1 = U^T U), float64."""
        h = h.clone()
        diag = h.diagonal()
        diag.masked_fill_(diag == 0, 1.0)  # inputs that were always 0: any weight is exact
        diag.add_(self.dampening * diag.mean())
        low, info = torch.linalg.cholesky_ex(h)
        if int(info) == 0:  # one check per layer, not per column
            upper, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(low), upper=True)
        if int(info) != 0 or not bool(torch.isfinite(low).all()):
            raise SingularHessianError(
                f"the Hessian of the inputs of {name or 'a layer'} is singular even after "
                f"dampening={self.dampening:g} (or holds non-finite values): raise dampening "
                "(e.g. 0.1), give more or more varied calibration inputs, or exclude the layer"
            )
        return upper

    def prune(
        self,
        w: torch.Tensor,
        stat: Hessian,
        pattern: Pattern,
        pruned: torch.Tensor | None,
        name: str = "",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(updated weights, keep-mask).

        Works on W transposed, so that a column of W is a contiguous row, and spends two
        kernels per column (the error, and a rank-1 update of the columns left in the block):
        the column loop is what the time goes to on small layers.
        """
        cols, rows = w.shape[1], w.shape[0]
        n, m = pattern.nm if pattern.nm is not None else (0, 0)
        if m and self.block_size % m:
            raise ValueError(f"block_size {self.block_size} must be a multiple of m={m}")
        if stat.factor is None:
            stat.factor = self.inverse_factor(stat.h, name).to(w.dtype)
        hinv = stat.factor
        wt = w.t().contiguous()  # (in, out)
        dropt = torch.zeros(cols, rows, dtype=torch.bool, device=w.device)  # True = pruned
        prunedt = None if pruned is None else pruned.t()
        for i1 in range(0, cols, self.block_size):
            i2 = min(i1 + self.block_size, cols)
            w1, drop1 = wt[i1:i2], dropt[i1:i2]  # views: updated in place
            h1 = hinv[i1:i2, i1:i2]
            d = h1.diagonal()
            p1 = None if prunedt is None else prunedt[i1:i2]
            if pattern.nm is None:
                assert pattern.sparsity is not None
                drop1.copy_(_lowest(w1, d, p1, pattern.sparsity))
            scale = drop1.to(w.dtype) / d.unsqueeze(1)  # err = w * drop / [H^-1]_jj
            err = torch.empty_like(w1)
            for i in range(i2 - i1):
                if m and i % m == 0:
                    g = slice(i, i + m)
                    score = w1[g].square() / d[g].square().unsqueeze(1)
                    score = _with_pruned(score, None if p1 is None else p1[g]).t()  # (out, m)
                    gone = torch.argsort(score, dim=1, stable=True)[:, : m - n]
                    group = torch.zeros_like(score, dtype=torch.bool).scatter_(1, gone, True)
                    drop1[g] = group.t()
                    scale[g] = drop1[g].to(w.dtype) / d[g].unsqueeze(1)
                torch.mul(w1[i], scale[i], out=err[i])
                w1[i:].addr_(h1[i, i:], err[i], alpha=-1)  # compensate the columns left
            wt[i2:].addmm_(hinv[i1:i2, i2:].t(), err, alpha=-1)  # lazy update of the rest
        drop = dropt.t()
        return wt.t().masked_fill(drop, 0.0), ~drop


def _lowest(
    w1: torch.Tensor, d: torch.Tensor, pruned: torch.Tensor | None, sparsity: float
) -> torch.Tensor:
    """(block, out) drop-mask of the round(sparsity * size) lowest ``w^2 / [H^-1]_jj^2`` of a
    block of columns (already pruned weights first; ties: row-major order of W)."""
    score = _with_pruned(w1.square() / d.square().unsqueeze(1), pruned).t().reshape(-1)
    k = round(sparsity * score.numel())
    flat = torch.zeros(score.numel(), dtype=torch.bool, device=score.device)
    flat[torch.argsort(score, stable=True)[:k]] = True
    return flat.view(w1.shape[1], w1.shape[0]).t()
