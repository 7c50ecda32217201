"""GANs that generate 8x8 digits: a WGAN with a weight-clipped critic and a DCGAN.

- WGAN (Arjovsky et al. 2017): MLP generator and critic; the critic's weights are clipped to
  [-c, c] after every critic step (`secateurs.clip.clip_weights_`), five critic steps per
  generator step, RMSprop.
- DCGAN (Radford et al. 2016): transposed-convolution generator with BatchNorm, strided
  convolution discriminator with LeakyReLU, logistic loss, Adam(beta1=0.5).

The generator is the part one ships, so it is the part that is pruned and measured; the
critic only serves training. `model(z)` generates images (N, 1, 8, 8) with values in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from secateurs.clip.skip import skip_flag, step_unless
from secateurs.train import Callback, FitResult, StepRecord


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.net = nn.Sequential(
            nn.Linear(z_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 64),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape(-1, 1, 8, 8)


class MLPCritic(nn.Module):
    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class ConvGenerator(nn.Module):
    def __init__(self, z_dim: int = 32, width: int = 32) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.project = nn.Sequential(
            nn.Linear(z_dim, 2 * width * 4, bias=False),
            nn.BatchNorm1d(2 * width * 4),
            nn.ReLU(),
            nn.Unflatten(1, (2 * width, 2, 2)),
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),  # 4x4
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),  # 8x8
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.project(z))


class ConvDiscriminator(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1),  # 4x4
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),  # 2x2
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * width * 4, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class GAN(nn.Module):
    """A generator and its critic (or discriminator); `forward(z)` runs the generator."""

    def __init__(self, kind: str = "wgan", z_dim: int = 32, width: int = 128) -> None:
        super().__init__()
        if kind == "wgan":
            self.generator: nn.Module = MLPGenerator(z_dim, width)
            self.critic: nn.Module = MLPCritic(width)
        elif kind == "dcgan":
            self.generator = ConvGenerator(z_dim, width)
            self.critic = ConvDiscriminator(width)
        else:
            raise ValueError(f"kind must be 'wgan' or 'dcgan', got {kind!r}")
        self.kind = kind
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)


def wgan(z_dim: int = 32, width: int = 128) -> GAN:
    """Factory for `--arch secateurs.zoo.gan:wgan`."""
    return GAN("wgan", z_dim=z_dim, width=width)


def dcgan(z_dim: int = 32, width: int = 32) -> GAN:
    """Factory for `--arch secateurs.zoo.gan:dcgan`."""
    return GAN("dcgan", z_dim=z_dim, width=width)


@torch.no_grad()
def sample(generator: nn.Module, n: int, z_dim: int, seed: int = 1234) -> torch.Tensor:
    """`n` images from fixed noise (seeded), with the generator in eval mode."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, z_dim, generator=g)
    was_training = generator.training
    generator.eval()
    try:
        device = next(generator.parameters()).device
        return generator(z.to(device)).cpu()
    finally:
        generator.train(was_training)


@dataclass
class GANFitResult(FitResult):
    """`FitResult` whose step losses are the generator's; the critic's are kept beside."""

    critic_losses: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class GANRecipe:
    """Optimiser and schedule of one GAN kind."""

    lr: float
    n_critic: int
    weight_clip: float | None  # the WGAN critic's weight range [-c, c]
    steps: int  # generator steps of the default training budget


RECIPES = {
    "wgan": GANRecipe(lr=5e-4, n_critic=5, weight_clip=0.05, steps=800),
    "dcgan": GANRecipe(lr=2e-3, n_critic=1, weight_clip=None, steps=600),
}


def _optimizer(kind: str, params: Any, lr: float) -> torch.optim.Optimizer:
    if kind == "wgan":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))


def train_gan(
    model: GAN,
    real: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float | None = None,
    clip: Callable[[nn.Module], Any] | None = None,
    aux_clip: Callable[[nn.Module], Any] | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
    seed: int = 0,
) -> GANFitResult:
    """Adversarial training for `steps` generator steps on `real` images (N, 1, 8, 8).

    `clip` is a gradient clipping rule for the generator, `aux_clip` one for the critic
    (use separate instances: rules may keep history). A rule whose stats say `skipped`
    skips that optimizer step. Callbacks see one record per generator step.
    """
    from secateurs.clip import clip_weights_

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if real.ndim != 4 or real.shape[0] < batch_size:
        raise ValueError(
            f"real must be (N >= batch_size={batch_size}, 1, 8, 8) images, got {tuple(real.shape)}"
        )
    recipe = RECIPES[model.kind]
    lr = recipe.lr if lr is None else lr
    gen, critic = model.generator, model.critic
    opt_g = _optimizer(model.kind, [p for p in gen.parameters() if p.requires_grad], lr)
    opt_d = _optimizer(model.kind, [p for p in critic.parameters() if p.requires_grad], lr)
    g = torch.Generator().manual_seed(seed)
    device = next(gen.parameters()).device
    bce = nn.functional.binary_cross_entropy_with_logits
    result = GANFitResult()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="train gan", unit="step", leave=False)
    model.train()
    try:
        for step in range(steps):
            for _ in range(recipe.n_critic):
                idx = torch.randint(len(real), (batch_size,), generator=g)
                x = real[idx].to(device)
                z = torch.randn(batch_size, model.z_dim, generator=g).to(device)
                with torch.no_grad():
                    fake = gen(z)
                d_real, d_fake = critic(x), critic(fake)
                if model.kind == "wgan":
                    d_loss = d_fake.mean() - d_real.mean()
                else:
                    d_loss = bce(d_real, torch.ones_like(d_real)) + bce(
                        d_fake, torch.zeros_like(d_fake)
                    )
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                stats_d = aux_clip(critic) if aux_clip is not None else None
                step_unless(opt_d, skip_flag(stats_d))
                if recipe.weight_clip is not None:
                    clip_weights_(critic, recipe.weight_clip)
            z = torch.randn(batch_size, model.z_dim, generator=g).to(device)
            out = critic(gen(z))
            g_loss = -out.mean() if model.kind == "wgan" else bce(out, torch.ones_like(out))
            opt_g.zero_grad(set_to_none=True)
            opt_d.zero_grad(set_to_none=True)
            g_loss.backward()
            stats = clip(gen) if clip is not None else None
            skip = skip_flag(stats)
            step_unless(opt_g, skip)
            record = StepRecord(
                step=step, epoch=0, loss_tensor=g_loss.detach(), clip=stats, skip=skip
            )
            result.steps.append(record)
            result.critic_losses.append(float(d_loss.detach()))
            if bar is not None:
                bar.update(1)
            if any([bool(cb.on_step_end(record, model)) for cb in callbacks]):
                result.stopped_early = True
                break
    finally:
        if bar is not None:
            bar.close()
    return result


def wgan_generator(z_dim: int = 32, hidden: int = 128) -> MLPGenerator:
    """Factory for the WGAN generator alone (what one ships and prunes)."""
    return MLPGenerator(z_dim, hidden)


def dcgan_generator(z_dim: int = 32, width: int = 32) -> ConvGenerator:
    """Factory for the DCGAN generator alone (what one ships and prunes)."""
    return ConvGenerator(z_dim, width)
