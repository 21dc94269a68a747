"""Shards (litdata) against the JPEG folder they were written from, on this machine.

Parts (``--parts``, all by default):

* ``loader``: for the folder, its shards in a local folder, and the same shards on a SeaweedFS S3
  server started on 127.0.0.1 (``object_store.py``), in both ``augment_on`` modes at 224 px
  (ImageNet preset, about 500×375 JPEGs written by the benchmark): loader CPU core-milliseconds
  per two-view sample (0 workers, one thread: the process's CPU time over the loader), and
  samples per second through ``--workers`` loader workers (wall time of an epoch, the workers'
  start-up included).
* ``first_batch``: seconds from ``MINCDataModule(...)`` to the first training batch, on a folder
  of ``--files`` small JPEGs (listing and indexing them is what a million files cost) and on its
  shards (the time ``minc-lightning-prepare`` took is printed beside it).
* ``quickstart``: ``configs/quickstart.yaml`` trained from its files and from shards of them
  (``--seeds``), scored like ``minc-lightning-eval``: shards must reach the files' accuracy
  (``claims.judge_shards``' rule); the tests find the two bit-identical on the CPU.

Writes ``docs/data/streaming.json``; ``benchmarks/report.py`` turns it into its section of
docs/results.md, with a plot and the verdicts.

    python benchmarks/streaming.py                          # over 30 minutes on 2 cores
    python benchmarks/streaming.py --parts loader --jpegs 256
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch
from claims import judge_shards
from common import DATA, ROOT
from data_throughput import loader_seconds, write_jpegs
from object_store import KEY, SECRET, s3_server, upload
from PIL import Image
from recipe_curve import final_point

from minc_lightning.data import MINCDataModule
from minc_lightning.prepare import prepare

MODES = ("loader", "device")


def module(dataset: str, root: str, mode: str, workers: int, batch: int) -> MINCDataModule:
    dm = MINCDataModule(dataset, root, batch, num_workers=workers, augment_on=mode)
    dm.setup("fit")
    return dm


def samples_per_second(dm: MINCDataModule) -> float:
    """Two-view samples per second through the loader's workers over one epoch, from the
    iterator's creation (the workers' start-up included)."""
    start, n = time.perf_counter(), 0
    for batch in dm.train_dataloader():
        n += len(batch[1])
    return n / (time.perf_counter() - start)


def loader_part(jpegs: int, batch: int, workers: int, work: Path, endpoint: str) -> dict:
    folder = work / "jpegs"
    write_jpegs(folder / "train", jpegs)
    prepare("folder", work / "shards", folder, splits=("train",), verbose=False)
    upload(work / "shards", "bench", "jpegs")
    sources = {
        "JPEG folder": ("folder", str(folder)),
        "shards, local folder": ("streaming", str(work / "shards")),
        "shards, S3 on 127.0.0.1": ("streaming", "s3://bench/jpegs"),
    }
    print("\n## 224 px two-view samples: loader core-ms per sample, and samples/s\n")
    print(f"| source | augment_on | core-ms per sample | samples/s ({workers} workers) |")
    print("|---|---|---:|---:|")
    result = {}
    for label, (dataset, root) in sources.items():
        for mode in MODES:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # the loader's own cost, as in one worker
            cost = 1000 * loader_seconds(module(dataset, root, mode, 0, batch))
            torch.set_num_threads(threads)
            rate = samples_per_second(module(dataset, root, mode, workers, batch))
            result[f"{label} | {mode}"] = {"core_ms": cost, "samples_per_s": rate}
            print(f"| {label} | {mode} | {cost:.2f} | {rate:.0f} |", flush=True)
    return result


def first_batch_part(files: int, work: Path) -> dict:
    folder = work / "many" / "train"
    rng = np.random.default_rng(0)
    for i in range(files):
        (folder / f"c{i % 10}").mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((32, 32)).save(folder / f"c{i % 10}" / f"{i}.JPEG")
    started = time.perf_counter()
    prepare("folder", work / "many_shards", folder.parent, splits=("train",), verbose=False)
    prepare_seconds = time.perf_counter() - started
    result = {"files": files, "prepare_seconds": prepare_seconds}
    for label, (dataset, root) in {
        "JPEG folder": ("folder", str(folder.parent)),
        "shards, local folder": ("streaming", str(work / "many_shards")),
    }.items():
        os.system("sync")
        started = time.perf_counter()
        dm = MINCDataModule(dataset, root, 256, num_workers=0, image_size=32)
        dm.setup("fit")
        next(iter(dm.train_dataloader()))
        result[label] = time.perf_counter() - started
    print(f"\n## Time to the first batch, {files} files\n")
    print("| source | seconds |\n|---|---:|")
    for label in ("JPEG folder", "shards, local folder"):
        print(f"| {label} | {result[label]:.1f} |")
    print(f"\n(minc-lightning-prepare wrote the shards in {prepare_seconds:.0f} s)", flush=True)
    return result


def quickstart_part(seeds: list[int], work: Path) -> dict:
    """The quickstart from its files and from shards of them (the same 20,000-image subset)."""
    config = ROOT / "configs" / "quickstart.yaml"
    prepare("fashion_mnist", work / "fm_shards", None, train_subset=20000, verbose=False)
    runs = []
    for seed in seeds:
        for source, extra in (
            ("files", []),
            (
                "shards",
                [
                    "--data.dataset=streaming",
                    f"--data.root={work / 'fm_shards'}",
                    "--data.train_subset=null",
                ],
            ),
        ):
            point = final_point(
                config,
                work / f"quickstart_{source}_{seed}",
                [f"--seed_everything={seed}", *extra],
            )
            runs.append({"source": source, "seed": seed} | point)
            print(json.dumps(runs[-1]), flush=True)
    for verdict in judge_shards({"quickstart": {"runs": runs}}):  # report.py's rule
        print(f"{verdict.metric}: {verdict.line()}")
    return {"runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["loader", "first_batch", "quickstart"])
    parser.add_argument("--jpegs", type=int, default=1024, help="224 px images for 'loader'")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--files", type=int, default=100_000, help="files for 'first_batch'")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=DATA / "streaming.json")
    args = parser.parse_args()
    out = json.loads(args.out.read_text()) if args.out.is_file() else {}
    out |= {"cpus": os.cpu_count(), "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        if "loader" in args.parts:
            endpoint = stack.enter_context(s3_server(work / "seaweedfs"))
            os.environ |= {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            import boto3

            boto3.client("s3").create_bucket(Bucket="bench")
            out["loader"] = loader_part(args.jpegs, args.batch_size, args.workers, work, endpoint)
            out["setting"] = {k: vars(args)[k] for k in ("jpegs", "batch_size", "workers")}
        if "first_batch" in args.parts:
            out["first_batch"] = first_batch_part(args.files, work)
        if "quickstart" in args.parts:
            out["quickstart"] = quickstart_part(args.seeds, work)
        out["load_average"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
