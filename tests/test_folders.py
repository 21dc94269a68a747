"""Image folders as users' disks hold them: links, loops, hidden debris, other formats, bombs."""

import os
from pathlib import Path

import numpy as np
import pytest
from dataset_files import write_image_folder
from helpers import tiny_module, trainer
from PIL import Image
from test_data import datamodule

from minc_lightning.data import MINCDataModule
from minc_lightning.data.formats import find_fashion_mnist, read_fashion_mnist


def paths(dm: MINCDataModule) -> list[str]:
    return sorted(Path(p).name for p, _ in dm.train_set.samples)


def test_link_loops_and_links_out_of_the_root_neither_multiply_images_nor_hang(tmp_path):
    root = tmp_path / "data"
    write_image_folder(root / "train", ["a", "b"], per_class=2)
    outside = tmp_path / "elsewhere"
    write_image_folder(outside, ["c", "d"], per_class=3)
    train = root / "train"
    os.symlink(train / "a", train / "a" / "loop")  # a folder inside itself
    os.symlink(train, train / "b" / "up")  # back to the root: every class again
    os.symlink(train / "a", train / "b" / "other_class")  # into another class
    os.symlink(outside / "c", train / "b" / "out")  # out of the root: followed, once
    os.symlink(outside / "c", train / "b" / "out_again")
    os.symlink(outside / "c" / "img_0.JPEG", train / "a" / "linked.JPEG")  # a file, once
    os.symlink(outside / "d", train / "d")  # a class folder that is a link (ImageNet-100)
    dm = datamodule("folder", root, image_size=16)
    assert dm.train_set.classes == ["a", "b", "d"]
    per_class = [sum(1 for _, y in dm.train_set.samples if y == c) for c in range(3)]
    assert per_class == [3, 4, 3]  # a: 2 + linked.JPEG; b: 2 + c's other two; d: 3
    real = [os.path.realpath(p) for p, _ in dm.train_set.samples]
    assert len(real) == len(set(real)) == 10


def test_hidden_folders_and_appledouble_files_are_not_classes_or_images(tmp_path):
    root = tmp_path / "data"
    write_image_folder(root / "train", ["a", "b"], per_class=2)
    for debris in (".ipynb_checkpoints", ".git", "__MACOSX"):
        write_image_folder(root / "train", [debris], per_class=1)
    (root / "train" / "a" / "._img_0.JPEG").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    write_image_folder(root / "train" / "b", [".thumbnails"], per_class=1)
    dm = datamodule("folder", root, image_size=16)
    assert dm.train_set.classes == ["a", "b"] and dm.num_classes == 2
    assert len(dm.train_set) == 4 and not any("._" in p for p, _ in dm.train_set.samples)


def test_formats_pil_reads_are_read_and_other_files_listed_as_skipped(tmp_path, caplog):
    root = tmp_path / "data"
    write_image_folder(root / "train", ["a", "b"], per_class=1)
    pixels = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "train" / "a" / "anim.gif")  # not in torchvision's list
    Image.fromarray(pixels).save(root / "train" / "b" / "scan.tga")
    (root / "train" / "a" / "notes.txt").write_text("not an image")
    dm = datamodule("folder", root, image_size=16)
    assert paths(dm) == ["anim.gif", "img_0.JPEG", "img_0.JPEG", "scan.tga"]
    assert "skipped 1 files that are not images" in caplog.text and "notes.txt" in caplog.text
    gif = [i for i, (p, _) in enumerate(dm.train_set.samples) if p.endswith(".gif")][0]
    views, label = dm.train_set[gif]
    assert label == 0


def test_decompression_bomb_obeys_on_corrupt_and_names_the_file(tmp_path, monkeypatch, caplog):
    root = tmp_path / "data"
    write_image_folder(root / "train", ["a", "b"], per_class=2, size=20)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 20 × 24 > 2 × 100: a "bomb"
    dm = datamodule("folder", root, image_size=16)
    with pytest.raises(OSError, match="cannot read image .*img_0.JPEG"):
        dm.train_set[0]
    small = Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8))  # 64 pixels: not a bomb
    small.save(root / "train" / "a" / "img_1.JPEG")
    dm = datamodule("folder", root, image_size=16, on_corrupt="skip")
    dm.train_set[0]  # the bomb is skipped, the next image served
    assert dm.train_set.skipped == 1 and "img_0.JPEG" in caplog.text


def test_a_single_class_folder_is_named_with_its_count(tmp_path):
    write_image_folder(tmp_path / "data" / "train", ["only"], per_class=3)
    with pytest.raises(ValueError, match=f"data.root {tmp_path / 'data'} holds 1 class folder"):
        _ = MINCDataModule("folder", str(tmp_path / "data"), num_workers=0).num_classes


def test_labels_beyond_the_probes_classes_are_named_before_training(tmp_path):
    write_image_folder(tmp_path / "data" / "train", ["a", "b", "c"], per_class=4, size=16)
    dm = MINCDataModule(
        "folder", str(tmp_path / "data"), batch_size=4, num_workers=0, image_size=12
    )
    model = tiny_module(num_classes=2, batch_size=4)
    with pytest.raises(ValueError, match="holds 3 classes .* but model.num_classes is 2"):
        trainer(max_epochs=1).fit(model, dm)


def test_a_root_without_fashion_mnist_is_not_replaced_by_debians_copy(tmp_path):
    assert find_fashion_mnist(tmp_path) is None  # even where Debian's package is installed
    with pytest.raises(FileNotFoundError, match=f"Fashion-MNIST not found at {tmp_path}"):
        read_fashion_mnist(tmp_path, train=True, download=False)
