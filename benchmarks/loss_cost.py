"""Forward+backward time and memory of MINCLoss against SpectralContrastiveLoss.

For N rows (the stacked two-view batch) and embedding width dim: the median time of
``loss(p, t).backward()`` and the memory the loss keeps for its backward pass (bytes of the
tensors autograd saves, measured with saved-tensor hooks; on CUDA also the peak allocated
memory). MINC's extra state is Λ (dim × dim); the spectral loss builds N × N similarities.

    python -m benchmarks.loss_cost [--n 256 1024 4096 16384] [--dim 128 256 1024] [--device cpu]
    python -m benchmarks.loss_cost --bare --n 4096 --dim 256   # MINCLoss against its arithmetic

``--bare`` times MINCLoss's forward and backward against the same arithmetic written bare
(normalise, the EMA step of Λ from tᵀt, tril, the loss), without its guarantees (no host
synchronisation, a non-finite batch changes nothing), the two alternating in one block of runs,
and prints the median of each and the median ratio of adjacent runs (the machine's drift falls
on both alike).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from minc_lightning.baselines import SpectralContrastiveLoss
from minc_lightning.loss import MINCLoss


def saved_bytes(fn) -> int:
    """Bytes of the distinct tensors autograd saves while ``fn`` builds its graph."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())


def measure(loss: torch.nn.Module, n: int, dim: int, device: str, repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    p = torch.randn(n, dim, generator=g).to(device).requires_grad_(True)
    t = torch.randn(n, dim, generator=g).to(device)

    def step():
        return loss(p, t) if isinstance(loss, MINCLoss) else loss(p, t.clone().requires_grad_())

    times = []
    for _ in range(repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        step().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    return {"time": statistics.median(times[1:]), "saved": saved_bytes(step), "peak": peak}


def bare_step(p: torch.Tensor, t: torch.Tensor, lam: torch.Tensor, alpha: float) -> None:
    """MINC's arithmetic alone: normalise, Λ's EMA step from tᵀt, tril, the loss, backward."""
    pn = torch.nn.functional.normalize(p, dim=-1)
    tn = torch.nn.functional.normalize(t, dim=-1)
    with torch.no_grad():
        lam.lerp_(tn.T @ tn / len(tn), alpha)
    a = lam.tril()
    ap = pn.detach() @ a.T
    (-2.0 * (pn * tn).sum(-1) + 2.0 * (pn * ap).sum(-1)).mean().backward()


def bare_ratio(n: int, dim: int, device: str, runs: int) -> dict:
    """Median times of MINCLoss and of ``bare_step``, alternating, and their ratio."""
    g = torch.Generator().manual_seed(0)
    p = torch.randn(n, dim, generator=g).to(device).requires_grad_(True)
    t = torch.randn(n, dim, generator=g).to(device)
    minc = MINCLoss(dim, alpha=0.1).to(device)
    lam = torch.zeros(dim, dim, device=device)
    steps = {"minc": lambda: minc(p, t).backward(), "bare": lambda: bare_step(p, t, lam, 0.1)}
    times: dict[str, list[float]] = {k: [] for k in steps}
    for i in range(2 * runs + 4):  # runs even: each name as often
        name = ("minc", "bare", "bare", "minc")[i % 4]  # ABBA: neither always goes first
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        steps[name]()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 4:  # two of each warm up
            times[name].append(time.perf_counter() - start)
        p.grad = None
    minc_ms, bare_ms = (1e3 * statistics.median(times[k]) for k in ("minc", "bare"))
    pairs = [m / b for m, b in zip(times["minc"], times["bare"], strict=True)]  # adjacent runs
    return {"minc_ms": minc_ms, "bare_ms": bare_ms, "ratio": statistics.median(pairs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--dim", type=int, nargs="+", default=[128, 256, 1024])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bare", action="store_true", help="MINCLoss against its arithmetic")
    parser.add_argument("--runs", type=int, default=15, help="with --bare: runs of each")
    args = parser.parse_args()
    if args.bare:
        print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads")
        print("| N | dim | MINCLoss (ms) | bare arithmetic (ms) | median pair ratio |")
        print("|---:|---:|---:|---:|---:|")
        for n in args.n:
            for dim in args.dim:
                r = bare_ratio(n, dim, args.device, args.runs)
                print(
                    f"| {n} | {dim} | {r['minc_ms']:.2f} | {r['bare_ms']:.2f} | "
                    f"{r['ratio']:.2f}× |",
                    flush=True,
                )
        return
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads")
    print("| N | dim | MINC (ms) | SCL (ms) | SCL / MINC | MINC saved (MiB) | SCL saved (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    mib = 2**20
    for n in args.n:
        for dim in args.dim:
            minc = MINCLoss(dim, alpha=0.1).to(args.device)
            minc(torch.randn(n, dim, device=args.device), torch.randn(n, dim, device=args.device))
            m = measure(minc, n, dim, args.device, args.repeats)
            s = measure(SpectralContrastiveLoss(), n, dim, args.device, args.repeats)
            print(
                f"| {n} | {dim} | {1e3 * m['time']:.2f} | {1e3 * s['time']:.2f} | "
                f"{s['time'] / m['time']:.1f}x | {m['saved'] / mib:.2f} | "
                f"{s['saved'] / mib:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
