"""Reproduce docs/results.md: does MINC do what the paper claims, measured on Fashion-MNIST.

Four experiments, all on the same small CNN, augmentations and tuning effort:

1. batch sweep: objectives minc, spectral and byol at batch sizes 32-256, several seeds;
   kNN and linear accuracy of the frozen backbone (the paper: MINC beats the spectral
   contrastive loss at every batch size, and MINC at the smallest batch beats it at the largest);
2. gradient variance: variance of the loss gradient over repeated minibatches at fixed weights,
   for minc and spectral, against batch size (the paper: MINC has lower variance);
3. Λ spectrum over training with ``triangular`` on and off (the paper: tril(Λ) drives Λ to a
   diagonal with decreasing entries);
4. ablations of the open choices of docs/method.md §7 (alpha, mu, moment_source, predictor).

Every finished run is stored in ``--out/runs.json`` (default ``docs/data``) at once, so an
interrupted script resumes where it stopped; ``python -m benchmarks.report`` draws the page.

    python -m benchmarks.reproduce                 # about an hour on a 2-core CPU
    python -m benchmarks.reproduce --seeds 1 --epochs 1 --train_images 2000   # a smoke run
    # on a GPU: a CIFAR-stem ResNet-18, longer, data and page in folders of their own
    python -m benchmarks.reproduce --device cuda --backbone resnet18 --precision bf16-mixed \
        --train_images 20000 --val_images 10000 --epochs 10 --workers 8 --root data/fmnist \
        --out docs/data/gpu && python -m benchmarks.report --data docs/data/gpu --docs docs/gpu
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from benchmarks.common import DATA, ROOT, quiet_trainer, score
from minc_lightning.backbones import ConvNet, ResNet
from minc_lightning.data import MINCDataModule
from minc_lightning.diagnostics import lambda_diagnostics, lambda_eigenvalues
from minc_lightning.loss import MINCLoss
from minc_lightning.module import MINCModule
from minc_lightning.objectives import OBJECTIVES
from minc_lightning.scoring import Pixels


class LambdaTrace(L.Callback):
    """Λ's diagonal, eigenvalues and off-diagonal energy every ``every`` steps."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.trace = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0:
            self.record(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if not self.trace or self.trace[-1]["step"] != trainer.global_step:
            self.record(trainer, pl_module)

    def record(self, trainer, pl_module) -> None:
        if isinstance(pl_module.criterion, MINCLoss):
            lam = pl_module.criterion.second_moment.float().cpu()
            stats = lambda_diagnostics(lam, top_k=0)
            self.trace.append(
                {
                    "step": trainer.global_step,
                    "offdiag_ratio": stats["offdiag_ratio"],
                    "diag_sorted": stats["diag_sorted"],
                    "diag": lam.diagonal().tolist(),
                    "eig": lambda_eigenvalues(lam).tolist(),
                }
            )


def backbone(args: argparse.Namespace) -> torch.nn.Module:
    if args.backbone == "convnet":
        return ConvNet(width=args.width)
    return ResNet(args.backbone, cifar_stem=True)  # 28 px: the small-image stem


def build(
    objective: str, args: argparse.Namespace, seed: int, batch_size: int, **overrides: Any
) -> MINCModule:
    torch.manual_seed(seed)
    hparams = dict(
        backbone=backbone(args),
        batch_size=batch_size,
        projection_hidden_dim=512,
        projection_dim=64,
        prediction_hidden_dim=512,
        objective=objective,
        optimizer="lars",
        lr=args.lr,
        weight_decay=1e-5,
        warmup_epochs=0.5,
        num_classes=0,
    )
    return MINCModule(**(hparams | overrides))


def data(args: argparse.Namespace, batch_size: int, seed: int = 0) -> MINCDataModule:
    return MINCDataModule(
        "fashion_mnist",
        root=args.root,
        batch_size=batch_size,
        num_workers=args.workers,
        train_subset=args.train_images,
        val_subset=args.val_images,
        seed=seed,
        augment_on="loader",  # the mode docs/results.md's figures were measured in
    )


def train_and_evaluate(
    objective: str,
    batch_size: int,
    seed: int,
    args: argparse.Namespace,
    trace_every: int = 0,
    train: bool = True,
    **overrides: Any,
) -> dict:
    """Pre-train (unless ``train`` is False: the random-init baseline) and evaluate."""
    L.seed_everything(seed, verbose=False)
    model = build(objective, args, seed, batch_size, **overrides)
    dm = data(args, batch_size, seed)
    callbacks = [LambdaTrace(trace_every)] if trace_every else []
    trainer = quiet_trainer(
        args.device,
        args.precision,
        max_epochs=args.epochs,
        limit_val_batches=0,
        callbacks=callbacks,
    )
    start = time.time()
    if train:
        trainer.fit(model, dm)
    seconds = time.time() - start
    result = {
        "objective": objective,
        "batch_size": batch_size,
        "seed": seed,
        "overrides": {k: v for k, v in overrides.items() if not isinstance(v, torch.nn.Module)},
        **score(model.backbone, dm, torch.device(args.device), args.knn_k, args.linear_epochs),
        "train_seconds": seconds,
        "steps": trainer.global_step,
        "final_loss": float(trainer.callback_metrics.get("train/loss", float("nan"))),
    }
    if trace_every:
        result["lambda_trace"] = callbacks[0].trace
    return result


def pixel_baseline(args: argparse.Namespace) -> dict:
    """The same kNN and linear protocol on the raw pixels of the normalised eval images (784
    values: the three channels of a grayscale image are one): the baseline to beat."""
    scores = score(Pixels(), data(args, 256), torch.device("cpu"), args.knn_k, args.linear_epochs)
    return {"objective": "pixels", **scores}


def gradient_variance(
    objective: str, batch_size: int, args: argparse.Namespace, repeats: int
) -> dict:
    """Total variance (trace of the covariance) of the parameter gradient over ``repeats``
    minibatches at fixed weights, relative to the squared norm of the mean gradient."""
    L.seed_everything(0, verbose=False)
    device = torch.device(args.device)
    model = build(objective, args, seed=0, batch_size=batch_size).to(device)
    dm = data(args, batch_size)
    dm.setup("fit")
    loader = endless(dm, device)
    model.train()
    params = [p for p in model.backbone.parameters()] + list(model.projector.parameters())
    if isinstance(model.criterion, MINCLoss):  # Λ from a few batches, then held fixed
        for _ in range(5):
            (x1, x2), _ = next(loader)
            with torch.no_grad():
                model.objective_loss([x1, x2])  # training mode: one EMA step of Λ (from t)
        model.criterion.eval()
    grads = []
    for _ in range(repeats):
        (x1, x2), _ = next(loader)
        model.zero_grad()
        loss = model.objective_loss([x1, x2])[0]
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in params]))
    g = torch.stack(grads)
    mean = g.mean(0)
    total_var = (g - mean).square().sum(1).mean().item()
    return {
        "objective": objective,
        "batch_size": batch_size,
        "total_variance": total_var,
        "relative_variance": total_var / mean.square().sum().item(),
    }


def endless(dm: MINCDataModule, device: torch.device):
    """Normalised batches of successive epochs (new order and augmentations each epoch)."""
    loader, epoch = dm.train_dataloader(), 0
    while True:
        loader.sampler.set_epoch(epoch)
        for (x1, x2), y in loader:  # what the Trainer does: move, then normalise on the device
            yield dm.on_after_batch_transfer([[x1.to(device), x2.to(device)], y], 0)
        epoch += 1


# --- bookkeeping --------------------------------------------------------------------------
def recorded(args: argparse.Namespace) -> dict[str, str]:
    """The arguments as the committed results keep them: a folder inside the repository
    relative to it, one outside by its name only (no path of the machine that ran it)."""

    def text(value: Any) -> str:
        if isinstance(value, Path):
            path = value.resolve()
            return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
        return str(value)

    return {k: text(v) for k, v in vars(args).items()}


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def run_cached(store: dict, path: Path, key: str, fn, *a, **kw) -> dict:
    if key not in store:
        print(f"[{time.strftime('%H:%M:%S')}] {key}", flush=True)
        store[key] = fn(*a, **kw)
        path.write_text(json.dumps(store))
    return store[key]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DATA, help="raw results")
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train_images", type=int, default=4000)
    p.add_argument("--val_images", type=int, default=5000)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--lr", type=float, default=1.0)
    p.add_argument("--root", default=None, help="Fashion-MNIST's folder (default: Debian's)")
    p.add_argument("--backbone", default="convnet", choices=["convnet", "resnet18", "resnet50"])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", default="32-true", help="e.g. bf16-mixed on a GPU")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--knn_k", type=int, default=20)
    p.add_argument("--linear_epochs", type=int, default=30)
    p.add_argument("--variance_repeats", type=int, default=24)
    p.add_argument("--skip", nargs="*", default=[], help="experiments to leave out")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "runs.json"
    store = load(path)
    started = time.time()

    ablation_batch = 128
    if "batch" not in args.skip:
        for b in args.batch_sizes:
            for objective in OBJECTIVES:
                for seed in range(args.seeds):
                    run_cached(
                        store,
                        path,
                        f"batch/{objective}/{b}/{seed}",
                        train_and_evaluate,
                        objective,
                        b,
                        seed,
                        args,
                    )
    run_cached(store, path, "baseline/pixels", pixel_baseline, args)
    for seed in range(args.seeds):  # the same network, not trained: the floor to beat
        run_cached(
            store,
            path,
            f"baseline/random_init/{seed}",
            train_and_evaluate,
            "minc",
            128,
            seed,
            args,
            train=False,
        )
    if "variance" not in args.skip:
        for b in args.batch_sizes:
            for objective in ("minc", "spectral"):
                run_cached(
                    store,
                    path,
                    f"variance/{objective}/{b}",
                    gradient_variance,
                    objective,
                    b,
                    args,
                    args.variance_repeats,
                )
    if "spectrum" not in args.skip:
        for triangular in (True, False):
            run_cached(
                store,
                path,
                f"spectrum/triangular={triangular}",
                train_and_evaluate,
                "minc",
                ablation_batch,
                0,
                args,
                trace_every=5,
                triangular=triangular,
            )
    if "ablation" not in args.skip:
        for name, overrides in ABLATIONS.items():
            run_cached(
                store,
                path,
                f"ablation/{name}",
                train_and_evaluate,
                "minc",
                ablation_batch,
                0,
                args,
                **overrides,
            )
    store["budget"] = {
        "seconds": time.time() - started + store.get("budget", {}).get("seconds", 0.0),
        "args": recorded(args),
        "machine": {"arch": platform.machine(), "threads": torch.get_num_threads()},
    }
    path.write_text(json.dumps(store))
    # a benchmark writes data; the report reads it (a GPU run keeps both in folders of its own)
    print(f"wrote {path}; the page: python -m benchmarks.report --data {args.out} --docs DOCS")


ABLATIONS: dict[str, dict[str, Any]] = {
    "default (alpha 0.1, mu 1, target, predictor)": {},
    "alpha 0.01": {"alpha": 0.01},
    "alpha 1.0 (batch estimate only)": {"alpha": 1.0},
    "mu 2.0": {"mu": 2.0},
    "mu 0.5": {"mu": 0.5},
    "moment_source online": {"moment_source": "online"},
    "no predictor": {"use_predictor": False},
}


if __name__ == "__main__":
    main()
