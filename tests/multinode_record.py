"""A callback for the multi-node tests: what each process trained, in ``<out>/rank<r>.pt``."""

from pathlib import Path

import torch
from lightning.pytorch import Callback

from minc_lightning.data.sampling import SeededSampler


class Record(Callback):
    """On each process: its rank and node, the step it ended at, Λ, the online weights and,
    per epoch, the dataset positions its sampler dealt to it."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.positions: dict[int, list[int]] = {}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        dm = trainer.datamodule
        sampler = SeededSampler(dm.train_set, dm.batch_size, seed=dm.hparams.seed)
        sampler.set_epoch(trainer.current_epoch)
        self.positions[trainer.current_epoch] = [int(i) for i, _ in sampler]

    def on_train_end(self, trainer, pl_module) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        online = [p.detach().flatten() for p in pl_module.backbone.parameters()]
        record = {
            "rank": trainer.global_rank,
            "node": trainer.node_rank,
            "world": trainer.world_size,
            "step": trainer.global_step,
            "lambda": pl_module.criterion.second_moment.clone(),
            "online": torch.cat(online),
            "positions": self.positions,
        }
        torch.save(record, self.out / f"rank{trainer.global_rank}.pt")
