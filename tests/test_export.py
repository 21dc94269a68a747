"""minc-lightning-export: the backbone's weights, readable without minc_lightning."""

import sys
from pathlib import Path

import pytest
import torch
import torchvision
from dataset_files import write_fashion_mnist

from minc_lightning.commands.export import main
from minc_lightning.commands.fit import run_cli

CONFIGS = Path(__file__).parents[1] / "configs"

pytestmark = pytest.mark.usefixtures("offline_wandb")


@pytest.fixture(scope="module")
def resnet_checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    write_fashion_mnist(tmp / "data", n_train=16, n_test=8)
    config = tmp / "resnet.yaml"
    config.write_text(
        "model:\n  backbone:\n    class_path: minc_lightning.backbones.ResNet\n"
        "    init_args:\n      name: resnet18\n"
    )
    run_cli(
        [
            "fit",
            f"--config={CONFIGS / 'quickstart.yaml'}",
            f"--config={config}",
            f"--data.root={tmp / 'data'}",
            "--data.batch_size=8",
            "--data.num_workers=0",
            "--data.train_subset=null",
            "--data.image_size=32",
            "--model.projection_hidden_dim=16",
            "--model.prediction_hidden_dim=16",
            "--model.projection_dim=8",
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp / 'run'}",
            f"--trainer.logger.init_args.save_dir={tmp / 'run'}",
        ]
    )
    return tmp / "run" / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("network", ["online", "target"])
def test_exported_resnet_loads_into_torchvision_with_identical_features(
    resnet_checkpoint, tmp_path, network, monkeypatch
):
    out = tmp_path / "resnet18_minc.pt"
    argv = ["minc-lightning-export", f"--ckpt={resnet_checkpoint}", f"--out={out}"]
    monkeypatch.setattr(sys, "argv", [*argv, f"--network={network}"])
    main()  # the command, as a user runs it
    # what a downstream user reads: tensors only (weights_only refuses any pickled class, so
    # nothing of minc_lightning is needed to load it) into a plain torchvision ResNet-18
    weights = torch.load(out, weights_only=True)
    result = torchvision.models.resnet18().load_state_dict(weights, strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and not result.unexpected_keys

    from minc_lightning.loading import model_from_checkpoint

    model = model_from_checkpoint(resnet_checkpoint).eval()
    ours = model.target_backbone if network == "target" else model.backbone
    theirs = torchvision.models.resnet18()
    theirs.load_state_dict(torch.load(out), strict=False)
    theirs.fc = torch.nn.Identity()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs.eval()(x))


def test_export_refuses_a_bad_network(resnet_checkpoint, tmp_path):
    from minc_lightning.commands.export import export

    with pytest.raises(ValueError, match="minc-lightning-export: network must be"):
        export(str(resnet_checkpoint), str(tmp_path / "x.pt"), network="student")
