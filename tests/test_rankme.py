"""RankMe: its formula, and the callback that logs it at each validation without reading a label."""

import math

import pytest
import torch
from dataset_files import write_fashion_mnist
from helpers import tiny_module, trainer

from minc_lightning.callbacks import RankMe
from minc_lightning.data import MINCDataModule
from minc_lightning.diagnostics import effective_rank, rankme
from minc_lightning.errors import BadInput
from minc_lightning.scoring import extract_features


def with_singular_values(values: list[float], n: int = 50) -> torch.Tensor:
    """An (n, d) matrix whose singular values are ``values``."""
    d = len(values)
    u, _ = torch.linalg.qr(torch.randn(n, d, generator=torch.Generator().manual_seed(0)))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(1)))
    return u @ torch.diag(torch.tensor(values)) @ v.T


def test_rankme_is_the_exponential_entropy_of_the_normalised_singular_values():
    z = with_singular_values([3.0, 1.0, 0.0, 0.0])
    p = torch.tensor([0.75, 0.25, 0.0, 0.0]) + 1e-7  # eq. 1 of Garrido et al.: + epsilon
    assert rankme(z) == pytest.approx(math.exp(-(p * p.log()).sum().item()), rel=1e-4)
    assert rankme(with_singular_values([2.0] * 8)) == pytest.approx(8.0, rel=1e-4)
    assert rankme(with_singular_values([5.0, 0.0, 0.0])) == pytest.approx(1.0, abs=1e-3)


def test_rankme_reads_the_features_as_they_are_not_centred():
    """A large shared offset is one direction RankMe counts and the centred effective rank
    removes: the two scores differ exactly there."""
    spread = torch.randn(400, 8, generator=torch.Generator().manual_seed(0))
    shifted = spread + 100.0
    assert effective_rank(shifted) == pytest.approx(effective_rank(spread), rel=1e-4)
    assert rankme(shifted) < 2.0 < 7.0 < rankme(spread)
    assert math.isnan(rankme(torch.full((4, 3), float("nan"))))


@pytest.fixture
def fashion(tmp_path):
    write_fashion_mnist(tmp_path, n_train=32, n_test=24)
    return tmp_path


def datamodule(root, **kwargs) -> MINCDataModule:
    options = dict(batch_size=8, num_workers=0, augment_on="loader") | kwargs
    return MINCDataModule("fashion_mnist", str(root), **options)


def test_the_callback_logs_the_rankme_of_the_validation_features_it_was_trained_to(fashion):
    dm = datamodule(fashion)
    callback = RankMe(max_images=16)
    model = tiny_module(num_classes=10)
    trainer(max_epochs=2, callbacks=[callback]).fit(model, datamodule=dm)
    assert len(callback.loader.dataset) == 16  # the cap
    features, _ = extract_features(model.backbone, callback.loader, torch.device("cpu"))
    assert callback.last == pytest.approx(rankme(features), rel=1e-5)
    assert 1.0 <= callback.last <= 16.0


def test_the_callback_logs_val_rankme_through_lightning(fashion):
    t = trainer(max_epochs=1, callbacks=[RankMe()])
    t.fit(tiny_module(num_classes=10), datamodule=datamodule(fashion))
    assert "val/rankme" in t.callback_metrics
    assert t.callback_metrics["val/rankme"].item() == pytest.approx(t.callbacks[0].last)


def test_data_without_a_validation_split_is_scored_on_training_images_when_asked(tmp_path):
    from dataset_files import write_image_folder

    write_image_folder(tmp_path / "train", ["a", "b"], per_class=8)
    dm = MINCDataModule("folder", str(tmp_path), 8, num_workers=0, image_size=16)
    with pytest.raises(BadInput, match=r"no validation split.*RankMe\(split='train'\)"):
        trainer(max_epochs=1, callbacks=[RankMe()]).fit(tiny_module(num_classes=2), datamodule=dm)
    t = trainer(max_epochs=1, callbacks=[RankMe(split="train")])
    t.fit(tiny_module(num_classes=2), datamodule=dm)
    assert "train/rankme" in t.callback_metrics and "val/rankme" not in t.callback_metrics


def test_bad_settings_are_named_when_the_callback_is_made():
    with pytest.raises(BadInput, match=r"split must be one of .*network must be one of"):
        RankMe(split="test", network="teacher")
    with pytest.raises(BadInput, match="max_images must be"):
        RankMe(max_images=0)
