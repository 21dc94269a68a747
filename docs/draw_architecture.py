"""Draws docs/architecture.png: python docs/draw_architecture.py"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

STEPS = [
    ("config\nconfigs/*.yaml", "YAML: trainer, model,\ndata, checkpoint"),
    ("CLI\ncli.py", "LightningCLI; links\ndata.batch_size → model"),
    ("data module\ndata/module.py", "DATASETS table\n(data/presets.py):\npreset, reader"),
    (
        "loader\ndata/sampling.py",
        "uint8 views, or crops and\nparameters (device mode);\nseeded by (seed, epoch,\nposition)",
    ),
    ("device\ndata/augment.py", "batched flip, jitter,\ngray, blur, solarise;\nnormalise"),
    ("module\nmodule.py", "backbone → projector →\npredictor; EMA target;\nnonfinite.py, probe.py"),
    ("loss\nobjectives.py", "loss.py (MINC, Λ),\nbaselines.py (SCL, BYOL)"),
]
GROUPS = [  # (folder, what it holds, colour)
    (
        "the method (top level)",
        "loss, baselines, objectives,\nmodule, schedule, probe, nonfinite,\nbackbones, diagnostics",
        "#e8f0fb",
    ),
    ("data/", "presets, formats, images,\naugment, sampling, batch,\nmodule", "#eaf6e6"),
    ("callbacks/", "checkpoint, knn,\nlambda_pictures, progress,\nspeed, summary", "#fdf1e0"),
    ("commands", "cli (fit), evaluate\n(+ scoring), export;\nwandb_setup", "#f3e8f8"),
    (
        "plumbing (not API)",
        "arguments, checkpoint_io,\n_distributed, _cli_build,\n_moved",
        "#eeeeee",
    ),
]

fig, ax = plt.subplots(figsize=(15, 5.2))
ax.set_xlim(0, len(STEPS) * 2.1)
ax.set_ylim(-2.4, 3)
ax.axis("off")
for i, (title, note) in enumerate(STEPS):
    x = i * 2.1 + 0.1
    box = FancyBboxPatch((x, 1.3), 1.8, 1.3, boxstyle="round,pad=0.05", fc="#e8f0fb", ec="#3465a4")
    ax.add_patch(box)
    ax.text(x + 0.9, 2.2, title, ha="center", va="center", fontsize=9, weight="bold")
    ax.text(x + 0.9, 0.75, note, ha="center", va="center", fontsize=7.5, color="#333333")
    if i < len(STEPS) - 1:
        ax.annotate(
            "",
            xy=(x + 2.1, 1.95),
            xytext=(x + 1.9, 1.95),
            arrowprops=dict(arrowstyle="->", color="#3465a4", lw=1.5),
        )
width = len(STEPS) * 2.1 / len(GROUPS)
for i, (folder, holds, colour) in enumerate(GROUPS):
    x = i * width + 0.15
    ax.add_patch(
        FancyBboxPatch(
            (x, -2.2), width - 0.3, 1.6, boxstyle="round,pad=0.05", fc=colour, ec="#666666"
        )
    )
    ax.text(
        x + (width - 0.3) / 2, -0.95, folder, ha="center", va="center", fontsize=9, weight="bold"
    )
    ax.text(x + (width - 0.3) / 2, -1.6, holds, ha="center", va="center", fontsize=7.5)
ax.set_title(
    "minc-lightning: data and configuration flow one way (top); the package's folders (bottom)",
    fontsize=11,
)
fig.tight_layout()
fig.savefig(Path(__file__).with_name("architecture.png"), dpi=110)
