"""minc-lightning-embed and load_backbone: a checkpoint's features of any source's images, the
same as minc-lightning-eval computes, written whole to a file numpy and pandas read."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from test_huggingface import write

import minc_lightning
from minc_lightning.commands import evaluate
from minc_lightning.commands.embed import Data, embed
from minc_lightning.errors import BadInput, IsAFolder, Unreadable

CONFIG = Path(__file__).parents[1] / "configs" / "quickstart.yaml"


@pytest.mark.parametrize("network", ["online", "target"])
def test_the_features_equal_those_minc_lightning_eval_computes(trained, tmp_path, network):
    ckpt, data = trained
    out = embed(
        str(ckpt), str(tmp_path / "f.npz"), Data(root=str(data)), "val", network, num_workers=2
    )
    request = evaluate.Request(
        str(ckpt), network=network, root=str(data), batch_size=7, num_workers=0, device="cpu"
    )
    _, _, expected, labels, _ = evaluate.request_features(request)
    with np.load(out) as f:
        torch.testing.assert_close(torch.from_numpy(f["features"]), expected)
        assert f["labels"].tolist() == labels.tolist()
        assert f["ids"].tolist() == [str(i) for i in range(20)] and len(f["skipped"]) == 0


def test_load_backbone_gives_each_network_and_the_projector(trained):
    ckpt, data = trained
    online = minc_lightning.load_backbone(ckpt)
    target = minc_lightning.load_backbone(ckpt, network="target")
    projected = minc_lightning.load_backbone(ckpt, output="projector")
    x = torch.randn(4, 3, 28, 28)
    with torch.no_grad():
        assert not online.training and online(x).shape == (4, 32)  # ConvNet(width=4): 8 × 4
        assert not torch.equal(online(x), target(x))
        assert projected(x).shape == (4, 128)  # the quickstart's projection_dim
        torch.testing.assert_close(projected(x), projected[1](online(x)))
    with pytest.raises(BadInput, match="network must be one of"):
        minc_lightning.load_backbone(ckpt, network="teacher")


def test_parquet_holds_what_the_npz_holds_and_pandas_reads_it(trained, tmp_path):
    ckpt, data = trained
    a = embed(str(ckpt), str(tmp_path / "f.npz"), Data(root=str(data)), "val", num_workers=0)
    b = embed(str(ckpt), str(tmp_path / "f.parquet"), Data(root=str(data)), "val", num_workers=0)
    frame = pd.read_parquet(b)
    with np.load(a) as f:
        assert frame["id"].tolist() == f["ids"].tolist()
        assert frame["label"].tolist() == f["labels"].tolist()
        features = frame[[c for c in frame.columns if c.startswith("f")]].to_numpy()
        assert np.array_equal(features, f["features"])


def flat_folder(folder: Path, n: int = 5, broken: int | None = None) -> list[str]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        name = f"photo_{i}.png"
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(folder / name)
        if i == broken:
            (folder / name).write_bytes((folder / name).read_bytes()[:50])
        names.append(name)
    return names


def test_a_flat_folder_of_photos_is_embedded_under_its_file_names(trained, tmp_path):
    ckpt, _ = trained
    names = flat_folder(tmp_path / "photos")
    source = Data(dataset="folder", root=str(tmp_path / "photos"))
    out = embed(str(ckpt), str(tmp_path / "photos.npz"), source, num_workers=0)
    with np.load(out) as f:
        assert f["ids"].tolist() == names and f["labels"].tolist() == [-1] * 5
        assert f["features"].shape == (5, 32)  # at 28 px, the size the network trained at


def test_an_unreadable_image_is_listed_when_skipped_and_named_otherwise(trained, tmp_path):
    ckpt, _ = trained
    names = flat_folder(tmp_path / "photos", broken=2)
    out = tmp_path / "photos.npz"
    out.write_bytes(b"an earlier file")
    source = Data(dataset="folder", root=str(tmp_path / "photos"))
    with pytest.raises(Unreadable, match="photo_2.png"):
        embed(str(ckpt), str(out), source, num_workers=0)
    assert out.read_bytes() == b"an earlier file"  # left whole, no partial file beside it
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    source.on_corrupt = "skip"
    embed(str(ckpt), str(out), source, num_workers=0)
    with np.load(out) as f:
        assert f["skipped"].tolist() == ["photo_2.png"]
        assert f["ids"].tolist() == [n for n in names if n != "photo_2.png"]


def test_the_output_is_never_written_over_its_input(trained, tmp_path):
    ckpt, data = trained
    flat_folder(tmp_path / "photos")
    source = Data(dataset="folder", root=str(tmp_path / "photos"))
    renamed = tmp_path / "model.npz"  # a checkpoint under a name an output could have
    renamed.write_bytes(ckpt.read_bytes())
    with pytest.raises(BadInput, match="is the input checkpoint"):
        embed(str(renamed), str(renamed), source)
    with pytest.raises(BadInput, match="must end in .npz or .parquet"):
        embed(str(ckpt), str(ckpt), source)
    with pytest.raises(BadInput, match="inside the images' folder"):
        embed(str(ckpt), str(tmp_path / "photos" / "e.npz"), source, num_workers=0)
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(IsAFolder):
        embed(str(ckpt), str(tmp_path / "dir.npz"), source)


def test_a_hugging_face_dataset_is_embedded(trained, tmp_path):
    ckpt, _ = trained
    write(tmp_path / "hf", "pil")
    source = Data(dataset="huggingface", root=str(tmp_path / "hf"))
    out = embed(str(ckpt), str(tmp_path / "hf.npz"), source, "val", num_workers=0)
    with np.load(out) as f:
        assert f["features"].shape == (6, 32) and f["labels"].tolist() == [0, 1, 2, 0, 1, 2]


def test_the_command_prints_progress_and_what_it_wrote(trained, tmp_path):
    ckpt, data = trained
    out = tmp_path / "f.npz"
    done = subprocess.run(
        [sys.executable, "-m", "minc_lightning.commands.embed", f"--ckpt={ckpt}", f"--out={out}"]
        + [f"--data.root={data}", "--split=val", "--num_workers=0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "embedding" in done.stderr and "20/20" in done.stderr  # tqdm's line
    assert "wrote 20 backbone features (32 each) of the online network" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "minc_lightning.commands.embed", f"--ckpt={ckpt}", f"--out={ckpt}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "must end in .npz or .parquet" in bad.stderr
