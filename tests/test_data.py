"""MINCDataModule on tiny datasets written in the real on-disk formats."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_files import (
    write_cifar,
    write_fashion_mnist,
    write_image_folder,
    write_imagenet,
    write_stl10,
)

from minc_lightning.data import DATASETS, MINCDataModule
from minc_lightning.data.formats import DEBIAN_FASHION_MNIST, find_fashion_mnist


def datamodule(dataset: str, root: Path | None, **kwargs) -> MINCDataModule:
    args = dict(batch_size=2, num_workers=0, download=False, augment_on="loader") | kwargs
    dm = MINCDataModule(dataset, None if root is None else str(root), **args)
    dm.setup("fit")
    return dm


def check_views(dm: MINCDataModule, size: int, labels: np.ndarray | None = None) -> None:
    views, label = dm.train_set[0]
    assert len(views) == 2
    for v in views:
        assert v.shape == (3, size, size) and v.dtype == torch.uint8
    assert not torch.equal(views[0], views[1])
    batch = next(iter(dm.train_dataloader()))
    assert batch[0][0].dtype == torch.uint8
    (v1, v2), y = dm.on_after_batch_transfer(batch, 0)  # what the Trainer does on the device
    assert v1.shape == v2.shape == (dm.batch_size, 3, size, size) and y.dtype == torch.long
    assert v1.dtype == v2.dtype == torch.float32
    if labels is not None:
        assert [dm.train_set[i][1] for i in range(len(labels))] == labels.tolist()
    image, _ = dm.val_set[0]
    assert torch.equal(image, dm.val_set[0][0])  # eval transform is deterministic
    assert image.shape == (3, size, size)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_pickles(tmp_path, name):
    written = write_cifar(tmp_path, name)
    dm = datamodule(name, tmp_path)
    check_views(dm, 32, written["train_y"])
    assert len(dm.train_set) == len(written["train_y"]) and len(dm.val_set) == len(
        written["test_y"]
    )
    dm.train_set.transform = None  # the raw image is exactly what was written
    assert np.array_equal(np.asarray(dm.train_set[4][0]), written["train_x"][4])
    assert [dm.val_set[i][1] for i in range(len(dm.val_set))] == written["test_y"].tolist()


def test_stl10_binaries(tmp_path):
    written = write_stl10(tmp_path)
    dm = datamodule("stl10", tmp_path, image_size=32)
    check_views(dm, 32)
    n_train = len(written["train_y"])
    assert len(dm.train_set) == n_train + len(written["unlabeled_x"])
    labels = [dm.train_set[i][1] for i in range(len(dm.train_set))]
    assert labels == written["train_y"].tolist() + [-1] * len(written["unlabeled_x"])
    dm.val_set.transform = None  # column-major storage is undone: pixels in place
    assert np.array_equal(np.asarray(dm.val_set[1][0]), written["test_x"][1])
    assert [dm.val_set[i][1] for i in range(len(dm.val_set))] == written["test_y"].tolist()


def test_fashion_mnist_idx_files_become_rgb(tmp_path):
    written = write_fashion_mnist(tmp_path)
    dm = datamodule("fashion_mnist", tmp_path)
    check_views(dm, 28, written["train_y"])
    dm.train_set.transform = None
    image = np.asarray(dm.train_set[3][0])
    assert image.shape == (28, 28, 3)
    assert all(np.array_equal(image[..., c], written["train_x"][3]) for c in range(3))


def test_real_fashion_mnist_when_installed():
    if find_fashion_mnist(None) is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs dataset-fashion-mnist, but {DEBIAN_FASHION_MNIST} is empty")
        pytest.skip("dataset-fashion-mnist is not installed")
    dm = datamodule("fashion_mnist", None, batch_size=64)
    assert len(dm.train_set) == 60000 and len(dm.val_set) == 10000
    labels = dm.train_set.labels
    assert sorted(labels.unique().tolist()) == list(range(10))
    assert torch.bincount(labels).tolist() == [6000] * 10
    check_views(dm, 28)


@pytest.mark.parametrize("ext", [".JPEG", ".png"])
def test_image_folder_with_and_without_val(tmp_path, ext):
    write_image_folder(tmp_path / "flat", ["cats", "dogs"], ext=ext)
    dm = datamodule("folder", tmp_path / "flat", image_size=16)
    check_views_no_val = dm.val_set is None
    assert check_views_no_val and dm.num_classes == 2 and len(dm.train_set) == 4
    write_image_folder(tmp_path / "split" / "train", ["cats", "dogs", "owls"], ext=ext)
    write_image_folder(tmp_path / "split" / "val", ["cats", "dogs", "owls"], ext=ext)
    dm = datamodule("folder", tmp_path / "split", image_size=16)
    check_views(dm, 16)
    assert dm.num_classes == 3
    assert sorted({dm.train_set[i][1] for i in range(len(dm.train_set))}) == [0, 1, 2]


def test_imagenet_layout(tmp_path):
    classes = write_imagenet(tmp_path, per_class=2)
    dm = datamodule("imagenet", tmp_path, image_size=16)
    check_views(dm, 16)
    assert dm.train_set.classes == classes and dm.num_classes == 1000


def test_imagenet100_reads_only_its_classes(tmp_path):
    write_imagenet(tmp_path, subset_100=True)
    dm = datamodule("imagenet100", tmp_path, image_size=16)
    assert len(dm.train_set.classes) == 100 and "n99999991" not in dm.train_set.classes
    assert len(dm.train_set) == 100 and len(dm.val_set) == 100
    assert dm.num_classes == 100


def test_imagenet100_names_missing_classes(tmp_path):
    write_imagenet(tmp_path)  # three classes, none of ImageNet-100's
    with pytest.raises(FileNotFoundError, match="lacks 100 of the 100"):
        datamodule("imagenet100", tmp_path)


def test_presets_follow_practice():
    from minc_lightning.data import PRESETS

    assert PRESETS["imagenet"].image_size == 224 and PRESETS["cifar10"].image_size == 32
    assert PRESETS["cifar10"].gaussian_blur == (0.0, 0.0) and PRESETS["stl10"].image_size == 96
    steps = MINCDataModule("cifar10", augment_on="loader").train_transform.transforms[0].transforms
    assert not any("Blur" in type(t).__name__ and t.prob > 0 for t in steps)


def test_uint8_views_normalised_on_device_equal_lightly_float_views(tmp_path):
    """The loader's uint8 views, normalised per batch, are lightly's float views (same seed)."""
    from lightly.transforms import BYOLView1Transform, BYOLView2Transform
    from PIL import Image

    dm = MINCDataModule("imagenet", str(tmp_path), image_size=64, augment_on="loader")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 96, 3), np.uint8))
    preset, stats = dm.preset, dm.preset.stats
    float_views = [  # lightly's views as a user writes them: float, normalised per image
        view(
            input_size=64,
            cj_strength=preset.cj_strength,
            min_scale=preset.min_scale,
            gaussian_blur=preset.gaussian_blur[i],
            solarization_prob=preset.solarization_prob[i],
            normalize={"mean": stats[0], "std": stats[1]},
        )
        for i, view in enumerate((BYOLView1Transform, BYOLView2Transform))
    ]
    torch.manual_seed(3), np.random.seed(3)  # lightly's blur and solarisation draw from numpy
    uint8 = dm.train_transform(image)
    torch.manual_seed(3), np.random.seed(3)
    reference = [view(image) for view in float_views]
    batch = dm.on_after_batch_transfer([[v[None] for v in uint8], torch.zeros(1)], 0)
    for ours, theirs in zip(batch[0], reference, strict=True):
        torch.testing.assert_close(ours[0], theirs, rtol=0, atol=1e-5)
    assert not torch.allclose(batch[0][0], batch[0][1])  # two different views
    val = [torch.rand(2, 3, 8, 8), torch.zeros(2)]  # float batches pass through untouched
    assert dm.on_after_batch_transfer(val, 0)[0] is val[0]


def test_module_explains_uint8_views():
    from minc_lightning.data.batch import unpack_views

    views = [torch.zeros(2, 3, 8, 8, dtype=torch.uint8)] * 2
    with pytest.raises(ValueError, match="on_after_batch_transfer"):
        unpack_views((views, torch.zeros(2, dtype=torch.long)))


# --- errors ----------------------------------------------------------------------------------
def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        MINCDataModule("imagenet1k")
    assert all(name in str(err.value) for name in DATASETS)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "stl10"])
def test_missing_files_name_path_layout_and_source(tmp_path, name):
    with pytest.raises(FileNotFoundError) as err:
        datamodule(name, tmp_path / "nowhere")
    message = str(err.value)
    assert "nowhere" in message and "Expected layout" in message and "http" in message


def test_missing_imagenet_split_names_the_path(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "train")):
        datamodule("imagenet", tmp_path)


def test_offline_download_failure_says_what_to_do(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        datamodule("cifar10", tmp_path, download=True)


def test_corrupt_image_is_named_or_skipped(tmp_path, caplog):
    write_image_folder(tmp_path / "train", ["a", "b"], per_class=2)
    bad = tmp_path / "train" / "a" / "img_1.JPEG"
    bad.write_bytes(b"not a jpeg")
    dm = datamodule("folder", tmp_path, image_size=16)
    index = [i for i, (p, _) in enumerate(dm.train_set.samples) if p == str(bad)][0]
    with pytest.raises(OSError, match="img_1.JPEG"):
        dm.train_set[index]
    dm = datamodule("folder", tmp_path, image_size=16, on_corrupt="skip")
    views, label = dm.train_set[index]
    assert label == dm.train_set.samples[index + 1][1] and dm.train_set.skipped == 1
    assert "img_1.JPEG" in caplog.text


def test_empty_class_folder_says_so(tmp_path):
    write_image_folder(tmp_path / "train", ["full"], per_class=2)
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        datamodule("folder", tmp_path)


def test_dataset_smaller_than_one_batch_says_so(tmp_path):
    write_fashion_mnist(tmp_path, n_train=5)
    with pytest.raises(ValueError, match="fewer than one batch"):
        datamodule("fashion_mnist", tmp_path, batch_size=8)


def test_folder_needs_a_root():
    with pytest.raises(ValueError, match="data.root"):
        MINCDataModule("folder")


def test_subset_is_fixed(tmp_path):
    write_fashion_mnist(tmp_path, n_train=12)
    a = datamodule("fashion_mnist", tmp_path, train_subset=5).train_set.indices
    b = datamodule("fashion_mnist", tmp_path, train_subset=5).train_set.indices
    assert a == b and len(set(a)) == 5


def test_dataset_smaller_than_the_global_batch_names_processes(tmp_path):
    from types import SimpleNamespace

    write_fashion_mnist(tmp_path, n_train=20)
    dm = MINCDataModule("fashion_mnist", str(tmp_path), batch_size=8, num_workers=0)
    cpu = SimpleNamespace(root_device=torch.device("cpu"))
    dm.trainer = SimpleNamespace(world_size=4, strategy=cpu)  # 4 processes × 8 > 20 images
    with pytest.raises(ValueError, match=r"batch_size 8 × 4 processes"):
        dm.setup("fit")


def test_augmentation_given_as_an_object_is_used_as_given(tmp_path):
    """A lightly transform passed as the augmentation replaces the preset's; its float views are
    used as they are (only uint8 views are normalised on the device)."""
    from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform

    write_fashion_mnist(tmp_path, n_train=8)
    views = [
        view(input_size=20, gaussian_blur=0.0) for view in (BYOLView1Transform, BYOLView2Transform)
    ]
    for augment_on in ("loader", "device"):  # the device reads the views' own values
        dm = MINCDataModule(
            "fashion_mnist",
            str(tmp_path),
            batch_size=4,
            num_workers=0,
            augmentation=BYOLTransform(*views),
            augment_on=augment_on,
        )
        dm.setup("fit")
        (v1, v2), _ = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
        assert v1.dtype == torch.float32 and v1.shape == (4, 3, 20, 20)  # not the preset's 28
    dm = MINCDataModule("fashion_mnist", augment_on="loader")
    crop = dm.train_transform.transforms[0].transforms[0]
    assert tuple(crop.size) == (28, 28)  # the default: the preset's size
