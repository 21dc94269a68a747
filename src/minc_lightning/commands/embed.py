"""``minc-lightning-embed``: a trained network's features of a dataset's images, in one file.

    minc-lightning-embed --ckpt runs/x/checkpoints/last.ckpt --out features.npz
    minc-lightning-embed --ckpt ... --data.dataset folder --data.root my_photos --out photos.parquet
    minc-lightning-embed --ckpt ... --data.dataset huggingface --data.root user/name --split val

The images are those of any source ``MINCDataModule`` reads (``--data.*``; unset: the
checkpoint's own data), under the dataset's deterministic eval transform at the image size the
network was trained at, through the same feature code as ``minc-lightning-eval`` (so the two give
the same features). A folder may also be flat, ``root/<image>``: its images have no label.

The file holds one row per image: ``ids`` (a folder's file paths relative to ``data.root``; a
row or record number for other sources), ``labels`` (-1 where there is none) and ``features``
(float32, N × F).

* ``.npz``: ``f = numpy.load(out)``; ``f["features"]``, ``f["ids"]``, ``f["labels"]``,
  ``f["skipped"]``; ``pandas.DataFrame(f["features"], index=f["ids"])``;
* ``.parquet`` (needs pyarrow, in the ``huggingface`` extra): ``pandas.read_parquet(out)``,
  columns ``id``, ``label``, ``f0`` … ``f{F-1}``; the skipped images are in its metadata.

With ``--data.on_corrupt skip`` an unreadable image is left out, listed on the terminal and in the
file; with ``raise`` (the default) it stops the command, naming the image. The file is written
whole or not at all (a partial file is renamed into place), and never over the checkpoint or
inside the images' folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from minc_lightning.checkpoint_files import load_checkpoint
from minc_lightning.data.images import CheckedImageFolder
from minc_lightning.data.module import MINCDataModule, saved_settings
from minc_lightning.data.presets import PRESETS
from minc_lightning.errors import (
    BadCheckpoint,
    BadInput,
    IsAFolder,
    MissingExtra,
    Unreadable,
    UserError,
    reports_user_errors,
)
from minc_lightning.loading import Network, Output, device_named, load_backbone
from minc_lightning.validation import check, non_negative_int, one_of, positive_int

SUFFIXES = (".npz", ".parquet")


@dataclass
class Data:
    """The images to embed: any of ``MINCDataModule``'s sources (unset: the checkpoint's).

    Args:
        dataset: a key of ``minc_lightning.data.DATASETS`` (folder, huggingface, streaming, ...).
        root: where it lives (a folder, ``s3://bucket/prefix`` for shards, a Hub name).
        on_corrupt: an unreadable image stops the command ("raise") or is left out and listed
            ("skip").
        image_size: the eval crop (unset: the size the network was trained at).
        eval_resize: the resize before the centre crop (unset: the preset's ratio).
        image_column: huggingface: the column of images.
        label_column: huggingface: the column of labels ("none": unlabelled).
        train_split: huggingface: the split ``--split train`` reads.
        val_split: huggingface: the split ``--split val`` reads.
    """

    dataset: str | None = None
    root: str | None = None
    on_corrupt: Literal["raise", "skip"] = "raise"
    image_size: int | None = None
    eval_resize: int | None = None
    image_column: str | None = None
    label_column: str | None = None
    train_split: str | None = None
    val_split: str | None = None


def data_settings(saved: dict[str, Any], data: Data, num_workers: int) -> dict[str, Any]:
    """The data module's settings: the checkpoint's, overridden by what ``data`` sets. Another
    dataset keeps only the image size the network was trained at. Every image of the split is
    embedded (no subset); an unreadable one raises, for ``Rows`` to apply ``on_corrupt``."""
    saved = saved_settings(saved)
    given = {k: v for k, v in asdict(data).items() if v is not None and k != "on_corrupt"}
    if str(given.get("label_column", "")).lower() in ("none", "null"):
        given["label_column"] = None
    settings = saved
    if "dataset" in given and given["dataset"] != saved.get("dataset"):
        settings = {"image_size": trained_size(saved)} if saved else {}
    fixed = {"train_subset": None, "val_subset": None, "on_corrupt": "raise"}
    return settings | given | fixed | {"num_workers": num_workers}


def trained_size(saved: dict[str, Any]) -> int:
    """The image side the checkpoint's network was trained at."""
    if saved.get("image_size"):
        return int(saved["image_size"])
    try:  # the preset's; shards hold their source's, in the manifest
        return MINCDataModule(**saved).image_size
    except UserError:
        return PRESETS[saved.get("dataset", "folder")].image_size


class Rows(Dataset):
    """A split's images as (image, label, row, readable): an unreadable image under "skip" is a
    row marked unreadable (left out and listed), not another image served in its place."""

    def __init__(self, dataset: Dataset, on_corrupt: str, shape: tuple[int, ...]) -> None:
        self.dataset, self.on_corrupt, self.shape = dataset, on_corrupt, shape

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, bool]:
        try:
            image, label = self.dataset[i]
        except Unreadable:
            if self.on_corrupt == "raise":
                raise
            return torch.zeros(self.shape), -1, i, False
        return image, int(label), i, True


def ids_of(dataset: Dataset, root: Any) -> list[str]:
    """Each image's name: a folder's file path relative to its root, else its row number."""
    indices = list(range(len(dataset)))
    if isinstance(dataset, Subset):
        indices, dataset = [dataset.indices[i] for i in indices], dataset.dataset
    samples = getattr(dataset, "samples", None)
    if isinstance(dataset, CheckedImageFolder) or samples is not None:
        base = Path(str(root))
        return [os.path.relpath(samples[i][0], base) for i in indices]
    positions = getattr(dataset, "positions", None)  # shards: the record number
    return [str(int(positions[i]) if positions is not None else i) for i in indices]


def embed(
    ckpt: str,
    out: str = "embeddings.npz",
    data: Data | None = None,
    split: Literal["train", "val"] = "train",
    network: Network = "online",
    output: Output = "backbone",
    batch_size: int = 256,
    num_workers: int = 4,
    device: str = "auto",
) -> Path:
    """Write the features of a split's images under a checkpoint's network to ``out``.

    Args:
        ckpt: checkpoint written by ``minc-lightning fit``.
        out: the file to write: ``.npz`` (numpy) or ``.parquet`` (pandas).
        data: the images (``--data.dataset``, ``--data.root``, ...; unset: the checkpoint's).
        split: "train" (a flat folder's images are its training split) or "val".
        network: "online" (the trained student) or "target" (its EMA).
        output: "backbone" (the features the probes score) or "projector" (the embeddings the
            loss saw).
        batch_size: images per forward pass.
        num_workers: loader processes.
        device: "auto" (a GPU when there is one), "cpu", "cuda", "cuda:1", ...
    """
    data = data or Data()
    check(
        "minc-lightning-embed",
        split=(split, one_of(("train", "val"))),
        network=(network, one_of(("online", "target"))),
        output=(output, one_of(("backbone", "projector"))),
        on_corrupt=(data.on_corrupt, one_of(("raise", "skip"))),
        batch_size=(batch_size, positive_int),
        num_workers=(num_workers, non_negative_int),
    )
    target = writable(out, ckpt)
    checkpoint = load_checkpoint(ckpt, flag="--ckpt")
    net = load_backbone(ckpt, network, output, flag="--ckpt", checkpoint=checkpoint)
    dm, dataset = images(ckpt, checkpoint, data, split, num_workers, target)
    rows = Rows(dataset, data.on_corrupt, (3, dm.image_size, dm.image_size))
    where = device_named(device)
    features, labels, kept, skipped = features_of(net, rows, batch_size, num_workers, where)
    ids = ids_of(dataset, dm.root)
    names, left_out = [ids[i] for i in kept], [ids[i] for i in skipped]
    write(target, features, np.asarray(names), labels, left_out)
    what = f"{output} features ({features.shape[1]} each) of the {network} network of {ckpt}"
    say_written(target, len(names), what, f"{dm.dataset} {split} split", left_out)
    return target


def say_written(target: Path, count: int, what: str, source: str, left_out: list[str]) -> None:
    """The command's last lines: what was written where, and which images were left out."""
    if left_out:
        shown = ", ".join(left_out[:10]) + (" ..." if len(left_out) > 10 else "")
        print(f"left out {len(left_out)} unreadable images: {shown} (listed in {target})")
    print(f"wrote {count} {what}, {source}, to {target}")


def images(
    ckpt: str, checkpoint: dict, data: Data, split: str, num_workers: int, target: Path
) -> tuple[MINCDataModule, Any]:
    """The data module (the checkpoint's data settings, overridden by ``data``) and the split's
    images under its eval transform; refused when ``target`` would land among them."""
    saved = dict(checkpoint.get("datamodule_hyper_parameters", {}))
    if not saved and data.dataset is None:
        raise BadCheckpoint(
            f"{ckpt} has no data configuration (a module trained in Python): name the images "
            "with --data.dataset and --data.root"
        )
    dm = MINCDataModule(**data_settings(saved, data, num_workers))
    if dm.root is not None and target_inside(target, dm.root):
        raise BadInput(
            f"minc-lightning-embed: --out {target} lies inside the images' folder {dm.root}"
        )
    dataset = dm.build(split, dm.eval_transform)
    if dataset is None:
        raise BadInput(f"{dm.dataset} at {dm.root} has no {split} split: try --split train")
    return dm, dataset


def writable(out: str, ckpt: str) -> Path:
    """``out`` as a path the command may write: a known suffix, not a folder, not the input."""
    target = Path(out).expanduser().resolve()
    if target.suffix not in SUFFIXES:
        raise BadInput(
            f"minc-lightning-embed: --out {out} must end in {' or '.join(SUFFIXES)} (numpy's "
            "archive or parquet for pandas)"
        )
    if target.is_dir():
        raise IsAFolder(f"minc-lightning-embed: --out {out} is a directory; name a file")
    if target == Path(ckpt).expanduser().resolve():
        raise BadInput(f"minc-lightning-embed: --out {out} is the input checkpoint")
    if target.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as err:
            raise MissingExtra(
                "minc-lightning-embed: a .parquet file needs pyarrow (pip install "
                "'minc-lightning[huggingface]'); .npz needs nothing more"
            ) from err
    return target


def target_inside(target: Path, root: Any) -> bool:
    folder = Path(str(root)).expanduser()
    return "://" not in str(root) and folder.is_dir() and folder.resolve() in target.parents


@torch.no_grad()
def features_of(
    net: torch.nn.Module, rows: Rows, batch_size: int, workers: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
    """(features of the readable rows, their labels, their row numbers, the unreadable rows),
    computed as ``scoring.extract_features`` does: eval mode, float32 on the CPU."""
    loader = DataLoader(rows, batch_size=batch_size, num_workers=workers)
    net = net.eval().to(device)
    feats, labels, kept, skipped = [], [], [], []
    with tqdm(total=len(rows), desc="embedding", unit="img", dynamic_ncols=True) as bar:
        for x, y, index, ok in loader:
            if ok.any():
                feats.append(net(x[ok].to(device)).float().cpu())
                labels.append(y[ok])
                kept += index[ok].tolist()
            skipped += index[~ok].tolist()
            bar.update(len(index))
    if not feats:
        raise Unreadable("minc-lightning-embed: no image of the split could be read")
    return torch.cat(feats).numpy(), torch.cat(labels).numpy(), kept, skipped


def write(
    target: Path, features: np.ndarray, ids: np.ndarray, labels: np.ndarray, skipped: list[str]
) -> None:
    """The file, whole: written beside ``target`` under a hidden name, then renamed onto it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        if target.suffix == ".npz":
            with open(partial, "wb") as f:  # a handle: numpy would add ".npz" to a name
                np.savez(f, features=features, ids=ids, labels=labels, skipped=np.asarray(skipped))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            columns = {"id": pa.array(ids.tolist()), "label": pa.array(labels)}
            columns |= {f"f{j}": pa.array(features[:, j]) for j in range(features.shape[1])}
            metadata = {"minc_lightning.skipped": json.dumps(skipped)}
            pq.write_table(pa.table(columns).replace_schema_metadata(metadata), partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


@reports_user_errors("minc-lightning-embed")
def main() -> None:
    from argparse import RawDescriptionHelpFormatter as RawDescription

    from jsonargparse import CLI

    CLI(embed, as_positional=False, description=__doc__, formatter_class=RawDescription)


if __name__ == "__main__":
    main()
