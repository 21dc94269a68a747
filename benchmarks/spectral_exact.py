"""The paper's optimisation claim on a problem whose answer is known (docs/method.md §8).

MINC and the spectral contrastive loss (SCL) estimate one population objective

    J(F) = 2 tr(Fᵀ P F) − ‖Fᵀ D F‖²_F

on an augmentation graph P (N × N, the joint distribution of positive pairs). SCL estimates the
pair term from the B² pairs of a batch; MINC replaces it with pᵀΛp, Λ an EMA. Here P is known,
so J, its optimum J* = Σ_{i≤k} max(λ_i, 0)² and the optimal eigenfunctions are computed exactly
(over every node, nothing sampled) while each loss is trained by SGD on pairs sampled from P.

* graph: a chain of node clusters (dense inside a cluster, sparser between neighbouring
  clusters), whose top k + 1 eigenvalues are distinct;
* encoder: φ(x) = W e_x, a linear map of one-hot node inputs (an embedding table), so every
  F, the optimum included, is reachable and J/J* measures optimisation alone. No row
  normalisation (mu=None): normalised rows are not eigenfunctions, and J* would no longer be
  the spectral value;
* losses: the package's ``MINCLoss`` (triangular and full Λ, targets = the other view through
  the same network without gradient) and ``SpectralContrastiveLoss``;
* optimiser: SGD (momentum 0.9), lr = base × batch/256 (the package's rule), cosine decay to
  0; every objective sees the same pairs (common random numbers per seed), the same number of
  them at every batch size;
* learning rate: per objective and batch size, the base lr of one shared grid with the best
  mean final J/J* over separate selection seeds; the reported seeds are fresh.

    python -m benchmarks.spectral_exact          # 627 runs: 63.7 minutes on the 2-core machine
                                                 # while two other benchmarks shared it
    python -m benchmarks.spectral_exact --quick  # a smoke run in seconds

Writes ``docs/data/spectral_exact.json`` (the raw results) and rewrites ``docs/results.md``
(via report.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch
from torch import Tensor, nn

from benchmarks.common import DATA
from minc_lightning.baselines import SpectralContrastiveLoss
from minc_lightning.loss import MINCLoss
from minc_lightning.schedule import REFERENCE_BATCH, scaled_rate

OBJECTIVES = ("minc_tril", "minc_full", "scl")


# --- the graph and its exact quantities ------------------------------------------------------
@dataclass
class Graph:
    """A symmetric joint distribution P of positive pairs and its normalised spectrum."""

    P: Tensor  # (N, N) float64, symmetric, sums to 1
    d: Tensor  # (N,) marginal p(x)
    lam: Tensor  # (N,) eigenvalues of D^-1/2 P D^-1/2, decreasing
    U: Tensor  # (N, N) the matching orthonormal eigenvectors, as columns

    @property
    def n(self) -> int:
        return self.P.shape[0]


def chain_of_clusters(
    nodes: int = 1000, clusters: int = 10, density: float = 0.3, cross: float = 0.4, seed: int = 0
) -> Tensor:
    """P for ``clusters`` equal groups of nodes in a chain: each pair inside a group is an edge
    with probability ``density`` (weight 1), each pair of neighbouring groups with the same
    probability and weight ``cross``; normalised to sum to 1."""
    g = torch.Generator().manual_seed(seed)
    group = torch.arange(nodes) * clusters // nodes
    gap = (group[:, None] - group[None, :]).abs()
    weight = torch.where(gap == 0, 1.0, torch.where(gap == 1, cross, 0.0)).double()
    coin = torch.rand(nodes, nodes, generator=g, dtype=torch.float64).triu(1)
    W = weight * (coin > 0) * (coin < density)
    W = W + W.T
    return W / W.sum()


def spectrum(P: Tensor) -> Graph:
    d = P.sum(1)
    G = P / d.sqrt()[:, None] / d.sqrt()[None, :]
    lam, U = torch.linalg.eigh(G)
    return Graph(P, d, lam.flip(0), U.flip(1))


def population_objective(F: Tensor, g: Graph) -> float:
    """J(F) = 2 tr(Fᵀ P F) − ‖Fᵀ D F‖²_F, exactly (F: (N, k), row x is φ(x))."""
    F = F.double()
    return (2 * torch.trace(F.T @ g.P @ F) - (F.T @ (g.d[:, None] * F)).square().sum()).item()


def optimum(g: Graph, k: int) -> float:
    """J* = Σ_{i≤k} max(λ_i, 0)²."""
    return g.lam[:k].clamp_min(0).square().sum().item()


def optimal_embedding(g: Graph, k: int) -> Tensor:
    """F* = D^-1/2 [√λ_1 u_1 … √λ_k u_k], the ordered optimum (R = I)."""
    return g.U[:, :k] * g.lam[:k].clamp_min(0).sqrt() / g.d.sqrt()[:, None]


def _in_l2p(F: Tensor, g: Graph) -> Tensor:
    """F's columns as vectors of L²(p) (D^1/2 F), the space the u_i are orthonormal in."""
    return g.d.sqrt()[:, None] * F.double()


def principal_angles(F: Tensor, g: Graph, k: int) -> Tensor:
    """Principal angles (degrees, increasing) between span(F) and the top-k eigenspace."""
    Q, _ = torch.linalg.qr(_in_l2p(F, g))
    cos = torch.linalg.svdvals(Q.T @ g.U[:, :k]).clamp(max=1.0)
    return torch.rad2deg(torch.arccos(cos)).flip(0)


def alignment(F: Tensor, g: Graph, k: int) -> Tensor:
    """|cos| between dimension j of F and the j-th eigenfunction, j = 1..k (1: ordered)."""
    f = _in_l2p(F, g)
    f = f / f.norm(dim=0).clamp_min(1e-30)
    return (f * g.U[:, :k]).sum(0).abs()


def sample_pairs(g: Graph, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` positive pairs (x, x′) drawn from P."""
    cdf = g.P.flatten().cumsum(0)
    u = torch.rand(n, generator=generator, dtype=torch.float64) * cdf[-1]
    flat = torch.searchsorted(cdf, u).clamp_max(g.n * g.n - 1)
    return flat // g.n, flat % g.n


# --- training ------------------------------------------------------------------------------
def criterion(objective: str, k: int, alpha: float | None) -> nn.Module:
    """The loss of ``objective``; ``batch_moment`` is MINC with the batch's own moment (alpha 1,
    full Λ): SCL's pair-term gradient inside MINC's construction."""
    if objective == "scl":
        return SpectralContrastiveLoss(mu=None, gather_distributed=False)
    if objective == "batch_moment":
        return MINCLoss(k, 1.0, triangular=False, mu=None)
    return MINCLoss(k, alpha, triangular=objective == "minc_tril", mu=None)


def batch_loss(net: nn.Module, loss_fn: nn.Module, objective: str, a: Tensor, b: Tensor) -> Tensor:
    """The loss of one batch of pairs (a_i, b_i). SCL: the two views' embeddings; MINC: rows
    [a; b] against the other view of each row, [b; a], without gradient (one network, as the
    exact problem has no separate target)."""
    if objective == "scl":
        return loss_fn(net(a), net(b))
    p = net(torch.cat([a, b]))
    return loss_fn(p, p.detach().roll(len(a), 0))


def train(
    g: Graph,
    objective: str,
    batch: int,
    base_lr: float,
    seed: int,
    samples: int,
    k: int,
    alpha: float | None = 0.1,
    evals: int = 16,
    alpha_per_256: float | None = None,
    snapshots: tuple[int, ...] = (),
) -> dict:
    """Train one encoder; J/J* at ``evals`` points, final angles and alignment. ``alpha`` is
    the per-step rate of Λ's EMA; ``alpha_per_256``, when given, the value it was scaled from
    (recorded only). ``snapshots``: steps (0 = before the first) whose weights F are returned
    under ``"snapshots"``, as tensors."""
    torch.manual_seed(seed)
    net = nn.Embedding(g.n, k)
    nn.init.normal_(net.weight, std=0.1)
    steps = samples // batch
    x, xp = sample_pairs(g, steps * batch, torch.Generator().manual_seed(seed))
    opt = torch.optim.SGD(net.parameters(), lr=base_lr * batch / 256, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = criterion(objective, k, alpha)
    j_star = optimum(g, k)
    marks = {round(steps * (i + 1) / evals) for i in range(evals)}
    curve, diverged_at, kept = [], None, {}
    for step in range(steps):
        if step in snapshots:
            kept[step] = net.weight.detach().clone()
        a, b = x[step * batch : (step + 1) * batch], xp[step * batch : (step + 1) * batch]
        loss = batch_loss(net, loss_fn, objective, a, b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step + 1 in marks or not math.isfinite(loss.item()):
            ratio = population_objective(net.weight.detach(), g) / j_star
            if not math.isfinite(ratio) or not math.isfinite(loss.item()):
                diverged_at = step + 1
                break
            curve.append(((step + 1) * batch, ratio))
    F = net.weight.detach()
    finite = diverged_at is None
    if steps in snapshots:
        kept[steps] = F.clone()
    return ({"snapshots": kept} if snapshots else {}) | {
        "objective": objective,
        "batch": batch,
        "base_lr": base_lr,
        "seed": seed,
        "alpha": alpha,
        "alpha_per_256": alpha_per_256,
        "steps": steps,
        "diverged_at": diverged_at,
        "final": curve[-1][1] if finite else float("nan"),
        "curve": curve,
        "angles": principal_angles(F, g, k).tolist() if finite else [],
        "alignment": alignment(F, g, k).tolist() if finite else [],
    }


# --- the experiment ------------------------------------------------------------------------
_GRAPH: Graph | None = None


def _init(graph_args: dict) -> None:
    global _GRAPH
    torch.set_num_threads(1)
    _GRAPH = spectrum(chain_of_clusters(**graph_args))


def _run(job: tuple) -> dict:
    return train(_GRAPH, *job)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def rate_at(alpha: float | None, objective: str, batch: int) -> float | None:
    """MINC's per-step EMA rate at ``batch`` pairs per update for ``alpha`` given per 256, by
    the module's EMA scaling rule (each update of Λ sees one batch); SCL has no Λ."""
    return None if objective == "scl" else scaled_rate(alpha, batch / REFERENCE_BATCH)


def best(runs: list[dict], keys: tuple[str, ...]) -> tuple:
    """The values of ``keys`` whose runs have the highest mean final J/J* (diverged runs count
    as NaN, so a setting with any diverged seed is never chosen while another is finite)."""
    groups: dict[tuple, list[float]] = {}
    for r in runs:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r["final"])
    finite = {key: mean(v) for key, v in groups.items() if all(map(math.isfinite, v))}
    return max(finite, key=finite.get) if finite else min(groups)


def run_all(args: argparse.Namespace) -> dict:
    """Three parts, one pool:

    * **one setting** (Report B's tuning): (lr, alpha per 256) for each objective at
      ``tune_batch`` on the selection seeds, then carried to every batch by the rules (lr ×
      batch/256, the EMA rule) and run on the fresh seeds;
    * **per cell** (Report A): lr chosen per objective and batch on the selection seeds, alpha
      the tuned per-256 value scaled to the batch; fresh seeds reported;
    * **sensitivity**: MINC with tril(Λ) over a grid of per-step rates at a few batches, at the
      one setting's lr, beside the rate the rule predicts from the tuning batch."""
    graph_args = dict(nodes=args.nodes, clusters=args.clusters, seed=args.graph_seed)
    g = spectrum(chain_of_clusters(**graph_args))
    top = g.lam[: args.k + 1]
    if not (top[:-1] - top[1:] > 1e-3).all():
        sys.exit(f"the top {args.k + 1} eigenvalues are not distinct: {top.tolist()}")
    tail = (args.samples, args.k)
    select_seeds = [1000 + s for s in range(args.select_seeds)]
    fresh = range(args.seeds)
    started = time.time()

    def log(what: str, jobs: list) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {what}: {len(jobs)} runs", flush=True)

    with get_context("spawn").Pool(args.workers, _init, (graph_args,)) as pool:
        b0 = args.tune_batch
        jobs = [
            (o, b0, lr, s, *tail, rate_at(a, o, b0), args.evals, a)
            for o in OBJECTIVES
            for lr in args.lrs
            for a in (args.alphas if o != "scl" else [None])
            for s in select_seeds
        ]
        log(f"one setting: (lr, alpha) at batch {b0}", jobs)
        tuning = pool.map(_run, jobs, chunksize=1)
        setting = {
            o: dict(
                zip(
                    ("lr", "alpha"),
                    best([r for r in tuning if r["objective"] == o], ("base_lr", "alpha_per_256")),
                    strict=True,
                )
            )
            for o in OBJECTIVES
        }
        alpha = {o: setting[o]["alpha"] for o in OBJECTIVES}
        jobs = [
            (o, b, lr, s, *tail, rate_at(alpha[o], o, b), args.evals, alpha[o])
            for o in OBJECTIVES
            for b in args.batches
            for lr in args.lrs
            for s in select_seeds
        ]
        log("per cell: lr selection", jobs)
        selection = pool.map(_run, jobs, chunksize=1)
        chosen = {
            o: {
                b: best(
                    [r for r in selection if (r["objective"], r["batch"]) == (o, b)], ("base_lr",)
                )[0]
                for b in args.batches
            }
            for o in OBJECTIVES
        }
        reported = [
            (o, b, chosen[o][b], s, *tail, rate_at(alpha[o], o, b), args.evals, alpha[o])
            for o in OBJECTIVES
            for b in args.batches
            for s in fresh
        ]
        carried = [
            (o, b, setting[o]["lr"], s, *tail, rate_at(alpha[o], o, b), args.evals, alpha[o])
            for o in OBJECTIVES
            for b in args.batches
            for s in fresh
        ]
        grid = [
            ("minc_tril", b, setting["minc_tril"]["lr"], s, *tail, rate, args.evals, None)
            for b in args.sensitivity_batches
            for rate in args.sensitivity_rates
            for s in range(args.sensitivity_seeds)
        ]
        log("fresh seeds: per cell, one setting and sensitivity", reported + carried + grid)
        done = pool.map(_run, reported + carried + grid, chunksize=1)
    runs, one_setting = done[: len(reported)], done[len(reported) : len(reported) + len(carried)]
    sensitivity = done[len(reported) + len(carried) :]
    for r in tuning + selection + sensitivity:  # only the reported runs' curves are drawn
        r.pop("curve")
    return {
        "config": {
            **{k: v for k, v in vars(args).items() if k not in ("out", "docs", "quick")},
            "graph": graph_args,
            "threads_per_worker": 1,
            "ema_scaling": True,
        },
        "spectrum": g.lam[: args.k + 2].tolist(),
        "j_star": optimum(g, args.k),
        "seconds": time.time() - started,
        "alpha_per_256": alpha,
        "chosen": {o: {str(b): lr for b, lr in v.items()} for o, v in chosen.items()},
        "selection": selection,
        "runs": runs,
        "one_setting": {"batch": b0, "setting": setting, "tuning": tuning, "runs": one_setting},
        "sensitivity": {
            "lr": setting["minc_tril"]["lr"],
            "predicted": {
                str(b): rate_at(alpha["minc_tril"], "minc_tril", b)
                for b in args.sensitivity_batches
            },
            "runs": sensitivity,
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--clusters", type=int, default=10)
    p.add_argument("--graph_seed", type=int, default=0)
    p.add_argument("--k", type=int, default=8, help="embedding width")
    p.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256, 512])
    p.add_argument("--lrs", type=float, nargs="+", default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--samples", type=int, default=2**17, help="pairs seen by every run")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--select_seeds", type=int, default=2)
    p.add_argument(
        "--alphas",
        type=float,
        nargs="+",
        default=[0.1, 0.3, 0.5, 0.7, 0.9],
        help="MINC's EMA rate of Λ per 256 pairs: the grid tuned at --tune_batch",
    )
    p.add_argument("--tune_batch", type=int, default=64, help="where the one setting is tuned")
    p.add_argument("--sensitivity_batches", type=int, nargs="+", default=[8, 64, 512])
    p.add_argument(
        "--sensitivity_rates",
        type=float,
        nargs="+",
        default=[0.01, 0.03, 0.1, 0.3, 0.6, 1.0],
        help="per-step rates of Λ's EMA",
    )
    p.add_argument("--sensitivity_seeds", type=int, default=3)
    p.add_argument("--evals", type=int, default=16, help="points on each J/J* curve")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, default=DATA, help="raw results")
    p.add_argument("--quick", action="store_true", help="a smoke run: small graph and budget")
    args = p.parse_args()
    if args.quick:
        args.nodes, args.clusters, args.k, args.samples = 200, 6, 4, 2**12
        args.batches, args.lrs, args.seeds, args.select_seeds = [8, 64], [2, 8], 2, 1
        args.alphas, args.sensitivity_batches, args.sensitivity_rates = (
            [0.3, 0.7],
            [8, 64],
            [0.1, 1],
        )
        args.sensitivity_seeds = 1
    result = run_all(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "spectral_exact.json").write_text(json.dumps(result))
    print(f"{result['seconds'] / 60:.1f} minutes; wrote {args.out / 'spectral_exact.json'}")
    print("the page: python -m benchmarks.report")


if __name__ == "__main__":
    main()
