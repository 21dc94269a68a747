"""Median training-step time of MINCModule for objectives minc, byol and spectral.

Same backbone (torchvision ResNet-18 with the CIFAR stem), same 32 px batch, same optimizer;
the batch is held in memory so only the step itself is timed (forward, loss, backward, LARS
step, target EMA). The objectives take turns over several rounds, each round in a rotated
order, so slow drift of the machine (other processes, allocator and thread-pool warm-up) falls
on all three alike; each objective's figure is the median of all its timed steps. Prints a
table, the ratios MINC/BYOL and MINC/spectral, and the range of MINC/BYOL over the rounds
(how far apart two measurements of the same thing land on this machine).

    python -m benchmarks.step_time [--batch_sizes 64 256] [--steps 5] [--rounds 3]
    python -m benchmarks.step_time --pairs 10   # MINC and BYOL losses alternating in one fit
    python -m benchmarks.step_time --loss_only  # the two losses alone, at the steps' shapes

The same script measures training throughput on a GPU, e.g. ResNet-50 at 224 px under
bf16-mixed, MINC next to BYOL:

    python -m benchmarks.step_time --device cuda --backbone resnet50 --image_size 224 \
        --precision bf16-mixed --batch_sizes 128 --objectives minc byol --steps 20 --warmup 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import quiet_trainer
from minc_lightning import BYOLLoss, MINCLoss, MINCModule
from minc_lightning.backbones import ResNet
from minc_lightning.objectives import OBJECTIVES  # minc first


class FixedBatches(Dataset):
    """The same two-view batch, ``steps`` times (so that data loading is not timed)."""

    def __init__(self, batch_size: int, image_size: int, steps: int) -> None:
        g = torch.Generator().manual_seed(0)
        shape = (batch_size, 3, image_size, image_size)
        self.views = [torch.randn(shape, generator=g) for _ in range(2)]
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


def fit_times(
    objective: str, batch_size: int, steps: int, args: argparse.Namespace, swap: bool = False
) -> list[float]:
    """Times of every step of one fit of ``steps`` steps; ``swap``: alternate the loss between
    the objective's and BYOL's every step (``SwapLoss``)."""
    torch.manual_seed(0)
    backbone = ResNet(args.backbone, cifar_stem=args.image_size <= 64)
    model = MINCModule(backbone, batch_size=batch_size, objective=objective, num_classes=10)
    loader = DataLoader(FixedBatches(batch_size, args.image_size, steps), batch_size=None)
    timer = StepTimer()
    trainer = quiet_trainer(
        args.device,
        args.precision,
        max_epochs=1,
        callbacks=([SwapLoss(model)] if swap else []) + [timer],
        log_every_n_steps=10**6,
    )
    trainer.fit(model, loader)
    return timer.times


def step_times(objective: str, batch_size: int, args: argparse.Namespace) -> list[float]:
    """Times of the timed steps of one fit (after ``args.warmup`` untimed ones)."""
    return fit_times(objective, batch_size, args.warmup + args.steps, args)[args.warmup :]


class SwapLoss(L.Callback):
    """Alternates the criterion of a MINC module between MINC's and BYOL's loss every step, so
    that both are timed in one fit, in adjacent steps, on the same networks and memory."""

    def __init__(self, pl_module: MINCModule) -> None:
        self.criteria = [pl_module.criterion, BYOLLoss()]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        pl_module.criterion = self.criteria[batch_idx % 2]


def paired_step_times(batch_size: int, args: argparse.Namespace) -> tuple[list, list]:
    """(MINC, BYOL) step times from one fit whose loss alternates (even steps: MINC)."""
    steps = 2 * (args.warmup + args.pairs)
    timed = fit_times("minc", batch_size, steps, args, swap=True)[2 * args.warmup :]
    return timed[0::2], timed[1::2]


def rate(images_per_second: float) -> str:
    x = images_per_second
    return f"{x:.1f}" if x >= 1 else f"{x:.3g}"


def loss_ms(objective: str, rows: int, dim: int = 256, repeats: int = 30) -> float:
    """Median time of the loss's forward and backward alone (ms) at the step's shapes: the only
    work in which the MINC and BYOL steps differ."""
    criterion = MINCLoss(dim, alpha=0.1) if objective == "minc" else BYOLLoss()  # the defaults
    g = torch.Generator().manual_seed(0)
    p = torch.randn(rows, dim, generator=g, requires_grad=True)
    t = torch.randn(rows, dim, generator=g)
    times = []
    for _ in range(repeats + 3):
        start = time.perf_counter()
        criterion(p, t).backward()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per fit")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per fit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default="resnet18", choices=["resnet18", "resnet50"])
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=OBJECTIVES)
    parser.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="instead of the table: one fit per batch size whose loss alternates between MINC's "
        "and BYOL's every step, this many timed pairs",
    )
    parser.add_argument("--loss_only", action="store_true", help="only time the two losses")
    args = parser.parse_args()
    if args.loss_only:
        return print_losses(args.batch_sizes)
    if args.pairs:
        return paired(args)
    objectives = tuple(o for o in OBJECTIVES if o in args.objectives)  # minc first
    others = [o for o in objectives if o != "minc"]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"{args.backbone} at {args.image_size} px, precision {args.precision}"
    )
    header = [f"{o} (s)" for o in objectives] + [f"{o} (img/s)" for o in objectives]
    header += [f"minc / {o}" for o in others if "minc" in objectives]
    if "byol" in others and "minc" in objectives:
        header.append("minc / byol per round")
    print("| batch | " + " | ".join(header) + " |")
    print("|---:|" + "---:|" * (len(header) - 1) + "---|")
    byol_step = {}
    for b in args.batch_sizes:
        times = {o: [] for o in objectives}
        per_round = []
        for r in range(args.rounds):
            order = objectives[r % len(objectives) :] + objectives[: r % len(objectives)]
            medians = {}
            for o in order:  # each round in a rotated order: drift falls on all alike
                steps = step_times(o, b, args)
                times[o] += steps
                medians[o] = statistics.median(steps)
            if "byol" in medians and "minc" in medians:
                per_round.append(medians["minc"] / medians["byol"])
        t = {o: statistics.median(v) for o, v in times.items()}
        cells = [f"{t[o]:.3f}" for o in objectives] + [rate(b / t[o]) for o in objectives]
        cells += [f"{t['minc'] / t[o]:.3f}" for o in others if "minc" in objectives]
        if per_round:
            cells.append(f"{min(per_round):.3f} to {max(per_round):.3f}")
        print(f"| {b} | " + " | ".join(cells) + " |", flush=True)
        if "minc" in t and "byol" in t:
            byol_step[b] = t["byol"]
    if byol_step and args.device == "cpu":  # the loss timer has no GPU synchronisation
        print("\nThe losses alone (forward + backward at the step's 2B × 256 rows, CPU):")
        print_losses(list(byol_step), byol_step)


def print_losses(batch_sizes: list[int], byol_step: dict[int, float] | None = None) -> None:
    """The two losses' cost per batch size; with BYOL's step time, the MINC / BYOL step ratio
    that the difference of the losses alone predicts."""
    header = "| batch | minc loss (ms) | byol loss (ms) |"
    print(header + (" minc / byol step predicted by the loss |" if byol_step else ""))
    print("|---:|---:|---:|" + ("---:|" if byol_step else ""))
    for b in batch_sizes:
        minc, byol = loss_ms("minc", 2 * b), loss_ms("byol", 2 * b)
        line = f"| {b} | {minc:.2f} | {byol:.2f} |"
        if byol_step:
            line += f" {1 + (minc - byol) / 1000 / byol_step[b]:.5f} |"
        print(line)


def paired(args: argparse.Namespace) -> None:
    """MINC / BYOL from adjacent steps of one fit: the networks, weights trajectory and memory
    are shared, so only the loss differs between the two halves of each pair."""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print("| batch | pairs | minc step (s) | byol step (s) | minc / byol | median pair ratio |")
    print("|---:|---:|---:|---:|---:|---:|")
    for b in args.batch_sizes:
        minc, byol = paired_step_times(b, args)
        pair = statistics.median(m / y for m, y in zip(minc, byol, strict=True))
        t_minc, t_byol = statistics.median(minc), statistics.median(byol)
        print(
            f"| {b} | {len(minc)} | {t_minc:.3f} | {t_byol:.3f} | {t_minc / t_byol:.3f} | "
            f"{pair:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
