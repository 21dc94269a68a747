"""A trained network out of a checkpoint, in one line:

    backbone = minc_lightning.load_backbone("runs/x/checkpoints/last.ckpt")            # online
    teacher = minc_lightning.load_backbone(ckpt, network="target")                      # its EMA
    embedder = minc_lightning.load_backbone(ckpt, output="projector")   # backbone + projector

``minc-lightning-embed``, ``minc-lightning-eval`` and ``minc-lightning-export`` all read their
network through ``load_backbone``, so the three agree on what a checkpoint's network is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from minc_lightning.checkpoint_files import incompatibility, load_checkpoint
from minc_lightning.errors import BadCheckpoint, BadInput
from minc_lightning.module import MINCModule
from minc_lightning.validation import check, one_of

Network = Literal["online", "target"]
Output = Literal["backbone", "projector"]


def device_named(name: str) -> torch.device:
    """The device a command's ``--device`` names: "auto" is a GPU when there is one."""
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(auto if name == "auto" else name)


def model_from_checkpoint(
    path: str | Path,
    backbone: nn.Module | None = None,
    ckpt: dict | None = None,
    flag: str | None = None,
) -> MINCModule:
    """MINCModule as a checkpoint saved it, through Lightning's ``load_from_checkpoint`` (which
    rebuilds a CLI run's backbone from its saved config); ``backbone`` for a module built in
    Python, whose backbone object was not saved. Weights that do not fit the rebuilt module
    are an error that lists the differences. ``ckpt``: the checkpoint already loaded;
    ``flag``: the command's option that named ``path``, for its errors."""
    ckpt = load_checkpoint(path, flag=flag) if ckpt is None else ckpt
    given = {"backbone": backbone} if backbone is not None else {}
    # strict=False: a mismatch is reported below, naming the keys and shapes, not Lightning's
    model = MINCModule.load_from_checkpoint(path, map_location="cpu", strict=False, **given)
    if error := incompatibility(model.state_dict(), ckpt["state_dict"]):
        raise BadCheckpoint(f"{path}: {error}")
    return model


def network_of(
    model: MINCModule, network: Network = "online", output: Output = "backbone", where: str = ""
) -> nn.Module:
    """The ``network`` ("online" or its EMA "target") of a MINCModule, up to ``output``: its
    backbone's features, or the projector's embeddings after them. ``where``: the checkpoint's
    name, for the error."""
    check("load_backbone", network=(network, one_of(("online", "target"))))
    check("load_backbone", output=(output, one_of(("backbone", "projector"))))
    if network == "target" and not model.objective.uses_target:
        raise BadInput(
            f"{where or 'the model'}: objective {model.hparams.objective!r} has no "
            "target network; use network='online'"
        )
    target = network == "target"
    backbone = model.target_backbone if target else model.backbone
    if output == "backbone":
        return backbone
    return nn.Sequential(backbone, model.target_projector if target else model.projector)


def load_backbone(
    ckpt: str | Path,
    network: Network = "online",
    output: Output = "backbone",
    backbone: nn.Module | None = None,
    flag: str | None = None,
    checkpoint: dict | None = None,
) -> nn.Module:
    """The trained network of a ``minc-lightning fit`` checkpoint, in eval mode, on the CPU.

    Args:
        ckpt: the checkpoint file.
        network: "online" (the trained student, default) or "target" (its EMA teacher).
        output: "backbone" (its features, what the linear probe and kNN score) or "projector"
            (the backbone followed by the projector: the embeddings the loss saw).
        backbone: the backbone object of a MINCModule built in Python (a CLI run's checkpoint
            records how to build it; one built in Python does not).
        flag: the command-line option that named ``ckpt``, for its errors.
        checkpoint: the file's contents, when the caller has read them already.
    """
    check("load_backbone", network=(network, one_of(("online", "target"))))
    check("load_backbone", output=(output, one_of(("backbone", "projector"))))
    model = model_from_checkpoint(ckpt, backbone=backbone, ckpt=checkpoint, flag=flag)
    return network_of(model, network, output, where=str(ckpt)).eval()
