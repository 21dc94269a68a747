"""Train the tiny MINCModule for a few steps on 1 or 2 CPU processes and record, after every
optimizer step, the loss, Λ, the online and the target weights (one file per process).

    python tests/ddp_script.py OUT_DIR DEVICES OBJECTIVE

Run as a script so Lightning's "ddp" strategy can launch the second process the usual way.
"""

import sys
from pathlib import Path

import lightning as L
import torch
from helpers import TwoViewToy, tiny_module
from torch.utils.data import DataLoader

from minc_lightning.data.sampling import SeededDataset, SeededSampler

GLOBAL_BATCH, STEPS = 8, 4


class Record(L.Callback):
    def __init__(self, out: Path) -> None:
        self.out, self.steps = out, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        flat = lambda module: torch.cat([p.detach().flatten() for p in module.parameters()])  # noqa: E731
        record = {
            "loss": outputs["loss"].detach().clone(),
            "labels": batch[1].clone(),
            "online": torch.cat([flat(pl_module.backbone), flat(pl_module.projector)]),
        }
        if hasattr(pl_module, "target_backbone"):
            record["target"] = torch.cat(
                [flat(pl_module.target_backbone), flat(pl_module.target_projector)]
            )
            record["lambda"] = pl_module.criterion.second_moment.clone()
            record["alpha"] = pl_module.plan.applied("alpha")  # as the rule scaled it
            record["tau_start"] = pl_module.plan.applied("tau_base")
        self.steps.append(record)

    def on_train_end(self, trainer, pl_module) -> None:
        torch.save(self.steps, self.out / f"rank{trainer.global_rank}.pt")


BATCH_NORMS = (
    torch.nn.BatchNorm1d,
    torch.nn.BatchNorm2d,
    torch.nn.BatchNorm3d,
    torch.nn.SyncBatchNorm,
)


def without_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Batch statistics of a local batch differ from those of the global batch, and
    SyncBatchNorm needs GPUs: for an exact CPU comparison every BatchNorm becomes identity."""
    for name, child in module.named_children():
        if isinstance(child, BATCH_NORMS):
            setattr(module, name, torch.nn.Identity())
        else:
            without_batchnorm(child)
    return module


def main() -> None:
    out, devices, objective = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    L.seed_everything(0)
    per_process = GLOBAL_BATCH // devices
    model = without_batchnorm(
        tiny_module(
            objective=objective,
            optimizer="lars",
            lr=0.5,
            weight_decay=1e-4,
            batch_size=per_process,
        )
    )
    # MINCDataModule's sampler: rank r takes positions r::world of each global batch
    toy = TwoViewToy(n=GLOBAL_BATCH * STEPS)
    sampler = SeededSampler(toy, per_process, shuffle=False)
    data = DataLoader(SeededDataset(toy), batch_size=per_process, sampler=sampler, drop_last=True)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_steps=STEPS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Record(out)],
    )
    trainer.fit(model, data)


if __name__ == "__main__":
    main()
