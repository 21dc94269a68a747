"""Turn benchmarks/out/runs.json (written by reproduce.py) into docs/results.md and its plots."""

from __future__ import annotations

import platform
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

OBJECTIVES = ("minc", "spectral", "byol")


def _pct(values: list[float]) -> str:
    a = 100 * np.asarray(values)
    return f"{a.mean():.2f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.2f}"


def batch_section(store: dict, docs: Path) -> list[str]:
    runs = defaultdict(list)
    for key, r in store.items():
        if key.startswith("batch/"):
            runs[(r["objective"], r["batch_size"])].append(r)
    if not runs:
        return []
    sizes = sorted({b for _, b in runs})
    lines = [
        "## 1. Accuracy against batch size",
        "",
        "Frozen-backbone accuracy on the validation images (mean ± std over seeds).",
        "",
        "| batch | " + " | ".join(f"{o} kNN | {o} linear" for o in OBJECTIVES) + " |",
        "|---:|" + "---:|" * (2 * len(OBJECTIVES)),
    ]
    for b in sizes:
        cells = []
        for o in OBJECTIVES:
            rs = runs.get((o, b), [])
            cells += (
                [_pct([r["knn"] for r in rs]), _pct([r["linear"] for r in rs])]
                if rs
                else ["–", "–"]
            )
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    floor = [r for k, r in store.items() if k.startswith("baseline/random_init")]
    if floor:
        lines += [
            "",
            f"The same network *without* pre-training (random initialisation, "
            f"{len(floor)} seeds): kNN {_pct([r['knn'] for r in floor])}, linear "
            f"{_pct([r['linear'] for r in floor])} (dashed lines in the plot).",
        ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("knn", "linear"), strict=True):
        if floor:
            ax.axhline(
                100 * np.mean([r[metric] for r in floor]),
                color="gray",
                ls="--",
                label="random init",
            )
        for o in OBJECTIVES:
            xs = [b for b in sizes if (o, b) in runs]
            vals = [100 * np.array([r[metric] for r in runs[(o, b)]]) for b in xs]
            ax.errorbar(
                xs,
                [v.mean() for v in vals],
                yerr=[v.std() for v in vals],
                marker="o",
                capsize=3,
                label=o,
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlabel("batch size")
        ax.set_ylabel(f"{metric} top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Fashion-MNIST, frozen backbone accuracy vs pre-training batch size")
    fig.tight_layout()
    fig.savefig(docs / "accuracy_vs_batch.png", dpi=110)
    plt.close(fig)
    lines += ["", "![accuracy vs batch size](accuracy_vs_batch.png)", ""]
    if floor:
        for metric in ("knn", "linear"):
            base = np.mean([r[metric] for r in floor])
            above = sorted(
                f"{o} at {b}"
                for (o, b), rs in runs.items()
                if np.mean([r[metric] for r in rs]) > base
            )
            lines.append(
                f"- {metric}: settings whose mean beats the untrained network: "
                f"{', '.join(above) if above else 'none'}."
            )
        lines += [
            "",
            "At this budget pre-training barely moves the frozen features away from "
            "random ones, so the accuracy comparison below has little power: read it as "
            "a check that every objective trains without collapse, not as evidence for "
            "or against the paper's accuracy claims, which need far longer runs "
            "(a GPU).",
            "",
        ]
    # the paper's two claims, checked on our numbers
    for metric in ("knn", "linear"):
        mean = {k: np.mean([r[metric] for r in v]) for k, v in runs.items()}
        every = all(
            mean[("minc", b)] > mean[("spectral", b)]
            for b in sizes
            if ("minc", b) in mean and ("spectral", b) in mean
        )
        small_vs_large = mean.get(("minc", sizes[0]), 0) > mean.get(("spectral", sizes[-1]), 1)
        lines.append(
            f"- {metric}: MINC beats the spectral loss at every batch size: "
            f"**{'holds' if every else 'does not hold'}**; MINC at batch {sizes[0]} beats the "
            f"spectral loss at batch {sizes[-1]}: "
            f"**{'holds' if small_vs_large else 'does not hold'}** "
            f"({100 * mean.get(('minc', sizes[0]), float('nan')):.2f}% vs "
            f"{100 * mean.get(('spectral', sizes[-1]), float('nan')):.2f}%)."
        )
    return lines + [""]


def variance_section(store: dict, docs: Path) -> list[str]:
    rows = [r for k, r in store.items() if k.startswith("variance/")]
    if not rows:
        return []
    sizes = sorted({r["batch_size"] for r in rows})
    by = {(r["objective"], r["batch_size"]): r for r in rows}
    lines = [
        "## 2. Gradient variance against batch size",
        "",
        "Trace of the covariance of the backbone+projector gradient over repeated "
        "minibatches at fixed (initial) weights, and the same divided by the squared norm "
        "of the mean gradient. For MINC, Λ is first estimated from 5 batches, then held.",
        "",
        "| batch | minc total | spectral total | minc relative | spectral relative |",
        "|---:|---:|---:|---:|---:|",
    ]
    for b in sizes:
        m, s = by[("minc", b)], by[("spectral", b)]
        lines.append(
            f"| {b} | {m['total_variance']:.3e} | {s['total_variance']:.3e} | "
            f"{m['relative_variance']:.3f} | {s['relative_variance']:.3f} |"
        )
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for o in ("minc", "spectral"):
        ax.plot(sizes, [by[(o, b)]["total_variance"] for b in sizes], marker="o", label=o)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("total gradient variance")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(docs / "gradient_variance.png", dpi=110)
    plt.close(fig)

    def below(field: str) -> str:
        ok = all(by[("minc", b)][field] < by[("spectral", b)][field] for b in sizes)
        return "holds" if ok else "does not hold"

    return lines + [
        "",
        "![gradient variance](gradient_variance.png)",
        "",
        "- MINC's gradient variance is below the spectral loss's at every batch "
        f"size: **{below('total_variance')}** (total variance); relative to the "
        f"squared mean gradient: **{below('relative_variance')}**.",
        "",
    ]


def spectrum_section(store: dict, docs: Path) -> list[str]:
    runs = {k.split("=")[1]: r for k, r in store.items() if k.startswith("spectrum/")}
    if not runs:
        return []
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    lines = [
        "## 3. The spectrum of Λ with and without tril(Λ)",
        "",
        "| triangular | final off-diagonal energy | adjacent diagonal entries in "
        "decreasing order | kNN | linear |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in sorted(runs.items(), reverse=True):
        trace = r["lambda_trace"]
        steps = [t["step"] for t in trace]
        axes[0].plot(steps, [t["offdiag_ratio"] for t in trace], label=f"triangular={name}")
        axes[1].plot(trace[-1]["diag"], marker=".", label=f"triangular={name}")
        axes[2].semilogy(np.clip(trace[-1]["eig"], 1e-8, None), label=f"triangular={name}")
        lines.append(
            f"| {name} | {trace[-1]['offdiag_ratio']:.3f} | "
            f"{100 * trace[-1]['diag_sorted']:.0f}% | {100 * r['knn']:.2f}% | "
            f"{100 * r['linear']:.2f}% |"
        )
    axes[0].set(
        xlabel="optimizer step", ylabel="‖Λ − diag Λ‖²_F / ‖Λ‖²_F", title="off-diagonal energy of Λ"
    )
    axes[1].set(xlabel="embedding dimension", ylabel="Λ_ii", title="diagonal of Λ (end)")
    axes[2].set(xlabel="rank", ylabel="eigenvalue", title="eigenvalues of Λ (end)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(docs / "lambda_spectrum.png", dpi=110)
    plt.close(fig)
    on, off = runs.get("True"), runs.get("False")
    verdict = ""
    if on and off:
        a, b = on["lambda_trace"][-1], off["lambda_trace"][-1]
        ok = a["offdiag_ratio"] < b["offdiag_ratio"] and a["diag_sorted"] > b["diag_sorted"]
        verdict = (
            f"- tril(Λ) makes Λ more diagonal and its diagonal more ordered than Λ "
            f"does: **{'holds' if ok else 'does not hold'}** in this run."
        )
    return lines + ["", "![spectrum of Λ](lambda_spectrum.png)", "", verdict, ""]


def ablation_section(store: dict) -> list[str]:
    rows = {k.split("/", 1)[1]: r for k, r in store.items() if k.startswith("ablation/")}
    if not rows:
        return []
    lines = [
        "## 4. Ablations of the open choices (MINC, batch 128, seed 0)",
        "",
        "| setting | kNN | linear | final loss |",
        "|---|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {100 * r['knn']:.2f}% | {100 * r['linear']:.2f}% | {r['final_loss']:.3f} |"
        )
    best = max(rows.items(), key=lambda kv: kv[1]["linear"])[0]
    return lines + [
        "",
        f"Best linear accuracy: **{best}**. One seed per setting: differences "
        "below about one point are within seed noise (see section 1's std).",
        "",
    ]


def backbone_name(args: dict) -> str:
    if args.get("backbone", "convnet") == "convnet":
        return f"`ConvNet(width={args.get('width', '?')})`"
    return f"torchvision {args['backbone']} with the small-image stem"


def machine(args: dict) -> str:
    if args.get("device", "cpu") == "cpu":
        return f"{platform.machine()} CPU ({torch.get_num_threads()} threads)"
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else args["device"]
    return f"one {name}"


def write_report(store: dict, docs: Path) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    budget = store.get("budget", {})
    args = budget.get("args", {})
    lines = [
        "# Results: MINC against the spectral contrastive loss and BYOL",
        "",
        "Generated by `python benchmarks/reproduce.py` (rerun it to reproduce every figure; "
        "`--report_only` redraws this page from `benchmarks/out/runs.json`).",
        "",
        f"Setting: Fashion-MNIST, {args.get('train_images', '?')} training images "
        f"(fixed random subset) and {args.get('val_images', '?')} validation images, "
        f"{backbone_name(args)}, {args.get('epochs', '?')} epochs at every "
        "batch size, LARS with base lr "
        f"{args.get('lr', '?')} × batch/256, the same augmentations and heads for every "
        f"objective. Evaluation: kNN (k={args.get('knn_k', '?')}, T=0.1, cosine) and a linear "
        f"classifier ({args.get('linear_epochs', '?')} epochs) on frozen features of the "
        "online backbone in eval mode.",
        "",
        f"Budget: {budget.get('seconds', 0) / 60:.0f} minutes on {machine(args)}, "
        f"precision {args.get('precision', '32-true')}, torch {torch.__version__}. This is a small-"
        "scale test of the paper's claims, not a reproduction of its ImageNet numbers.",
        "",
    ]
    lines += batch_section(store, docs)
    lines += variance_section(store, docs)
    lines += spectrum_section(store, docs)
    lines += ablation_section(store)
    (docs / "results.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {docs / 'results.md'}")


if __name__ == "__main__":
    import argparse
    import json

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=Path, default=Path(__file__).parent / "out" / "runs.json")
    p.add_argument("--docs", type=Path, default=Path(__file__).parents[1] / "docs")
    a = p.parse_args()
    write_report(json.loads(a.runs.read_text()), a.docs)
