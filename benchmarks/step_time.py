"""Median training-step time of MINCModule for objectives minc, byol and spectral.

Same backbone (torchvision ResNet-18 with the CIFAR stem), same 32 px batch, same optimizer;
the batch is held in memory so only the step itself is timed (forward, loss, backward, LARS
step, target EMA). The objectives take turns over several rounds, each round in a rotated
order, so slow drift of the machine (other processes, allocator and thread-pool warm-up) falls
on all three alike; each objective's figure is the median of all its timed steps. Prints a
table, the ratios MINC/BYOL and MINC/spectral, and the range of MINC/BYOL over the rounds
(how far apart two measurements of the same thing land on this machine).

    python benchmarks/step_time.py [--batch_sizes 64 256] [--steps 5] [--rounds 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from minc_lightning import MINCModule
from minc_lightning.backbones import ResNet


class FixedBatches(Dataset):
    def __init__(self, batch_size: int, steps: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.views = [torch.randn(batch_size, 3, 32, 32, generator=g) for _ in range(2)]
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int):
        return [v for v in self.views], torch.zeros(len(self.views[0]), dtype=torch.long)


class StepTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def _sync(self, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.times.append(time.perf_counter() - self.start)


def step_times(
    objective: str, batch_size: int, steps: int, warmup: int, device: str
) -> list[float]:
    torch.manual_seed(0)
    model = MINCModule(ResNet("resnet18", cifar_stem=True), objective=objective, num_classes=10)
    loader = DataLoader(FixedBatches(batch_size, steps), batch_size=None)
    timer = StepTimer()
    trainer = L.Trainer(
        max_epochs=1,
        accelerator=device,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        log_every_n_steps=10**6,
    )
    trainer.fit(model, loader)
    return timer.times[warmup:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per fit")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per fit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    objectives = ("minc", "byol", "spectral")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(
        "| batch | minc (s) | byol (s) | spectral (s) | minc / byol | minc / spectral | "
        "minc / byol per round |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|")
    for b in args.batch_sizes:
        times = {o: [] for o in objectives}
        per_round = []
        for r in range(args.rounds):
            order = objectives[r % 3 :] + objectives[: r % 3]  # rotate who goes first
            medians = {}
            for o in order:
                steps = step_times(o, b, args.warmup + args.steps, args.warmup, args.device)
                times[o] += steps
                medians[o] = statistics.median(steps)
            per_round.append(medians["minc"] / medians["byol"])
        t = {o: statistics.median(v) for o, v in times.items()}
        print(
            f"| {b} | {t['minc']:.3f} | {t['byol']:.3f} | {t['spectral']:.3f} | "
            f"{t['minc'] / t['byol']:.3f} | {t['minc'] / t['spectral']:.3f} | "
            f"{min(per_round):.3f} to {max(per_round):.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
