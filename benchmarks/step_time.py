"""Median training-step time of MINCModule for objectives minc, byol and spectral.

Same backbone (torchvision ResNet-18 with the CIFAR stem), same 32 px batch, same optimizer;
objectives interleaved over two rounds (best median of each); the batch is held in memory
so only the step itself is timed (forward, loss, backward, LARS step, target EMA). Prints a
table and the ratios MINC/BYOL and MINC/spectral.

    python benchmarks/step_time.py [--batch_sizes 64 256] [--steps 12] [--device cpu]
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


def step_time(objective: str, batch_size: int, steps: int, warmup: int, device: str) -> float:
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
    return statistics.median(timer.times[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=2, choices=[1, 2])
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print("| batch | minc (s) | byol (s) | spectral (s) | minc / byol | minc / spectral |")
    print("|---:|---:|---:|---:|---:|---:|")
    for b in args.batch_sizes:
        # interleaved rounds, best median per objective: the first fit of a process pays for
        # allocator and thread-pool warm-up, which would otherwise land on one objective
        t = {o: float("inf") for o in ("minc", "byol", "spectral")}
        for order in [("byol", "minc", "spectral"), ("minc", "spectral", "byol")][: args.rounds]:
            for o in order:
                t[o] = min(t[o], step_time(o, b, args.steps, args.warmup, args.device))
        print(
            f"| {b} | {t['minc']:.3f} | {t['byol']:.3f} | {t['spectral']:.3f} | "
            f"{t['minc'] / t['byol']:.3f} | {t['minc'] / t['spectral']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
