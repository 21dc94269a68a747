"""Offline evaluation: kNN and linear accuracy on frozen features, safe checkpoint loading."""

import pickle

import pytest
import torch
from torch import nn

from minc_lightning import loading, scoring
from minc_lightning.commands import evaluate


def clusters(n: int = 200, classes: int = 4, seed: int = 0, points_seed: int = 0):
    """``n`` points around ``classes`` centres (fixed by ``seed``; points by ``points_seed``)."""
    labels = torch.arange(n) % classes
    centres = torch.randn(classes, 16, generator=torch.Generator().manual_seed(seed)) * 3
    noise = torch.randn(n, 16, generator=torch.Generator().manual_seed(1000 + points_seed))
    return centres[labels] + noise, labels


def test_knn_weighted_vote_by_hand():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    queries = torch.tensor([[1.0, 0.05], [0.05, 1.0], [0.6, 0.5]])
    # k=4: every point votes with exp(cos/T); the third query is nearer class 0 by angle
    result = scoring.knn_accuracy(
        scoring.SplitFeatures(bank, labels, queries, torch.tensor([0, 1, 0]), 2), k=4
    )
    assert result["top1"] == 1.0
    wrong = scoring.knn_accuracy(
        scoring.SplitFeatures(bank, labels, queries, torch.tensor([1, 0, 1]), 2), k=4
    )
    assert wrong["top1"] == 0.0 and wrong["top5"] == 1.0  # top-k capped at the classes


def test_knn_and_linear_separate_clusters_and_not_noise():
    xtr, ytr = clusters(points_seed=0)
    xte, yte = clusters(n=100, points_seed=1)  # held out: the same clusters, other points
    assert scoring.knn_accuracy(scoring.SplitFeatures(xtr, ytr, xte, yte, 4), k=20)["top1"] > 0.95
    assert (
        scoring.linear_accuracy(scoring.SplitFeatures(xtr, ytr, xte, yte, 4), epochs=20)["top1"]
        > 0.95
    )
    shuffled = ytr[torch.randperm(len(ytr), generator=torch.Generator().manual_seed(1))]
    assert (
        scoring.knn_accuracy(scoring.SplitFeatures(xtr, shuffled, xte, yte, 4), k=20)["top1"] < 0.5
    )


def test_features_are_extracted_in_eval_mode():
    backbone = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)).train()
    x = torch.randn(8, 4)
    loader = [(x, torch.zeros(8, dtype=torch.long))]
    feats, _ = scoring.extract_features(backbone, loader, torch.device("cpu"))
    assert backbone.training  # restored
    with torch.no_grad():
        torch.testing.assert_close(feats, backbone.eval()(x))
        assert not torch.allclose(feats, backbone.train()(x))  # batch statistics would differ


def test_not_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        evaluate.load_checkpoint(tmp_path / "missing.ckpt")
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 1}}, other)
    with pytest.raises(ValueError, match="not a minc-lightning checkpoint"):
        evaluate.load_checkpoint(other)
    code = tmp_path / "code.ckpt"
    with open(code, "wb") as f:
        pickle.dump({"state_dict": nn.Linear(2, 2)}, f)  # objects, not data
    with pytest.raises(ValueError, match="not a PyTorch checkpoint|objects other than"):
        evaluate.load_checkpoint(code)


@pytest.mark.parametrize("network", ["online", "target"])
def test_knn_and_linear_commands_on_a_cli_checkpoint(trained, network):
    """The commands score the chosen network of the checkpoint on both splits under the eval
    transform: the same numbers as computing it by hand."""
    ckpt, data = trained
    knn = evaluate.knn(str(ckpt), network=network, k=5, root=str(data), num_workers=0)
    linear = evaluate.linear(str(ckpt), network=network, epochs=2, root=str(data), num_workers=0)
    model = loading.model_from_checkpoint(ckpt)
    backbone = model.target_backbone if network == "target" else model.backbone
    dm = evaluate.MINCDataModule("fashion_mnist", str(data), batch_size=16, num_workers=0)
    cpu = torch.device("cpu")
    xtr, ytr = scoring.extract_features(backbone, dm.eval_dataloader("train"), cpu)
    xte, yte = scoring.extract_features(backbone, dm.eval_dataloader("val"), cpu)
    assert knn == scoring.knn_accuracy(scoring.SplitFeatures(xtr, ytr, xte, yte, 10), k=5)
    assert linear == scoring.linear_accuracy(
        scoring.SplitFeatures(xtr, ytr, xte, yte, 10), epochs=2
    )
    assert not torch.equal(
        scoring.extract_features(model.backbone, dm.eval_dataloader("val"), cpu)[0],
        scoring.extract_features(model.target_backbone, dm.eval_dataloader("val"), cpu)[0],
    )  # so the network asked for matters


def test_random_init_resets_the_trained_weights(trained):
    ckpt, _ = trained
    model = loading.model_from_checkpoint(ckpt)
    fresh = scoring.reinitialise(loading.model_from_checkpoint(ckpt))
    assert not torch.equal(model.backbone.features[0].weight, fresh.backbone.features[0].weight)
    assert torch.equal(
        fresh.backbone.features[1].running_var,
        torch.ones_like(fresh.backbone.features[1].running_var),
    )


def test_checkpoint_from_other_config_is_refused(trained):
    ckpt, _ = trained
    from minc_lightning.backbones import ConvNet

    with pytest.raises(ValueError, match="does not fit|incompatible"):
        loading.model_from_checkpoint(ckpt, backbone=ConvNet(width=8))


def test_pixels_baseline_scores_the_eval_images_themselves(trained):
    ckpt, data = trained
    gray = torch.rand(2, 1, 5, 5).expand(2, 3, 5, 5)
    assert torch.equal(scoring.Pixels()(gray), gray[:, 0].flatten(1))  # one channel, not three
    rgb = torch.rand(2, 3, 5, 5)
    assert scoring.Pixels()(rgb).shape == (2, 75)
    result = evaluate.knn(str(ckpt), k=5, pixels=True, root=str(data), num_workers=0)
    dm = evaluate.MINCDataModule("fashion_mnist", str(data), batch_size=16, num_workers=0)
    cpu = torch.device("cpu")
    xtr, ytr = scoring.extract_features(scoring.Pixels(), dm.eval_dataloader("train"), cpu)
    xte, yte = scoring.extract_features(scoring.Pixels(), dm.eval_dataloader("val"), cpu)
    assert xtr.shape[1] == 28 * 28
    assert result == scoring.knn_accuracy(scoring.SplitFeatures(xtr, ytr, xte, yte, 10), k=5)


def test_scoring_leaves_the_callers_random_state_as_it_was():
    """The linear classifier is seeded for repeatable scores, without reseeding the caller."""
    x, y = torch.randn(40, 6), torch.arange(40) % 4
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = scoring.linear_accuracy(scoring.SplitFeatures(x, y, x, y, 4), epochs=2)
    assert torch.equal(torch.rand(3), expected)
    assert (
        scoring.linear_accuracy(scoring.SplitFeatures(x, y, x, y, 4), epochs=2) == first
    )  # and repeatable


def test_a_checkpoint_trained_on_given_views_is_evaluated_and_embedded(tmp_path):
    """The CLI saves a given augmentation's config with the data settings (it is part of the
    run's identity); evaluation and embedding rebuild the data module without it, since they
    use the eval transform only, instead of handing a config where an object is expected."""
    import numpy as np
    import yaml
    from dataset_files import write_fashion_mnist
    from test_fit import quick_args

    from minc_lightning.commands.embed import Data, embed
    from minc_lightning.commands.fit import run_cli

    write_fashion_mnist(tmp_path / "data", n_train=16, n_test=8)
    views = {"class_path": "lightly.transforms.SimCLRTransform", "init_args": {"input_size": 16}}
    config = tmp_path / "views.yaml"
    config.write_text(yaml.safe_dump({"data": {"augmentation": views, "image_size": 16}}))
    run = tmp_path / "run"
    run_cli(
        ["fit", *quick_args(tmp_path / "data", run), "--trainer.logger=false", f"--config={config}"]
    )
    ckpt = str(run / "checkpoints" / "last.ckpt")
    saved = torch.load(ckpt, weights_only=True)["datamodule_hyper_parameters"]
    assert saved["augmentation"]["class_path"] == views["class_path"]  # recorded, as a config
    result = evaluate.knn(ckpt, k=3, num_workers=0)
    assert 0.0 <= result["top1"] <= 1.0
    out = embed(ckpt, str(tmp_path / "f.npz"), Data(), "val", num_workers=0)
    assert len(np.load(out)["features"]) == 8  # every validation image
