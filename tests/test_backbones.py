"""Backbones: timm models as feature extractors, trained, resumed and exported."""

import sys

import pytest
import torch
from helpers import SIZE, loaders, tiny_module, trainer
from lightning.pytorch import Callback

from minc_lightning.backbones import Timm
from minc_lightning.commands.export import plain_state_dict

TINY_VIT = dict(img_size=SIZE, patch_size=4, depth=2, embed_dim=24, num_heads=2)


def vit() -> Timm:
    torch.manual_seed(0)
    return Timm("vit_small_patch16_224", **TINY_VIT)


def test_tiny_timm_vit_trains_and_resumes_exactly(tmp_path):
    train, _ = loaders(n=32)  # 4 steps per epoch
    straight = tiny_module(backbone=vit(), optimizer="adamw", lr=1e-3, weight_decay=0.04)
    trainer(max_epochs=2).fit(straight, train)

    class StopAfterEpoch1(Callback):  # what a killed job leaves: a checkpoint after step 4
        def on_train_epoch_end(self, trainer, pl_module):
            trainer.save_checkpoint(tmp_path / "epoch1.ckpt")
            trainer.should_stop = True

    first = tiny_module(backbone=vit(), optimizer="adamw", lr=1e-3, weight_decay=0.04)
    trainer(max_epochs=2, callbacks=[StopAfterEpoch1()]).fit(first, train)
    resumed = tiny_module(backbone=vit(), optimizer="adamw", lr=1e-3, weight_decay=0.04)
    trainer(max_epochs=2).fit(resumed, train, ckpt_path=tmp_path / "epoch1.ckpt")

    assert not torch.equal(straight.backbone.net.pos_embed, vit().net.pos_embed)  # it trained
    assert straight.state_dict().keys() == resumed.state_dict().keys()
    for name, a in straight.state_dict().items():
        b = resumed.state_dict()[name]
        assert torch.equal(a, b), name


def test_vit_position_embedding_and_class_token_get_no_weight_decay():
    model = tiny_module(backbone=vit(), optimizer="adamw", lr=1e-3, weight_decay=0.04)
    train, _ = loaders(n=8)
    fit = trainer(max_steps=1)
    fit.fit(model, train)
    groups = {g["name"]: {id(p) for p in g["params"]} for g in fit.optimizers[0].param_groups}
    net = model.backbone.net
    for excluded in (net.pos_embed, net.cls_token, net.blocks[0].norm1.weight):
        assert id(excluded) in groups["online_no_decay"]
    assert id(net.blocks[0].attn.qkv.weight) in groups["online"]


def test_exported_timm_backbone_loads_into_timm_with_identical_features(tmp_path):
    import timm

    backbone = vit().eval()
    torch.save(plain_state_dict(backbone), tmp_path / "vit.pt")
    theirs = timm.create_model("vit_small_patch16_224", num_classes=0, **TINY_VIT).eval()
    theirs.load_state_dict(torch.load(tmp_path / "vit.pt"))  # strict: every key, no more
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(backbone(x), theirs(x))


def test_missing_timm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # what an environment without timm imports
    with pytest.raises(ImportError, match=r"pip install 'minc-lightning\[timm\]'"):
        Timm("resnet18")
