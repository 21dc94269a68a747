"""The data path: what the loader costs, in each ``augment_on`` mode, and what it buys.

Parts (``--parts``, all by default except ``quickstart``):

* ``overhead``: two-view samples per second of the same in-memory images through lightly's
  ``BYOLTransform`` as a user writes it (float, normalised per image) in a bare loop, and through
  MINCDataModule's loader (``augment_on="loader"``) up to the model's input, with 0, 1 and 2
  workers, at 32 px (CIFAR preset) and 224 px (ImageNet preset, 256×320 arrays).
* ``loader``: CPU core-seconds per two-view sample spent in the loader (reading, decoding,
  augmenting or cropping, collating: the process's CPU time over the loader with 0 workers), in
  each mode: at 32 px from arrays (CIFAR preset) and at 224 px from JPEG files of ImageNet-like
  sizes (about 500×375, written by the benchmark, ImageNet preset).
* ``device``: seconds per batch of 256 of the device side (``on_after_batch_transfer``) at
  224 px, on this machine's CPU (a GPU run measures its GPU with ``--device cuda``).
* ``quickstart``: ``configs/quickstart.yaml`` in each mode, with ``--seeds``: training wall
  time and the frozen backbone's kNN / linear accuracy (``minc-lightning-eval``'s protocol).
  Writes ``docs/data/augment_quickstart.json``; about 5 minutes per run on 2 CPU cores.
* ``plot``: draws ``docs/data_path.png`` from the two JSON files, and prints the verdicts.

    python -m benchmarks.data_throughput
    python -m benchmarks.data_throughput --parts quickstart plot --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
from lightly.transforms.multi_view_transform import MultiViewTransform
from PIL import Image

from benchmarks.common import DATA, ROOT
from benchmarks.verdicts import difference
from minc_lightning.data import MINCDataModule, default_views
from minc_lightning.data.formats import ArrayDataset

MODES = ("loader", "device")


def lightly_transform(dm: MINCDataModule) -> MultiViewTransform:
    """The DataModule's two views as lightly builds them: ending in ToTensor and Normalize."""
    stats = dm.preset.stats
    return MultiViewTransform(
        [
            T.Compose([*view.transform.transforms[:-1], T.ToTensor(), T.Normalize(*stats)])
            for view in default_views(dm.preset, dm.image_size)
        ]
    )


def rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def random_images(n: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8)


def overhead(images: int, batch_size: int) -> None:
    print("\n## Loader overhead over the bare transform (augment_on=loader)\n")
    print(
        "| size | bare transform (img/s) | loader 0 workers | 1 worker | 2 workers | "
        "overhead (0 workers) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for dataset, shape in (("cifar10", (32, 32, 3)), ("imagenet", (256, 320, 3))):
        pixels = random_images(images, shape)
        dm = MINCDataModule(dataset, "unused", batch_size=batch_size, augment_on="loader")
        data = ArrayDataset(pixels, np.zeros(images, dtype=np.int64), dm.train_transform)
        raw = ArrayDataset(pixels, np.zeros(images, dtype=np.int64))
        reference = lightly_transform(dm)

        def bare(raw=raw, transform=reference) -> None:  # read + transform, by hand
            for i in range(len(raw)):
                transform(raw[i][0])

        bare()  # warm-up
        bare_rate = rate(bare, images)
        loader_rates = []
        for workers in (0, 1, 2):
            dm.num_workers, dm.train_set = workers, data
            loader = dm.train_dataloader()
            n = len(loader) * batch_size

            def run(loader=loader, dm=dm) -> None:
                for batch in loader:
                    dm.on_after_batch_transfer(batch, 0)

            run()  # warm-up: starts persistent workers
            loader_rates.append(rate(run, n))
        loss = 1 - loader_rates[0] / bare_rate
        print(
            f"| {shape[0]}→{dm.image_size} | {bare_rate:.0f} | {loader_rates[0]:.0f} | "
            f"{loader_rates[1]:.0f} | {loader_rates[2]:.0f} | {100 * loss:+.1f}% |",
            flush=True,
        )


def write_jpegs(folder: Path, n: int) -> None:
    """ImageNet-like files: about 500×375 (either orientation), smooth content, quality 90."""
    rng = np.random.default_rng(0)
    for i in range(n):
        w, h = (500, 375) if i % 4 else (375, 500)
        small = rng.integers(0, 256, (h // 25, w // 25, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((w, h), Image.BICUBIC)  # photo-like smoothness
        (folder / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        image.save(folder / f"c{i % 2}" / f"{i}.JPEG", quality=90)


def loader_seconds(dm: MINCDataModule, batches: int | None = None) -> float:
    """CPU seconds per sample of one pass over the training loader (or its first ``batches``),
    0 workers, no device side."""
    loader = dm.train_dataloader()
    for _ in loader:  # warm-up (file cache, allocator)
        break
    start = time.process_time()
    n = 0
    for i, batch in enumerate(loader):
        if batches is not None and i == batches:
            break
        n += len(batch[1])
    return (time.process_time() - start) / n


def loader_cost(images: int, jpegs: int, batch_size: int) -> dict:
    print("\n## Loader CPU core-milliseconds per two-view sample (0 workers)\n")
    print("| input | augment_on=loader | augment_on=device | loader / device |")
    print("|---|---:|---:|---:|")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core: the loader's own cost, as in a worker process
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "train"
        write_jpegs(folder, jpegs)
        for label, make in (
            ("32 px from arrays (CIFAR preset)", lambda mode: array_module(images, mode)),
            (
                "224 px from ~500×375 JPEG (ImageNet preset)",
                lambda mode: folder_module(folder.parent, batch_size, mode),
            ),
        ):
            cost = {mode: 1000 * loader_seconds(make(mode)) for mode in MODES}
            result[label] = cost
            print(
                f"| {label} | {cost['loader']:.2f} | {cost['device']:.2f} | "
                f"{cost['loader'] / cost['device']:.1f}× |",
                flush=True,
            )
    torch.set_num_threads(threads)
    return result


def array_module(images: int, mode: str) -> MINCDataModule:
    """A CIFAR-preset DataModule over random 32×32 arrays."""
    dm = MINCDataModule("cifar10", "unused", batch_size=64, num_workers=0, augment_on=mode)
    dm.train_set = ArrayDataset(
        random_images(images, (32, 32, 3)), np.zeros(images, dtype=np.int64), dm.train_transform
    )
    return dm


def folder_module(root: Path, batch_size: int, mode: str) -> MINCDataModule:
    """An ImageNet-preset DataModule over the image folder ``root/train``."""
    dm = MINCDataModule("folder", str(root), batch_size, num_workers=0, augment_on=mode)
    dm.setup("fit")
    return dm


def device_cost(device: str, repeats: int) -> dict:
    print(f"\n## Device side per batch of 256 at 224 px ({device})\n")
    dm = MINCDataModule("folder", "unused", batch_size=256, augment_on="device")
    views = dm.train_transform  # LoaderViews with the ImageNet preset's recipes
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(Path(tmp), 32)
        files = sorted(Path(tmp).rglob("*.JPEG"))
        torch.manual_seed(0)
        samples = []
        for i in range(256):
            with Image.open(files[i % len(files)]) as image:
                samples.append(views.from_file(image))
    batch = torch.utils.data.default_collate([(s, 0) for s in samples])
    batch = [type(batch[0])(*(t.to(device) for t in batch[0])), batch[1].to(device)]
    times = []
    for _ in range(repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        dm.on_after_batch_transfer(batch, 0)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    median = float(np.median(times[1:]))  # the first call warms up
    print(
        f"median of {repeats}: {1000 * median:.0f} ms per batch ({torch.get_num_threads()} threads)"
    )
    return {"device": device, "threads": torch.get_num_threads(), "seconds_per_batch": median}


def quickstart(seeds: list[int], out: Path) -> None:
    """The quickstart in each mode and seed: training seconds, kNN and linear accuracy."""
    from benchmarks.runner import final_point, run_missing

    def train(setting: dict) -> dict:
        mode, seed = setting["augment_on"], setting["seed"]
        return final_point(
            ROOT / "configs" / "quickstart.yaml",
            ROOT / "runs" / "augment" / f"{mode}_{seed}",
            [f"--data.augment_on={mode}", f"--seed_everything={seed}"],
        )

    run_missing(out, [{"augment_on": m, "seed": s} for s in seeds for m in MODES], train)
    print(f"wrote {out}")


def verdicts(measured: dict, quick: dict) -> list[str]:
    """The issue's two targets and the CPU default, judged from the numbers: the loader cost at
    224 px at least 3× lower in device mode; quickstart accuracy equal within seed noise (the
    t rule of ``verdicts.py`` on the mode means, from the seed spread); the CPU default is
    the mode with the lower mean quickstart training time."""
    jpeg = next(v for k, v in measured["loader_ms_per_sample"].items() if k.startswith("224"))
    ratio = jpeg["loader"] / jpeg["device"]
    met = "met" if ratio >= 3 else "not met"
    lines = [f"loader cost at 224 px, loader/device = {ratio:.1f}× (target ≥ 3×): {met}"]

    def by_mode(key: str, scale: float = 1.0) -> dict[str, np.ndarray]:
        return {
            m: scale * np.array([r[key] for r in quick["runs"] if r["augment_on"] == m])
            for m in MODES
        }

    for metric in ("knn", "linear"):
        points = by_mode(metric, 100.0)  # accuracies are stored as fractions
        d = difference(list(points["device"]), list(points["loader"]))
        equal = "equal within seed noise" if d.result == "tie" else "differs"
        lines.append(
            f"quickstart {metric}: device − loader = {d.value:+.2f} points, "
            f"90% interval ±{d.half:.2f}: {equal}"
        )
    seconds = {m: v.mean() for m, v in by_mode("train_seconds").items()}
    faster = min(seconds, key=seconds.get)
    lines.append(
        "quickstart training time, mean: "
        + ", ".join(f"{m} {s:.0f} s" for m, s in seconds.items())
        + f": faster on the CPU: {faster}"
    )
    return lines


def plot(measured: dict, quick: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cost, accuracy) = plt.subplots(1, 2, figsize=(11, 3.8))
    labels = list(measured["loader_ms_per_sample"])
    for i, mode in enumerate(MODES):
        values = [measured["loader_ms_per_sample"][k][mode] for k in labels]
        bars = cost.bar(np.arange(len(labels)) + (i - 0.5) * 0.38, values, 0.38, label=mode)
        cost.bar_label(bars, fmt="%.2f", fontsize=8)
    cost.set_xticks(range(len(labels)), [k.split(" (")[0] for k in labels], fontsize=8)
    cost.set_ylabel("loader CPU ms per two-view sample")
    cost.set_title("What the loader costs, per augment_on")
    cost.legend(title="augment_on")
    for i, mode in enumerate(MODES):
        runs = [r for r in quick["runs"] if r["augment_on"] == mode]
        for j, metric in enumerate(("knn", "linear")):
            xs = np.full(len(runs), j + (i - 0.5) * 0.3)
            points = [100 * r[metric] for r in runs]  # stored as fractions
            accuracy.scatter(xs, points, color=f"C{i}", label=mode if j == 0 else None)
    accuracy.set_xticks([0, 1], ["kNN top-1", "linear top-1"])
    accuracy.set_xlim(-0.6, 1.6)
    accuracy.set_ylabel("Fashion-MNIST validation accuracy (%)")
    accuracy.set_title("Quickstart, one point per seed")
    accuracy.legend(title="augment_on")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["overhead", "loader", "device"])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--jpegs", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    file = args.out / "data_throughput.json"  # parts measured now replace those of before
    measured = json.loads(file.read_text()) if file.exists() else {}
    measured["threads"] = torch.get_num_threads()
    if "overhead" in args.parts:
        overhead(args.images, args.batch_size)
    if "loader" in args.parts:
        measured["loader_ms_per_sample"] = loader_cost(args.images, args.jpegs, args.batch_size)
    if "device" in args.parts:
        measured["device_side"] = device_cost(args.device, args.repeats)
    if {"loader", "device"} & set(args.parts):
        file.write_text(json.dumps(measured, indent=1))
    if "quickstart" in args.parts:
        quickstart(args.seeds, args.out / "augment_quickstart.json")
    if "plot" in args.parts:
        quick = json.loads((args.out / "augment_quickstart.json").read_text())
        print("\n".join(verdicts(measured, quick)))
        plot(measured, quick, ROOT / "docs" / "data_path.png")


if __name__ == "__main__":
    main()
