"""Run by test_lightning.py: Lightning DDP on 2 CPU processes (gloo) with Clipping + Pruning.

Lightning's "ddp" strategy starts the second process by running this script again. Each rank
writes its final weights and clip-norm history; the test checks that they are identical.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from secateurs.clip import AGC
from secateurs.integrations.lightning import Clipping, Pruning
from secateurs.prune import schedules
from secateurs.zoo.data import digits


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)
    split = digits()
    # shuffle=False; Lightning's DistributedSampler gives each rank half of every batch pair
    loader = DataLoader(TensorDataset(split.x_train[:384], split.y_train[:384]), batch_size=32)
    clipping = Clipping(AGC(0.02))
    pruning = Pruning(schedules.schedule("cubic", target=0.6, end=4, frequency=2))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=6,
        callbacks=[clipping, pruning],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    module = Net()
    trainer.fit(module, loader)
    rank = trainer.global_rank
    torch.save(
        {
            "state": {k: v.detach().clone() for k, v in module.state_dict().items()},
            "norms": clipping.monitor.norms.tolist(),
        },
        out / f"rank{rank}.pt",
    )
    trainer.save_checkpoint(out / "final.ckpt")
    if rank == 0:
        info = {"world_size": trainer.world_size, "strategy": type(trainer.strategy).__name__}
        (out / "rank0.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
