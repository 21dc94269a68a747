"""``minc-lightning-prepare``: a ``DATASETS`` entry written as litdata shards, for
``MINCDataModule(dataset="streaming")`` (``minc_lightning.data.shards``).

    minc-lightning-prepare --dataset imagenet --root /datasets/imagenet --out /scratch/shards
    aws s3 sync /scratch/shards s3://bucket/imagenet      # then stream it from every node

Each split is written to ``<out>/<split>`` and recorded in ``<out>/manifest.json`` when it is
complete and its count checked against the source. Run again after an interruption, it keeps the
splits already recorded and continues an unfinished one from litdata's checkpoints.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from minc_lightning.data.presets import DATASETS, Source
from minc_lightning.data.sampling import written_order
from minc_lightning.data.shards import FORMAT, MANIFEST, Encoder, require_litdata
from minc_lightning.errors import BadInput, Unreadable, reports_user_errors


def write_json(path: Path, value: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")  # a kill mid-write keeps the old file
    partial.write_text(json.dumps(value, indent=1))
    partial.replace(path)


def prepare(
    dataset: str,
    out: Path,
    root: Path | None = None,
    splits: tuple[str, ...] = ("train", "val"),
    train_subset: int | None = None,
    on_corrupt: Literal["raise", "skip"] = "raise",
    num_workers: int | None = None,
    chunk_bytes: int | str = "64MB",
    download: bool = False,
    verbose: bool = True,
    columns: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``dataset``'s ``splits`` under ``out``; returns the manifest. ``columns``: a
    Hugging Face dataset's ``image_column``, ``label_column``, ``train_split`` and
    ``val_split`` (``Source``'s; their defaults otherwise)."""
    litdata = require_litdata()
    if dataset not in DATASETS or dataset == "streaming":
        names = ", ".join(n for n in DATASETS if n != "streaming")
        raise BadInput(f"minc-lightning-prepare: --dataset must be one of {names}, got {dataset!r}")
    entry = DATASETS[dataset]
    if entry.needs_root and root is None:
        raise BadInput(f"minc-lightning-prepare: dataset {dataset!r} needs --root")
    source = Source(root, download, "raise", **(columns or {}))
    with locked(out):
        manifest = opened_manifest(out, dataset, root)
        job = Job(litdata, dataset, out, manifest, on_corrupt, num_workers, chunk_bytes, verbose)
        for split in splits:
            data = entry.read(source, split, None)
            if data is None:
                print(f"{dataset} has no {split} split: nothing to write", flush=True)
                continue
            job.split(split, data, train_subset if split == "train" else None)
        return job.manifest


def opened_manifest(out: Path, dataset: str, root: Path | None) -> dict[str, Any]:
    """``out``'s manifest (a fresh one where there is none), refused if it belongs to another
    format or dataset."""
    path = out / MANIFEST
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    if manifest and manifest.get("format") != FORMAT:
        raise BadInput(
            f"{out} holds shards in format {manifest.get('format')!r} of an earlier version; "
            f"this version writes format {FORMAT}: choose another --out or delete {out}"
        )
    if manifest and manifest.get("dataset") != dataset:
        raise BadInput(
            f"{out} holds shards of {manifest.get('dataset')!r}, not {dataset!r}: choose "
            "another --out"
        )
    return {"format": FORMAT, "dataset": dataset, "source": str(root), "splits": {}} | manifest


@dataclass
class Job:
    """One ``prepare`` call's fixed parts, and the manifest it keeps up to date."""

    litdata: Any
    dataset: str
    out: Path
    manifest: dict[str, Any]
    on_corrupt: Literal["raise", "skip"]
    num_workers: int | None
    chunk_bytes: int | str
    verbose: bool

    def split(self, split: str, data: Any, wanted: int | None) -> None:
        """Write one split, unless the manifest or a finished earlier run already holds it.
        The training split goes in the seeded order train_subset takes its subset from: each
        chunk a random sample, so a chunk-local order still mixes the classes."""
        positions = written_order(len(data), wanted) if split == "train" else None
        count = len(positions) if positions is not None else len(data)
        if classes := getattr(data, "classes", None):
            self.manifest.setdefault("classes", list(classes))
        order = ("subset" if count < len(data) else "permutation") if split == "train" else "source"
        done = self.manifest["splits"].get(split)
        folder = self.out / split
        if done and done["count"] == count and done.get("train_subset") == wanted:
            print(f"{folder}: {count} records already prepared", flush=True)
            return
        mode = None  # continue from litdata's checkpoints, if an earlier run left them
        if (folder / "index.json").is_file():  # finished, but not yet in the manifest
            try:
                skipped = check_written(folder, count, self.on_corrupt == "skip")
            except RuntimeError as err:
                print(f"{err}: writing the split anew", flush=True)
                mode = "overwrite"
            else:
                return self.record(split, count, wanted, skipped, order)
        written = None if positions is None else tuple(positions.tolist())
        print(f"writing {count} {split} images of {self.dataset} to {folder}", flush=True)
        self.write_shards(split, Encoder(data, self.on_corrupt, written), count, mode)
        skipped = check_written(folder, count, self.on_corrupt == "skip")
        self.record(split, count, wanted, skipped, order)

    def write_shards(self, split: str, encoder: Encoder, count: int, mode: str | None) -> None:
        """Write ``count`` records of ``encoder`` as the split's shards, through litdata."""
        write(
            self.litdata,
            fn=encoder,
            inputs=list(range(count)),
            output_dir=str(self.out / split),
            chunk_bytes=self.chunk_bytes,
            num_workers=self.writers(split, mode),
            use_checkpoint=True,  # an interrupted split continues where it stopped
            keep_data_ordered=True,  # record p is position p
            reorder_files=False,
            mode=mode,
            # the writers read files and encode PNGs, no CUDA: fork starts them in a fraction
            # of spawn's time (which re-imports torch in each)
            start_method="fork" if sys.platform == "linux" else None,
            verbose=self.verbose,
        )

    def writers(self, split: str, mode: str | None) -> int:
        """How many writers: litdata continues an interrupted split only with the writers it
        started with, so a continued split keeps them (and says so)."""
        path = self.out / f".{split}.writers.json"
        writers = self.num_workers or min(8, os.cpu_count() or 1)
        if mode is None and path.is_file():
            before = json.loads(path.read_text())["num_workers"]
            if before != writers:
                print(f"continuing {split} with the {before} writers it was started with")
            writers = before
        write_json(path, {"num_workers": writers})
        return writers

    def record(self, split: str, count: int, wanted: int | None, skipped: list, order: str) -> None:
        record(self.manifest, self.out / MANIFEST, split, count, wanted, skipped, order)


def write(litdata: Any, **options: Any) -> None:
    """``litdata.optimize`` in a process group of its own, ended as a whole when it stops:
    litdata's writers start processes of their own, which a failed run leaves behind, waiting
    on a pipe (and holding their parent's output open)."""
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    receive, send = context.Pipe(duplex=False)
    alive_read, alive_write = os.pipe()  # held open by this process alone: EOF when it dies
    writer = context.Process(
        target=optimize_in_group, args=(litdata, options, send, (alive_read, alive_write))
    )
    writer.start()
    send.close()
    os.close(alive_read)
    try:
        error = receive.recv() if receive.poll(None) else "the writer ended without a word"
    except EOFError:
        error = f"the writer process ended (exit code {writer.exitcode})"
    finally:
        # the writer's own exit, not join(): litdata's processes hold join's pipe open until
        # they are ended, and a failed run leaves them blocked
        deadline = time.monotonic() + 60
        while writer.exitcode is None and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            os.killpg(writer.pid, signal.SIGKILL)  # whatever of the group is left
        except (ProcessLookupError, PermissionError):
            pass
        writer.join()  # reaped
        os.close(alive_write)
    if error is not None:
        unreadable = re.match(rf"^{Unreadable.__name__}: (.+)$", error)
        if unreadable:  # a source file: named, and what to do
            raise Unreadable(f"writing {options['output_dir']}: {unreadable[1]}")
        raise RuntimeError(f"writing {options['output_dir']} failed: {error}")


def optimize_in_group(
    litdata: Any, options: dict[str, Any], send: Any, alive: tuple[int, int]
) -> None:
    os.setpgrp()
    os.close(alive[1])  # the parent's end: only the parent may hold it
    threading.Thread(target=end_group_with_parent, args=(alive[0],), daemon=True).start()
    try:
        litdata.optimize(**options)
        message, code = None, 0
    except BaseException as err:  # the parent raises it, by name
        text = f"{type(err).__name__}: {err}"
        # litdata reports a writer's error as the text of its tracebacks: a source file that
        # cannot be read is the package's own error; else the first error line after litdata's
        # heading is the cause
        ours = re.findall(rf"^(?:[\w.]+\.)?({Unreadable.__name__}: .+)$", text, re.M)
        causes = ours or re.findall(
            r"^(\w+(?:Error|Exception): .+)$", text.split("\n", 1)[-1], re.M
        )
        message, code = causes[0] if causes else text, 1
    send.send(message)
    sys.stdout.flush()
    sys.stderr.flush()
    # at once: an ordinary exit would wait for litdata's processes, which a failure leaves
    # blocked (the parent ends the group)
    os._exit(code)


def end_group_with_parent(alive: int) -> None:
    """Wait for the parent's end (EOF on a pipe only it holds open), then end this process
    group: litdata's writers with it. A SIGKILLed ``prepare`` runs no cleanup of its own, and
    its writers would go on writing into ``--out`` beside the run a scheduler restarts."""
    while os.read(alive, 1):
        pass
    os.killpg(0, signal.SIGKILL)


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Within: ``<out>/.prepare.lock`` is held (released also when this process ends, however it
    ends: its writers end with it); a second ``prepare`` on ``out`` is refused, naming the
    process that holds it."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / ".prepare.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        # a POSIX lock, not flock: it belongs to this process alone, so the writers it forks do
        # not hold it on after a failed split
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EAGAIN):
            raise
        holder = os.read(fd, 32).decode().strip() or "unknown"
        os.close(fd)
        raise BadInput(
            f"{out} is being written by another minc-lightning-prepare (process {holder}); "
            "wait for it to end, or choose another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    try:
        yield
    finally:
        os.close(fd)


def chunk_size(text: str) -> int | str:
    """``--chunk_bytes``: a number of bytes ("100000") or a size with its unit ("64mb")."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if not re.fullmatch(r"\d+(\.\d+)?\s*[kmgt]?i?b", text.lower()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: give bytes (100000) or a size with a unit (64mb)"
        )
    return text


def record(
    manifest: dict,
    path: Path,
    split: str,
    count: int,
    subset: int | None,
    skipped: list,
    order: str,
) -> None:
    """A checked split, into the manifest on disk (``order``: ``shards.source_positions``)."""
    manifest["splits"][split] = {
        "count": count,
        "train_subset": subset,
        "skipped": skipped,
        "order": order,
    }
    write_json(path, manifest)
    names = ", ".join(s["file"] for s in skipped[:10]) + (" ..." if len(skipped) > 10 else "")
    left_out = f", {len(skipped)} unreadable files left out ({names}; listed in {MANIFEST})"
    print(f"{path.parent / split}: {count} records{left_out if skipped else ''}", flush=True)


def check_written(folder: Path, count: int, scan: bool) -> list[dict[str, Any]]:
    """The written split holds ``count`` records, record p at position p; with ``scan``, the
    unreadable files it recorded (position and name)."""
    from litdata import StreamingDataset

    records = StreamingDataset(str(folder))
    if len(records) != count:
        raise RuntimeError(f"{folder}: wrote {len(records)} records of the source's {count}")
    probes = sorted({0, count // 2, count - 1}) if count else []
    for p in range(count) if scan else probes:
        if int(records[p]["index"]) != p:
            raise RuntimeError(f"{folder}: record {p} holds index {records[p]['index']}")
    if not scan:
        return []
    return [
        {"position": p, "file": bytes(records[p]["image"]).decode()}
        for p in range(count)
        if int(records[p]["label"]) == -2
    ]


def parser() -> argparse.ArgumentParser:
    """``minc-lightning-prepare``'s options."""
    p = argparse.ArgumentParser(
        prog="minc-lightning-prepare",
        description="Write a dataset as litdata shards for data.dataset=streaming.",
    )
    names = [n for n in DATASETS if n != "streaming"]
    p.add_argument("--dataset", required=True, choices=names, help="a key of DATASETS")
    p.add_argument("--root", type=Path, help="where the source dataset lives (data.root)")
    p.add_argument("--out", type=Path, required=True, help="the folder to write the shards to")
    p.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val"])
    p.add_argument(
        "--train_subset", type=int, help="write the fixed subset data.train_subset=N takes"
    )
    p.add_argument(
        "--on_corrupt",
        choices=["raise", "skip"],
        default="raise",
        help="an unreadable image stops the run (named) or is left out and listed",
    )
    p.add_argument("--num_workers", type=int, help="writer processes (default: up to 8)")
    p.add_argument(
        "--chunk_bytes", type=chunk_size, default="64MB", help="one shard's size: 100000, 64mb"
    )
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR etc.")
    hf = p.add_argument_group("huggingface", "which columns and splits hold the images")
    hf.add_argument("--image_column", default="image", help="data.image_column")
    hf.add_argument("--label_column", default="label", help="data.label_column ('none': no labels)")
    hf.add_argument("--train_split", default="train", help="data.train_split")
    hf.add_argument("--val_split", default="validation", help="data.val_split")
    return p


@reports_user_errors("minc-lightning-prepare")
def main(argv: list[str] | None = None) -> None:
    p = parser()
    a = p.parse_args(argv)
    columns = {
        "image_column": a.image_column,
        "label_column": None if a.label_column.lower() in ("none", "null") else a.label_column,
        "train_split": a.train_split,
        "val_split": a.val_split,
    }
    if a.train_subset is not None and a.train_subset < 1:
        p.error(f"--train_subset must be an integer >= 1, got {a.train_subset}")
    splits, options = tuple(a.splits), (a.train_subset, a.on_corrupt, a.num_workers)
    prepare(a.dataset, a.out, a.root, splits, *options, a.chunk_bytes, a.download, columns=columns)


if __name__ == "__main__":
    main()
