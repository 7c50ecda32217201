"""Train an MLP on scikit-learn's digits with Lightning, clipping with AGC and pruning with a
cubic schedule; write the Lightning checkpoint to --out and print sparsity and clip statistics.

    python examples/lightning_digits.py --out runs/lightning
    python examples/lightning_digits.py --out runs/lightning --devices 2 --strategy ddp

The checkpoint holds plain weights (pruned ones are 0): `Digits.load_from_checkpoint` loads it
without secateurs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from secateurs.clip import AGC
from secateurs.integrations.lightning import Clipping, Pruning
from secateurs.prune import schedules, sparsity_report
from secateurs.zoo.data import digits


class Digits(pl.LightningModule):
    def __init__(self, hidden: int = 128, lr: float = 3e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        acc = (self(x).argmax(1) == y).float().mean()
        self.log("val/acc", acc, sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for digits.ckpt")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--sparsity", type=float, default=0.8)
    ap.add_argument("--devices", type=int, default=1)
    ap.add_argument("--strategy", default="auto")
    args = ap.parse_args(argv)

    pl.seed_everything(0, verbose=False)
    split = digits()
    train = DataLoader(TensorDataset(split.x_train, split.y_train), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(split.x_val, split.y_val), batch_size=512)
    steps = args.epochs * len(train) // args.devices
    clipping = Clipping(AGC(0.05))
    pruning = Pruning(
        schedules.schedule("cubic", target=args.sparsity, end=max(2, steps * 3 // 4), frequency=5)
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=args.devices,
        strategy=args.strategy,
        max_epochs=args.epochs,
        callbacks=[clipping, pruning],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    module = Digits()
    trainer.fit(module, train, val)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / "digits.ckpt"
    trainer.save_checkpoint(ckpt)
    pruned = sum(r.params for _, r in pruning.reports[-1:])
    zeros = sum(int((module.model[i].weight == 0).sum()) for i in (0, 2))
    summary = {
        "val_acc": float(trainer.callback_metrics["val/acc"]),
        "sparsity": zeros / pruned,  # of the weights the schedule prunes (not the classifier)
        "overall_sparsity": sparsity_report(module.model).sparsity,
        "clip": clipping.monitor.summary(),
        "checkpoint": str(ckpt),
    }
    if trainer.is_global_zero:
        print(
            f"final sparsity: {summary['sparsity']:.3f} of the pruned layers, "
            f"{summary['overall_sparsity']:.3f} of all parameters"
        )
        print(f"validation accuracy: {summary['val_acc']:.3f}")
        print("clipping:", json.dumps(summary["clip"]))
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
