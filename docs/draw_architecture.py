"""Draws docs/architecture.png: python docs/draw_architecture.py"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

# each box is a file: (title, file, what happens there)
STEP = [  # one training step
    ("batch", "data/sampling.py", "seeded order and\naugmentation draws;\nuint8 crops + params"),
    (
        "views",
        "data/augment.py",
        "finish_batch: flip, jitter,\ngray, blur, solarise,\nnormalise (device)",
    ),
    ("networks", "module.py", "backbone → projector →\npredictor; EMA target\nof the other view"),
    ("loss", "loss.py", "objectives.py picks it;\nΛ updated at the plan's\nrate, then the loss"),
    (
        "updates",
        "module.py",
        "optimizer step (guard:\nnonfinite.py), then the\ntarget by τ (plan.py)",
    ),
]
LIFE = [  # a run's life
    ("start", "commands/fit.py", "config; --ckpt_path last /\nlast_if_present: this\nrun's, by its identity"),
    (
        "resume checks",
        "checkpoint_files.py",
        "identity, weights, batch\n(ResumeRecord);\ndata/module.py: stream",
    ),
    ("checkpoints", "callbacks/checkpoint.py", "records the run identity;\nlast.ckpt at epoch ends,\nevery N steps, atomic"),
    ("preemption", "callbacks/checkpoint.py", "SIGTERM / SIGUSR1:\nexact position,\nexit 75"),
    ("summary", "callbacks/summary.py", "checkpoint read back,\naccuracy, what next"),
]
GROUPS = [  # (folder, what it holds, colour)
    (
        "the method (top level)",
        "loss, baselines, objectives,\nmodule, plan, schedule, probe,\nnonfinite, backbones, diagnostics",
        "#e8f0fb",
    ),
    (
        "data/",
        "presets, formats, images,\nviews, augment, sampling,\nbatch, shards, module",
        "#eaf6e6",
    ),
    ("callbacks/", "checkpoint, knn,\nlambda_pictures, progress,\nfast_paths, save_config, summary", "#fdf1e0"),
    (
        "commands/ (+ beside them)",
        "fit, evaluate, export,\nembed, prepare (+ scoring,\nloading, wandb_setup)",
        "#f3e8f8",
    ),
    (
        "plumbing (not API)",
        "validation, checkpoint_files,\n_distributed, cli_context",
        "#eeeeee",
    ),
]

fig, ax = plt.subplots(figsize=(15, 8.2))
ax.set_xlim(0, 5 * 2.9)
ax.set_ylim(-2.4, 7.4)
ax.axis("off")


def flow(row: list[tuple[str, str, str]], y: float, label: str, colour: str) -> None:
    """One flow as a row of boxes, each a file, left to right."""
    ax.text(0.1, y + 1.75, label, fontsize=10, weight="bold", color="#333333")
    for i, (title, file, note) in enumerate(row):
        x = i * 2.9 + 0.1
        ax.add_patch(
            FancyBboxPatch((x, y), 2.5, 1.5, boxstyle="round,pad=0.05", fc=colour, ec="#3465a4")
        )
        ax.text(x + 1.25, y + 1.22, title, ha="center", va="center", fontsize=9, weight="bold")
        ax.text(x + 1.25, y + 0.98, file, ha="center", va="center", fontsize=8, family="monospace")
        ax.text(x + 1.25, y + 0.45, note, ha="center", va="center", fontsize=7.2, color="#333333")
        if i < len(row) - 1:
            ax.annotate(
                "",
                xy=(x + 2.85, y + 0.75),
                xytext=(x + 2.6, y + 0.75),
                arrowprops=dict(arrowstyle="->", color="#3465a4", lw=1.5),
            )


flow(STEP, 4.6, "a training step", "#e8f0fb")
flow(LIFE, 1.4, "a run's life", "#fdf1e0")
width = 5 * 2.9 / len(GROUPS)
for i, (folder, holds, colour) in enumerate(GROUPS):
    x = i * width + 0.15
    ax.add_patch(
        FancyBboxPatch(
            (x, -2.2), width - 0.3, 1.9, boxstyle="round,pad=0.05", fc=colour, ec="#666666"
        )
    )
    ax.text(
        x + (width - 0.3) / 2, -0.6, folder, ha="center", va="center", fontsize=9, weight="bold"
    )
    ax.text(x + (width - 0.3) / 2, -1.4, holds, ha="center", va="center", fontsize=7.5)
ax.set_title(
    "minc-lightning: a training step and a run's life, each box a file; the folders (bottom)",
    fontsize=11,
)
fig.tight_layout()
fig.savefig(Path(__file__).with_name("architecture.png"), dpi=110)
