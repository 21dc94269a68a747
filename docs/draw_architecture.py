"""Draws docs/architecture.png: python docs/draw_architecture.py"""

from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

steps = [
    ("config\nconfigs/*.yaml", "YAML: trainer, model,\ndata, checkpoint"),
    ("CLI\ncli.py", "LightningCLI; links\ndata.batch_size → model"),
    ("data module\ndata.py", "DATASETS table\n(datasets.py): preset,\nreader"),
    ("loader\nsampling.py", "uint8 views, or crops and\nparameters (device mode);\nseeded by (seed, epoch,\nposition)"),
    ("device\non_after_batch_transfer", "augment.py: batched\nflip, jitter, gray, blur,\nsolarise; normalise"),
    ("module\nmodule.py", "backbone → projector →\npredictor; EMA target;\nguard.py, probe.py"),
    ("loss\nobjectives.py", "OBJECTIVES: loss.py (MINC, Λ),\nbaselines.py (SCL, BYOL)"),
]
fig, ax = plt.subplots(figsize=(15, 3.2))
ax.set_xlim(0, len(steps) * 2.1)
ax.set_ylim(0, 3)
ax.axis("off")
for i, (title, note) in enumerate(steps):
    x = i * 2.1 + 0.1
    ax.add_patch(FancyBboxPatch((x, 1.3), 1.8, 1.3, boxstyle="round,pad=0.05",
                                fc="#e8f0fb", ec="#3465a4"))
    ax.text(x + 0.9, 2.2, title, ha="center", va="center", fontsize=9, weight="bold")
    ax.text(x + 0.9, 0.75, note, ha="center", va="center", fontsize=7.5, color="#333333")
    if i < len(steps) - 1:
        ax.annotate("", xy=(x + 2.1, 1.95), xytext=(x + 1.9, 1.95),
                    arrowprops=dict(arrowstyle="->", color="#3465a4", lw=1.5))
ax.set_title("minc-lightning: data and configuration flow one way", fontsize=11)
fig.tight_layout()
fig.savefig(Path(__file__).with_name("architecture.png"), dpi=110)
