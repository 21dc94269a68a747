"""Two-view samples per second: MINCDataModule's training loader vs the bare lightly transform.

In one run, for 32 px (CIFAR preset) and 224 px (ImageNet preset, 256×320 source images):
the same images read from the same in-memory dataset and passed, in a plain Python loop,
through lightly's BYOLTransform as a user would write it (each view a float tensor, normalised
per image); then the DataModule's loader with 0, 1 and 2 workers, up to the model's input:
seeded sampler, per-sample seeding, uint8 views collated, then normalised per batch by
``on_after_batch_transfer`` (the device is this CPU). Overhead = 1 - loader(0 workers) / bare
loop, both on one process; the worker rows show scaling.

    python benchmarks/data_throughput.py [--images 512]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torchvision.transforms as T
from lightly.transforms.multi_view_transform import MultiViewTransform

from minc_lightning.data import MINCDataModule
from minc_lightning.datasets import ArrayDataset


def lightly_transform(dm: MINCDataModule) -> MultiViewTransform:
    """The DataModule's two views as lightly builds them: ending in ToTensor and Normalize."""
    stats = dm.preset.stats
    return MultiViewTransform(
        [
            T.Compose([*view.transform.transforms[:-1], T.ToTensor(), T.Normalize(*stats)])
            for view in dm.train_transform.transforms
        ]
    )


def rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args()
    print(
        "| size | bare transform (img/s) | loader 0 workers | 1 worker | 2 workers | "
        "overhead (0 workers) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for dataset, shape in (("cifar10", (32, 32, 3)), ("imagenet", (256, 320, 3))):
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (args.images, *shape), dtype=np.uint8)
        dm = MINCDataModule(dataset, root="unused", batch_size=args.batch_size)
        data = ArrayDataset(images, np.zeros(args.images, dtype=np.int64), dm.train_transform)
        raw = ArrayDataset(images, np.zeros(args.images, dtype=np.int64))

        reference = lightly_transform(dm)

        def bare(raw=raw, transform=reference) -> None:  # read + transform, by hand
            for i in range(len(raw)):
                transform(raw[i][0])

        bare()  # warm-up
        bare_rate = rate(bare, args.images)
        loader_rates = []
        for workers in (0, 1, 2):
            dm.num_workers, dm.train_set = workers, data
            loader = dm.train_dataloader()
            n = len(loader) * args.batch_size

            def run(loader=loader, dm=dm) -> None:
                for batch in loader:
                    dm.on_after_batch_transfer(batch, 0)

            run()  # warm-up: starts persistent workers
            loader_rates.append(rate(run, n))
        overhead = 1 - loader_rates[0] / bare_rate
        print(
            f"| {shape[0]}→{dm.image_size} | {bare_rate:.0f} | {loader_rates[0]:.0f} | "
            f"{loader_rates[1]:.0f} | {loader_rates[2]:.0f} | {100 * overhead:+.1f}% |",
            flush=True,
        )


if __name__ == "__main__":
    main()
