"""Shards (litdata) against the JPEG folder they were written from, on this machine.

Parts (``--parts``, all by default):

* ``loader``: the folder, its shards in a local folder, and the same shards on a SeaweedFS S3
  server started on 127.0.0.1 (``object_store.py``), directly and behind a proxy on 127.0.0.1
  that delays each request by 20 or 50 ms (a distant bucket's round trip), in both
  ``augment_on`` modes at 224 px (ImageNet preset, about 500×375 JPEGs written by the
  benchmark, ``--chunk_bytes`` chunks, each reader allowed 6 chunks on disk): loader CPU
  core-milliseconds per two-view sample (0 workers, one thread: the process's CPU time over
  16 batches of the loader, its download thread included), samples per second through
  ``--workers`` loader workers over an epoch (from its start, the workers' start-up included,
  and from its first batch on: the pace of an epoch long enough for its start not to count),
  each the median of ``--repeats`` rounds over every source in turn, seconds from the data
  module's creation to the first batch, the most bytes of chunks a reader held on disk
  (sampled every 5 ms), and the S3 server's own CPU per sample over the epoch (it runs on the
  same cores). The global order from S3 (one request a record) is measured beside.
* ``first_batch``: seconds from ``MINCDataModule(...)`` to the first training batch, on a folder
  of ``--files`` small JPEGs (listing and indexing them is what a million files cost) and on its
  shards (the time ``minc-lightning-prepare`` took is printed beside it).
* ``quickstart``: ``configs/quickstart.yaml`` trained from its files and from shards of them in
  the global order (``--seeds``), scored like ``minc-lightning-eval``: shards must reach the
  files' accuracy (``claims.judge_shards``' rule); the tests find the two bit-identical on the
  CPU.
* ``order``: the quickstart from shards in about 210 chunks, in the chunk-local order and in the
  global order (``--order_seeds``, paired), judged by ``verdicts.order_unchanged``; its runs go to
  ``docs/data/streaming_order.json`` as each ends, and an interrupted part continues.

Writes ``docs/data/streaming.json``; ``benchmarks/report.py`` turns it into its section of
docs/results.md, with a plot and the verdicts.

    python -m benchmarks.streaming                          # about 2 hours on 2 cores
    python -m benchmarks.streaming --parts loader           # about 20 minutes, cores idle
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.claims import judge_shards
from benchmarks.common import DATA, ROOT
from benchmarks.data_throughput import loader_seconds, write_jpegs
from benchmarks.object_store import KEY, SECRET, delaying_proxy, s3_server, upload
from benchmarks.runner import final_point, run_missing
from benchmarks.verdicts import ORDER_MARGIN, order_unchanged
from minc_lightning.commands.prepare import prepare
from minc_lightning.data import MINCDataModule

MODES = ("loader", "device")
CORE_MS_BATCHES = 16  # each round's core-ms: the first 16 batches after a warm-up one


def module(
    dataset: str, root: str, mode: str, workers: int, batch: int, **options
) -> MINCDataModule:
    dm = MINCDataModule(dataset, root, batch, num_workers=workers, augment_on=mode, **options)
    dm.setup("fit")
    return dm


def samples_per_second(build) -> tuple[float, float, float]:
    """Through the loader's workers over one epoch: (samples per second from the iterator's
    creation, start-up included; samples per second from the first batch on, the pace a long
    epoch keeps; seconds from ``build()``, the data module's creation, to the first batch)."""
    started = time.perf_counter()
    dm = build()
    start, n, first, first_at, first_n = time.perf_counter(), 0, None, None, 0
    for batch in dm.train_dataloader():
        if first_at is None:
            first_at, first_n = time.perf_counter(), len(batch[1])
            first = first_at - started
        n += len(batch[1])
    end = time.perf_counter()
    return n / (end - start), (n - first_n) / (end - first_at), first


@contextmanager
def held_on_disk(cache: Path) -> Iterator[dict]:
    """Samples the bytes of chunks each reader holds under ``cache`` every few milliseconds;
    yields {"peak": the largest any reader held}."""
    seen, stop = {"peak": 0}, threading.Event()

    def watch() -> None:
        while not stop.is_set():
            held: dict[str, int] = {}
            for path in cache.glob("*/readers/*/*"):
                if path.suffix in (".bin", ".part"):
                    try:
                        held[path.parent.name] = held.get(path.parent.name, 0) + path.stat().st_size
                    except FileNotFoundError:
                        pass
            seen["peak"] = max([seen["peak"], *held.values()])
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


# each source: (dataset, root, added latency per request in s or None, data module options)
def sources(folder: Path, shards: Path) -> dict[str, tuple]:
    s3 = "s3://bench/jpegs"
    return {
        "JPEG folder": ("folder", str(folder), None, {}),
        "shards, local folder": ("streaming", str(shards), None, {}),
        "shards, S3 on 127.0.0.1": ("streaming", s3, 0.0, {}),
        "shards, S3 + 20 ms a request": ("streaming", s3, 0.02, {}),
        "shards, S3 + 50 ms a request": ("streaming", s3, 0.05, {}),
        "shards, S3, global order (a request a record)": (
            "streaming",
            s3,
            0.0,
            {"order": "global"},
        ),
    }


def loader_part(
    jpegs: int,
    batch: int,
    workers: int,
    work: Path,
    endpoint: str,
    chunk_bytes: int,
    keep: Callable[[dict], None],
    repeats: int = 3,
) -> tuple[dict, dict]:
    """The loader table: ``repeats`` rounds over every source of core-ms (``CORE_MS_BATCHES``
    batches) and of the timings through the workers, each row's median (the peak: its largest)
    beside its rounds;
    ``keep(rows so far)`` after each, so that a failure keeps them."""
    folder = work / "jpegs"
    write_jpegs(folder / "train", jpegs)
    shards = work / "shards"
    prepare("folder", shards, folder, splits=("train",), chunk_bytes=chunk_bytes, verbose=False)
    upload(shards, "bench", "jpegs")
    chunks = json.loads((shards / "train" / "index.json").read_text())["chunks"]
    largest = max(c["chunk_bytes"] for c in chunks)
    bound = (4 + 2) * largest  # the default window's chunks, and two arriving
    cache = Path(os.environ["MINC_LIGHTNING_SHARD_CACHE"])
    print(f"\n## 224 px two-view samples ({len(chunks)} chunks of up to {largest:,} bytes)\n")
    print(
        f"| source | augment_on | core-ms per sample | samples/s ({workers} workers) | from the "
        "first batch | first batch (s) | peak cache a reader (MB) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    result: dict[str, dict] = {}
    for _ in range(repeats):  # interleaved, so that a slower minute slows every source
        for label, (dataset, root, delay, options) in sources(folder, shards).items():
            for mode in MODES:
                key = f"{label} | {mode}"
                with ExitStack() as stack:
                    if delay:
                        proxied = stack.enter_context(delaying_proxy(endpoint, delay))
                        os.environ["AWS_ENDPOINT_URL"] = proxied
                    chunked = delay is not None and options.get("order") != "global"
                    if chunked:
                        options = options | {"cache_bytes": bound}
                    shutil.rmtree(cache, ignore_errors=True)  # each one downloads afresh
                    threads = torch.get_num_threads()
                    torch.set_num_threads(1)  # the loader's own cost, as in one worker
                    dm = module(dataset, root, mode, 0, batch, **options)
                    cost = 1000 * loader_seconds(dm, CORE_MS_BATCHES)
                    torch.set_num_threads(threads)
                    shutil.rmtree(cache, ignore_errors=True)
                    held = stack.enter_context(held_on_disk(cache))
                    served = server_seconds()
                    rate, steady, first = samples_per_second(
                        lambda: module(dataset, root, mode, workers, batch, **options)  # noqa: B023
                    )
                    served = server_seconds() - served
                    peak = held["peak"] if chunked else None
                    os.environ["AWS_ENDPOINT_URL"] = endpoint
                row = result.setdefault(key, {"rounds": []})
                row["rounds"].append(
                    {
                        "core_ms": cost,
                        "samples_per_s": rate,
                        "steady_samples_per_s": steady,
                        "first_batch_s": first,
                        "peak_cache_bytes": peak,
                        "server_core_ms": 1000 * served / jpegs if delay is not None else None,
                    }
                )
                row |= summary(row["rounds"])
                keep(result)
                print(
                    f"| {label} | {mode} | {cost:.2f} | {rate:.0f} | {steady:.0f} | "
                    f"{first:.1f} | {'–' if peak is None else f'{peak / 1e6:.1f}'} |",
                    flush=True,
                )
    chunking = {"chunks": len(chunks), "largest_chunk_bytes": largest, "cache_bytes": bound}
    return result, chunking


def summary(rounds: list[dict]) -> dict:
    """A row's figures over its rounds: the median of each timing, the largest peak."""
    out = {
        k: float(np.median([r[k] for r in rounds]))
        for k in rounds[0]
        if k != "peak_cache_bytes" and rounds[0][k] is not None
    }
    peaks = [r["peak_cache_bytes"] for r in rounds if r["peak_cache_bytes"] is not None]
    return out | {"peak_cache_bytes": max(peaks) if peaks else None}


def server_seconds() -> float:
    """CPU seconds the S3 server (a ``weed`` child of this process) has used: it serves the
    chunks from the cores the loader's workers use, which no other column counts."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().split(") ", 1)
        except (OSError, ValueError):
            continue
        fields = rest.split()
        if name.endswith("(weed") and int(fields[1]) == os.getpid():  # fields[1]: the parent
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


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
                    "--data.order=global",  # shards read as the files are
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


ORDER_CHUNK_BYTES = 50_000  # about 95 Fashion-MNIST records a chunk: 210 chunks of 20,000


def order_part(seeds: list[int], work: Path, out: Path) -> dict:
    """The quickstart from shards in small chunks (about 210, so that a window of 4 holds 2%
    of the data), read in the chunk-local order and in the global order, the same seeds for
    both; judged by ``verdicts.order_unchanged`` (equivalent within ``ORDER_MARGIN``). Each run is
    saved as it ends (``run_missing``): an interrupted part continues."""
    config = ROOT / "configs" / "quickstart.yaml"
    shards = work / "fm_small_chunks"
    prepare(
        "fashion_mnist",
        shards,
        None,
        train_subset=20000,
        chunk_bytes=ORDER_CHUNK_BYTES,
        verbose=False,
    )
    chunks = len(json.loads((shards / "train" / "index.json").read_text())["chunks"])
    settings = [{"order": o, "seed": seed} for seed in seeds for o in ("chunks", "global")]

    def train(setting: dict) -> dict:
        options = [
            f"--seed_everything={setting['seed']}",
            "--data.dataset=streaming",
            f"--data.root={shards}",
            "--data.train_subset=null",
            f"--data.order={setting['order']}",
        ]
        run = work / f"order_{setting['order']}_{setting['seed']}"
        return {"chunks": chunks, "window": 4} | final_point(config, run, options)

    runs = run_missing(out, settings, train)
    for metric in ("linear", "knn"):
        paired = [
            (a[metric], b[metric])
            for a in runs
            if a["order"] == "chunks"
            for b in runs
            if b["order"] == "global" and b["seed"] == a["seed"]
        ]
        verdict, ci = order_unchanged(*map(list, zip(*paired, strict=True)))
        print(
            f"{metric}: chunks − global {100 * ci.value:+.2f} points, 90% interval "
            f"[{100 * ci.low:+.2f}, {100 * ci.high:+.2f}], margin ±{100 * ORDER_MARGIN:.1f}: "
            f"{verdict}"
        )
    return {"runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts", nargs="+", default=["loader", "first_batch", "quickstart", "order"]
    )
    parser.add_argument("--jpegs", type=int, default=4096, help="224 px images for 'loader'")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--chunk_bytes", type=int, default=2_000_000, help="for 'loader'")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the samples/s timings")
    parser.add_argument("--files", type=int, default=100_000, help="files for 'first_batch'")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--order_seeds", type=int, nargs="+", default=[0, 1, 2])
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
            os.environ["MINC_LIGHTNING_SHARD_CACHE"] = str(work / "cache")

            def keep(rows: dict) -> None:
                args.out.write_text(json.dumps(out | {"loader": rows}, indent=1))

            out["loader"], chunking = loader_part(
                args.jpegs,
                args.batch_size,
                args.workers,
                work,
                endpoint,
                args.chunk_bytes,
                keep,
                args.repeats,
            )
            out["load_average"] = os.getloadavg()[0]  # the timings' context
            out["setting"] = chunking | {
                k: vars(args)[k]
                for k in ("jpegs", "batch_size", "workers", "chunk_bytes", "repeats")
            }
        if "first_batch" in args.parts:
            out["first_batch"] = first_batch_part(args.files, work)
        if "quickstart" in args.parts:
            out["quickstart"] = quickstart_part(args.seeds, work)
        if "order" in args.parts:
            order_part(args.order_seeds, work, args.out.with_name("streaming_order.json"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
