"""A few training steps of two-view runs on both data paths, the record that multi-crop with
``local_views=0`` changes nothing.

``tests/data/two_view_steps.pt`` maps a machine (``machine()``: torch's version, its CPU kernels,
the CPU and the thread count) to the weights these steps gave there at the commit before
multi-crop existed (8cee728's parent, into a checkout of which this file is copied and run with
``--add``; the first machine's entry predates the fingerprint and is named ``FIRST``). Float
rounding differs between CPUs, so the weights are equal bit for bit only on a machine in the
record; ``test_multicrop.py`` compares them bit for bit there and within ``TOLERANCE``
elsewhere."""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import torch
from dataset_files import write_fashion_mnist, write_image_folder
from helpers import tiny_module, trainer

from minc_lightning.data import MINCDataModule

RECORD = Path(__file__).parent / "data" / "two_view_steps.pt"
RUNS = {  # name: (dataset, augment_on): fixed-size images and image folders (crops in the loader)
    "fashion_mnist_device": ("fashion_mnist", "device"),
    "fashion_mnist_loader": ("fashion_mnist", "loader"),
    "folder_device": ("folder", "device"),
    "folder_loader": ("folder", "loader"),
}
# Largest difference between two machines' weights, relative to the tensor's largest value:
# 3.1e-6 measured between the two machines in the record. Doubling the lr (as a loss averaged
# over half its pairs would) moves the weights by far more: test_multicrop checks that it does.
TOLERANCE = 1e-4
FIRST = "the machine that wrote the first record (not fingerprinted)"


def machine() -> str:
    """What decides the float rounding of these steps on a CPU."""
    cpu = {}
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            cpu.setdefault(key.strip(), value.strip())
    model = cpu.get("model name", platform.processor() or platform.machine())
    family = f"family {cpu.get('cpu family', '?')} model {cpu.get('model', '?')}"
    return (
        f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, {model} "
        f"({family}), {torch.get_num_threads()} threads"
    )


def train_steps(name: str, root: Path, steps: int = 3, **module) -> dict[str, torch.Tensor]:
    """The state after ``steps`` optimizer steps of run ``name``, its data written under root
    (``module``: settings of the module that differ from these steps')."""
    dataset, augment_on = RUNS[name]
    if dataset == "fashion_mnist":
        write_fashion_mnist(root, n_train=16, n_test=4)
        classes, size = 10, None
    else:
        write_image_folder(root, ["a", "b"], per_class=8, size=20)
        classes, size = 2, 16
    dm = MINCDataModule(
        dataset, str(root), batch_size=4, num_workers=0, image_size=size, augment_on=augment_on
    )
    model = tiny_module(**({"batch_size": 4, "num_classes": classes} | module))
    trainer(max_steps=steps, limit_val_batches=0).fit(model, datamodule=dm)
    return {k: v.clone() for k, v in model.state_dict().items()}


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest difference between two states, relative to each tensor's largest value."""
    worst = 0.0
    for key, value in a.items():
        x, y = value.double(), b[key].double()
        worst = max(worst, ((x - y).abs().max() / y.abs().max().clamp_min(1e-12)).item())
    return worst


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RECORD)
    parser.add_argument("--add", action="store_true", help="keep the machines already there")
    args = parser.parse_args()
    records = torch.load(args.out, weights_only=True) if args.add and args.out.is_file() else {}
    here = machine()
    with tempfile.TemporaryDirectory() as folder:
        records[here] = {name: train_steps(name, Path(folder) / name) for name in RUNS}
    torch.save(records, args.out)
    print(f"{args.out}: {len(records)} machines, this one {here!r}")
