"""Forward+backward time and memory of MINCLoss against SpectralContrastiveLoss.

For N rows (the stacked two-view batch) and embedding width dim: the median time of
``loss(p, t).backward()`` and the memory the loss keeps for its backward pass (bytes of the
tensors autograd saves, measured with saved-tensor hooks; on CUDA also the peak allocated
memory). MINC's extra state is Λ (dim × dim); the spectral loss builds N × N similarities.

    python benchmarks/loss_cost.py [--n 256 1024 4096 16384] [--dim 128 256 1024] [--device cpu]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--dim", type=int, nargs="+", default=[128, 256, 1024])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
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
