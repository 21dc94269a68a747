"""Gradient noise without scale (issue 35, item 3): how noisy each estimator's gradient is
relative to the gradient it estimates, along training, at batches 32, 64 and 256.

A total variance compares gradients of different sizes (MINC's loss is half SCL's in
expectation, §2 of docs/method.md), so the measure here is the **relative noise**

    E‖ĝ_B − ḡ‖² / ‖ḡ‖²

(the inverse of the gradient's signal-to-noise ratio), for MINC (the EMA of tril(Λ)), the
batch-moment control (alpha 1, full Λ: SCL's pair term inside MINC's network) and SCL.

* **exact**: on the graph of ``spectral_exact.py``, ḡ is known in closed form at any weights F
  (M = FᵀDF): SCL's −∇J = −4PF + 4DFM; MINC's −2PF + 2DF Aᵀ with A = M (full Λ, and the batch
  moment) or tril(M). The expectation over batches is taken over ``--exact_batches`` batches at
  fixed weights, with Λ's EMA running as in training after ``WARM`` warm-up batches. The
  weights are those of a tril(Λ) run at batch 64 (its chosen lr) at 0, 1/8, 1/2 and all of its
  pairs, for several seeds.
* **real**: the quickstart (Fashion-MNIST, the small ConvNet, config lr) trained at each batch;
  at a tenth of the first epoch and at every epoch's end, ``--real_batches`` batches at the
  weights of that moment (Λ's EMA running, then everything restored). ḡ is unknown there, so it
  is the batches' mean and ‖ḡ‖² its unbiased estimate ‖mean‖² − tr(Σ̂)/K. Gradients are the
  backbone's, the part every network shares.

    python -m benchmarks.gradient_noise --part exact   # minutes
    python -m benchmarks.gradient_noise --part real    # 18 runs, about an hour alone

Writes ``docs/data/gradient_noise.json`` (``exact`` and ``runs``); the real runs resume
(``run_missing``).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from benchmarks import spectral_exact as exact
from benchmarks.common import CLI_HELP, DATA, ROOT
from benchmarks.estimators import arguments, setting
from benchmarks.runner import final_point, run_missing
from minc_lightning.data.module import MINCDataModule, saved_settings

BATCHES = (32, 64, 256)
WARM = 50  # batches of Λ's EMA at fixed weights before measuring (rates ≥ 0.03 per step)
EXACT_ESTIMATORS = ("minc_tril", "batch_moment", "scl")
REAL_ESTIMATORS = ("minc", "batch_moment", "scl")
REAL_BATCHES = 16  # batches a point of the real part is measured over (--real_batches)


def relative_noise(grads: Tensor, mean: Tensor | None = None) -> dict[str, float]:
    """(K, P) gradients → their noise relative to the mean gradient. With ``mean`` (the exact
    ḡ): E‖ĝ − ḡ‖² / ‖ḡ‖², bias included. Without: the sample mean stands for ḡ, its squared
    norm corrected for its own noise (‖m‖² − tr Σ̂ / K, unbiased), tr Σ̂ with K − 1."""
    grads = grads.double()
    k = len(grads)
    if k < 2:
        raise ValueError(f"relative noise needs at least 2 gradients, got {k}")
    if mean is not None:
        noise = (grads - mean.double()).square().sum(1).mean().item()
        signal = mean.double().square().sum().item()
    else:
        m = grads.mean(0)
        noise = (grads - m).square().sum(1).sum().item() / (k - 1)
        signal = m.square().sum().item() - noise / k
    return {"noise": noise, "signal": signal, "relative": noise / signal if signal > 0 else None}


# --- exact -------------------------------------------------------------------------------------
def mean_field(F: Tensor, g: exact.Graph, estimator: str) -> Tensor:
    """The expected gradient of ``estimator``'s loss in F at fixed weights (Λ at M = FᵀDF)."""
    F = F.double()
    M = F.T @ (g.d[:, None] * F)
    if estimator == "scl":
        return -4 * g.P @ F + 4 * (g.d[:, None] * F) @ M
    A = M.tril() if estimator == "minc_tril" else M
    return -2 * g.P @ F + 2 * (g.d[:, None] * F) @ A.T


def exact_gradients(
    g: exact.Graph, F: Tensor, estimator: str, batch: int, rate: float, count: int, seed: int
) -> Tensor:
    """(count, N·k) gradients of ``estimator``'s batch loss at fixed weights F, on fresh pairs,
    Λ's EMA at ``rate`` per step running through ``WARM`` batches first, as training runs it."""
    net = torch.nn.Embedding(*F.shape)
    net.weight.data.copy_(F)
    loss_fn = exact.criterion(estimator, F.shape[1], rate)
    x, xp = exact.sample_pairs(g, (WARM + count) * batch, torch.Generator().manual_seed(seed))
    grads = []
    for step in range(WARM + count):
        a, b = x[step * batch : (step + 1) * batch], xp[step * batch : (step + 1) * batch]
        net.zero_grad()
        exact.batch_loss(net, loss_fn, estimator, a, b).backward()
        if step >= WARM:
            grads.append(net.weight.grad.flatten().clone())
    return torch.stack(grads)


def exact_part(args: argparse.Namespace) -> list[dict]:
    """Relative noise to the exact mean field, at snapshots of tril(Λ) training runs."""
    store = json.loads((DATA / "spectral_exact.json").read_text())
    config = store["config"]
    g = exact.spectrum(exact.chain_of_clusters(**config["graph"]))
    alpha = store["alpha_per_256"]["minc_tril"]
    lr = store["chosen"]["minc_tril"]["64"]
    steps = config["samples"] // 64
    marks = (0, steps // 8, steps // 2, steps)
    trained_rate = exact.rate_at(alpha, "minc_tril", 64)
    out = []
    for seed in range(args.exact_seeds):
        trajectory = (g, "minc_tril", 64, lr, seed, config["samples"], config["k"], trained_rate)
        run = exact.train(*trajectory, evals=4, snapshots=marks)
        for (step, F), estimator, batch in itertools.product(
            run["snapshots"].items(), EXACT_ESTIMATORS, BATCHES
        ):
            # the batch moment's Λ is the batch's own; SCL has none (rate_at gives None)
            rate = 1.0 if estimator == "batch_moment" else exact.rate_at(alpha, estimator, batch)
            grads = exact_gradients(g, F, estimator, batch, rate, args.exact_batches, seed + 1)
            field = mean_field(F, g, estimator).flatten()
            record = {"seed": seed, "fraction": step / steps, "estimator": estimator}
            record |= {"batch": batch, "rate": rate, **relative_noise(grads, field)}
            record["own_mean"] = relative_noise(grads)["relative"]
            out.append(record)
            print(json.dumps(record), flush=True)
    return out


# --- real data -------------------------------------------------------------------------------
class NoiseProbe(L.Callback):
    """Relative noise of the backbone's gradient over ``count`` batches at the weights of a
    tenth of the first epoch and of every epoch's end; the model, Λ and torch's random state
    are restored after each, so training goes on as it would have."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.points: list[dict] = []
        self.data: MINCDataModule | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        training = trainer.datamodule
        settings = saved_settings(training.hparams) | {"augmentation": training.augmentation}
        # its own loaders, so training's stay untouched; in this process, since a loader made
        # at every point would leave its persistent workers behind
        self.data = MINCDataModule(**settings | {"num_workers": 0})
        self.data.setup("fit")
        self.early = max(trainer.num_training_batches // 10, 1)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.early:
            self.measure(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.measure(trainer, pl_module)

    def measure(self, trainer, pl_module) -> None:
        state, rng = copy.deepcopy(pl_module.state_dict()), torch.get_rng_state()
        loader = self.data.train_dataloader()
        loader.sampler.set_epoch(1000 + len(self.points))  # batches training never sees
        params = list(pl_module.backbone.parameters())
        grads = []
        for batch in itertools.islice(loader, self.count):  # as the Trainer moves and finishes it
            batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
            views, _ = self.data.on_after_batch_transfer(batch, 0)
            pl_module.zero_grad()
            pl_module.objective_loss(views)[0].backward()
            grads.append(torch.cat([p.grad.flatten() for p in params]))
        pl_module.zero_grad()
        pl_module.load_state_dict(state)
        torch.set_rng_state(rng)
        fraction = trainer.global_step / (trainer.num_training_batches * trainer.max_epochs)
        point = {"step": trainer.global_step, "fraction": fraction, "batches": len(grads)}
        self.points.append(point | relative_noise(torch.stack(grads)))
        print(f"noise {self.points[-1]}", flush=True)


def real_part(args: argparse.Namespace, cli_args: list[str]) -> list[dict]:
    config = ROOT / "configs" / "quickstart.yaml"

    def train(run: dict) -> dict:
        probe = NoiseProbe(args.real_batches)
        name = "_".join(f"{k}{v}" for k, v in run.items())
        point = final_point(
            config, args.run_dir / name, arguments(run) + cli_args, extra_callbacks=[probe]
        )
        return point | {"noise": probe.points}

    settings = [
        setting(e, b, seed, 2.0) for seed in args.seeds for b in BATCHES for e in REAL_ESTIMATORS
    ]
    return run_missing(args.out, settings, train)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=CLI_HELP)
    p.add_argument("--part", choices=("exact", "real"), required=True)
    p.add_argument("--exact_seeds", type=int, default=3)
    p.add_argument("--exact_batches", type=int, default=400)
    p.add_argument("--real_batches", type=int, default=REAL_BATCHES)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", type=Path, default=DATA / "gradient_noise.json")
    p.add_argument("--run_dir", type=Path, default=ROOT / "runs" / "gradient_noise")
    args, cli_args = p.parse_known_args()
    if args.part == "exact":
        result = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
        result["exact"] = exact_part(args)
        args.out.write_text(json.dumps(result, indent=1))
    else:
        real_part(args, cli_args)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
