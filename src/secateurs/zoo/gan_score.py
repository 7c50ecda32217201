"""Sample quality of generated digits, measured with a digits classifier.

Two numbers, both computed in float64:
- Frechet distance between Gaussian fits of classifier features of real and generated
  images (the FID recipe in a small feature space): 0 for identical statistics.
- Classifier score, exp(E_x KL(p(y|x) || p(y))) (the Inception-score recipe): between 1 and
  10; high when each sample looks like one clear digit and all digits appear.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from secateurs.zoo.data import digits
from secateurs.zoo.models import MLP


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2), in float64.

    The matrix square root goes through symmetric eigendecompositions, which stay real and
    stable for the positive semi-definite covariances of small samples.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    c1, c2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    if mu1.shape != mu2.shape or c1.shape != c2.shape or c1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"shapes do not match: mu {mu1.shape} / {mu2.shape}, cov {c1.shape} / {c2.shape}"
        )
    w1, v1 = np.linalg.eigh((c1 + c1.T) / 2)
    root1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    middle = root1 @ c2 @ root1
    w = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_root = float(np.sqrt(np.clip(w, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(c1) + np.trace(c2) - 2 * trace_root)


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features in float64."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be (N >= 2, D), got {f.shape}")
    return f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))


def classifier_score(probs: np.ndarray) -> float:
    """exp(mean_x KL(p(y|x) || p(y))) for (N, C) class probabilities, in float64."""
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"probs must be a non-empty (N, C) array, got {p.shape}")
    eps = 1e-12
    marginal = p.mean(0, keepdims=True)
    kl = (p * (np.log(p + eps) - np.log(marginal + eps))).sum(1)
    return float(np.exp(kl.mean()))


class DigitScorer:
    """A digits MLP (64-128-32-10) trained once; its 32 hidden features define the space.

    `score(images)` compares generated images with the held-out test digits.
    """

    def __init__(self, seed: int = 0, epochs: int = 20) -> None:
        split = digits(image=False, seed=seed)
        g = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = MLP((64, 128, 32, 10))
        opt = torch.optim.Adam(self.net.parameters(), lr=2e-3)
        n = len(split.x_train)
        for _ in range(epochs):
            for idx in torch.randperm(n, generator=g).split(64):
                loss = nn.functional.cross_entropy(self.net(split.x_train[idx]), split.y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.net.eval().requires_grad_(False)
        with torch.no_grad():
            self.test_accuracy = float(
                (self.net(split.x_test).argmax(1) == split.y_test).double().mean()
            )
        self.real_mu, self.real_cov = gaussian_fit(self.features(split.x_test))

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> np.ndarray:
        """Hidden features (N, 32) of images (N, 64) or (N, 1, 8, 8) with values in [0, 1]."""
        x = images.detach().float().reshape(images.shape[0], -1).cpu()
        if x.shape[1] != 64:
            raise ValueError(f"expected 8x8 images, got shape {tuple(images.shape)}")
        return self.net.net[:-1](x).double().numpy()

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> np.ndarray:
        x = images.detach().float().reshape(images.shape[0], -1).cpu()
        return torch.softmax(self.net(x).double(), dim=1).numpy()

    def score(self, images: torch.Tensor) -> dict[str, float]:
        """{"frechet": distance to test digits, "class_score": 1..10, "confidence": mean max p}."""
        if not torch.isfinite(images).all():
            return {"frechet": float("inf"), "class_score": 1.0, "confidence": 0.0}
        mu, cov = gaussian_fit(self.features(images))
        probs = self.probabilities(images)
        return {
            "frechet": frechet_distance(mu, cov, self.real_mu, self.real_cov),
            "class_score": classifier_score(probs),
            "confidence": float(probs.max(1).mean()),
        }


@functools.lru_cache(maxsize=2)
def digit_scorer(seed: int = 0) -> DigitScorer:
    """The scorer for `seed`, trained on first use and then reused (about a second)."""
    return DigitScorer(seed=seed)
