"""Hugging Face datasets as a source (data.dataset: huggingface), on datasets that the datasets
library itself writes here, in its real formats: save_to_disk with datasets.Image values (PIL
images), parquet files with the images' bytes, and a column of file paths."""

import io
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from test_faults import fit_command, straight_killed_resumed

from minc_lightning.commands.prepare import prepare
from minc_lightning.data import MINCDataModule
from minc_lightning.errors import BadInput, MissingPath, Unreadable

CLASSES = ["cat", "dog", "fish"]


def pictures(n: int, seed: int) -> tuple[list[np.ndarray], list[int]]:
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (20 + i % 3, 24, 3), dtype=np.uint8) for i in range(n)]
    return arrays, [i % len(CLASSES) for i in range(n)]


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def write(root: Path, kind: str, n_train: int = 12, n_val: int = 6) -> dict:
    """A two-split dataset at ``root`` with its images as ``kind``: "pil" (datasets.Image,
    save_to_disk), "bytes" (a binary column, parquet files) or "paths" (file paths relative to
    root, save_to_disk). Returns the arrays and labels of each split."""
    written = {}
    splits = {}
    for split, n, seed in (("train", n_train, 0), ("validation", n_val, 1)):
        arrays, labels = pictures(n, seed)
        written[split] = (arrays, labels)
        if kind == "pil":
            features = datasets.Features(
                {"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)}
            )
            images = [Image.fromarray(a) for a in arrays]
            splits[split] = datasets.Dataset.from_dict(
                {"image": images, "label": labels}, features=features
            )
        elif kind == "bytes":
            table = datasets.Dataset.from_dict({"img": [png(a) for a in arrays], "y": labels})
            (root / "data").mkdir(parents=True, exist_ok=True)
            table.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
        else:
            (root / "files").mkdir(parents=True, exist_ok=True)
            paths = []
            for i, a in enumerate(arrays):
                Image.fromarray(a).save(root / "files" / f"{split}_{i}.png")
                paths.append(f"files/{split}_{i}.png")
            splits[split] = datasets.Dataset.from_dict({"path": paths, "label": labels})
    if splits:
        datasets.DatasetDict(splits).save_to_disk(str(root))
    return written


COLUMNS = {"pil": {}, "bytes": {"image_column": "img", "label_column": "y"}}
COLUMNS["paths"] = {"image_column": "path"}


@pytest.mark.parametrize("kind", ["pil", "bytes", "paths"])
def test_each_format_gives_back_the_images_and_labels_it_was_written_with(tmp_path, kind):
    written = write(tmp_path, kind)
    dm = MINCDataModule("huggingface", str(tmp_path), 4, num_workers=0, **COLUMNS[kind])
    assert dm.num_classes == 3
    for split, name in (("train", "train"), ("val", "validation")):
        data = dm.build(split, None)
        arrays, labels = written[name]
        assert len(data) == len(arrays)
        for i in range(len(data)):
            image, label = data[i]
            assert np.array_equal(np.asarray(image), arrays[i]) and label == labels[i]


@pytest.mark.parametrize("augment_on", ["loader", "device"])
def test_batches_are_made_in_both_augment_on_modes_with_workers(tmp_path, augment_on):
    write(tmp_path, "pil")
    dm = MINCDataModule(
        "huggingface", str(tmp_path), 4, num_workers=2, image_size=16, augment_on=augment_on
    )
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    views, labels = batch
    assert [tuple(v.shape) for v in views] == [(4, 3, 16, 16)] * 2
    assert views[0].dtype == torch.float32 and set(labels.tolist()) <= {0, 1, 2}
    assert len(dm.val_set) == 6


def test_unlabelled_images_have_no_classes(tmp_path):
    write(tmp_path, "pil")
    dm = MINCDataModule("huggingface", str(tmp_path), 4, num_workers=0, label_column=None)
    assert dm.num_classes == 0
    assert dm.build("train", None)[0][1] == -1


@pytest.mark.parametrize(
    "options, error, words",
    [
        ({"image_column": "picture"}, BadInput, "no column 'picture'.*columns: image, label"),
        ({"label_column": "kind"}, BadInput, "no column 'kind'"),
        ({"image_column": "label"}, BadInput, "column 'label' holds ClassLabel.*not images"),
        ({"train_split": "test"}, MissingPath, "has no split 'test'"),
    ],
)
def test_bad_columns_and_splits_are_named(tmp_path, options, error, words):
    write(tmp_path, "pil")
    with pytest.raises(error, match=words):
        MINCDataModule("huggingface", str(tmp_path), 4, num_workers=0, **options).setup("fit")


def test_an_empty_split_is_named(tmp_path):
    one = datasets.Dataset.from_dict({"image": [png(pictures(1, 0)[0][0])], "label": [0]})
    one.select([]).to_parquet(str(tmp_path / "train-0.parquet"))
    with pytest.raises(BadInput, match=r"\[train\] is empty"):
        MINCDataModule("huggingface", str(tmp_path), 4, num_workers=0).build("train", None)
    (tmp_path / "disk").mkdir()  # save_to_disk writes an empty split that datasets cannot load
    datasets.DatasetDict({"train": one.select([])}).save_to_disk(str(tmp_path / "disk"))
    with pytest.raises(Unreadable, match="could not read .*disk.*at least one row"):
        MINCDataModule("huggingface", str(tmp_path / "disk"), 4).build("train", None)


def test_a_folder_that_is_no_dataset_and_a_missing_root_are_named(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(MissingPath, match="neither a dataset written by save_to_disk"):
        MINCDataModule("huggingface", str(tmp_path), 4).build("train", None)
    with pytest.raises(MissingPath, match="does not exist"):
        MINCDataModule("huggingface", str(tmp_path / "gone" / "x" / "y"), 4).build("train", None)


def test_a_hub_name_offline_is_named_in_one_line(tmp_path):
    """Offline, a Hub name ends the run with exit 2 and one line naming it (users' machines
    without a network; ``HF_HUB_OFFLINE`` makes the library fail at once, as no network does)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "minc_lightning.commands.fit",
            "fit",
            "--data.dataset=huggingface",
            "--data.root=someone/no-such-dataset",
            "--trainer.max_epochs=1",
            f"--trainer.default_root_dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "'someone/no-such-dataset' is not a folder here" in last and "Hub" in last


@pytest.mark.parametrize("on_corrupt", ["raise", "skip"])
def test_an_unreadable_image_follows_on_corrupt_naming_its_row(tmp_path, on_corrupt):
    arrays, labels = pictures(4, 0)
    blobs = [png(a) for a in arrays]
    blobs[1] = blobs[1][:40]  # truncated
    table = datasets.Dataset.from_dict({"img": blobs, "y": labels})
    table.to_parquet(str(tmp_path / "train.parquet"))
    dm = MINCDataModule(
        "huggingface", str(tmp_path), 2, image_column="img", label_column="y", on_corrupt=on_corrupt
    )
    data = dm.build("train", None)
    if on_corrupt == "raise":
        with pytest.raises(Unreadable, match=r"train\] row 1"):
            data[1]
    else:
        assert np.array_equal(np.asarray(data[1][0]), arrays[2])  # the next image instead
        assert data.skipped == 1


def test_prepare_writes_shards_that_read_back_the_same_images(tmp_path):
    written = write(tmp_path / "hf", "bytes")
    prepare(
        "huggingface",
        tmp_path / "shards",
        tmp_path / "hf",
        verbose=False,
        num_workers=1,
        columns={"image_column": "img", "label_column": "y"},
    )
    dm = MINCDataModule("streaming", str(tmp_path / "shards"), 4, num_workers=0)
    assert dm.num_classes == 3
    val = dm.build("val", None)
    arrays, labels = written["validation"]
    assert [val[i][1] for i in range(len(val))] == labels
    assert all(np.array_equal(np.asarray(val[i][0]), arrays[i]) for i in range(len(val)))
    train = dm.build("train", None).in_source_order()
    arrays, labels = written["train"]
    assert all(np.array_equal(np.asarray(train[i][0]), arrays[i]) for i in range(len(train)))


@pytest.mark.slow
@pytest.mark.parametrize("augment_on", ["loader", "device"])
def test_sigkill_mid_epoch_then_resume_is_bit_exact_from_a_hugging_face_dataset(
    tmp_path, augment_on
):
    write(tmp_path / "hf", "pil", n_train=64, n_val=8)  # 8 batches of 8 per epoch

    def fit(run_dir: Path, *extra: str) -> list[str]:
        options = [
            "--data.dataset=huggingface",
            "--data.image_size=16",
            f"--data.augment_on={augment_on}",
            "--data.num_workers=2",
        ]
        return fit_command(tmp_path / "hf", run_dir, [*options, *extra])

    straight_killed_resumed(fit, tmp_path)
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "crashed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 16
    for name in a["state_dict"]:
        assert torch.equal(a["state_dict"][name], b["state_dict"][name]), name
