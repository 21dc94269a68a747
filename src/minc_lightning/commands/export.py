"""``minc-lightning-export``: a checkpoint's backbone as a plain state dict, for use elsewhere.

    minc-lightning-export --ckpt runs/x/checkpoints/last.ckpt --out resnet50_minc.pt

The file needs no ``minc_lightning`` to read. For the project's torchvision ResNets the keys are
torchvision's own, so ``torchvision.models.resnet50().load_state_dict(torch.load(f),
strict=False)`` leaves only ``fc.*`` missing (its classifier, which pre-training never had); for
``Timm`` backbones they are timm's, and ``timm.create_model(name, num_classes=0)`` loads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch import Tensor, nn

from minc_lightning.backbones import ResNet, Timm
from minc_lightning.checkpoint_files import atomic_save
from minc_lightning.errors import BadInput, IsAFolder, reports_user_errors
from minc_lightning.loading import load_backbone
from minc_lightning.validation import check, one_of


def plain_state_dict(backbone: nn.Module) -> dict[str, Tensor]:
    """The backbone's weights under the names its source library uses (torchvision for
    ``ResNet``, timm for ``Timm``: both hold the network in ``.net``), detached, on the CPU."""
    state = backbone.state_dict()
    if isinstance(backbone, (ResNet, Timm)):
        state = {k.removeprefix("net."): v for k, v in state.items()}
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def export(ckpt: str, out: str, network: Literal["online", "target"] = "online") -> Path:
    """Write the ``network`` backbone of checkpoint ``ckpt`` to ``out`` as a plain state dict.

    Args:
        ckpt: checkpoint written by ``minc-lightning fit``.
        out: the file to write (its folder is created).
        network: "online" (the trained student, default) or "target" (its EMA).
    """
    check("minc-lightning-export", network=(network, one_of(("online", "target"))))
    path, source = Path(out).expanduser().resolve(), Path(ckpt).expanduser().resolve()
    if path == source or source in path.parents:
        raise BadInput(
            f"minc-lightning-export: --out {out} would overwrite (or sit inside) the input "
            f"checkpoint {ckpt}; choose another file"
        )
    if path.is_dir():
        raise IsAFolder(f"minc-lightning-export: --out {out} is a directory; name a file")
    state = plain_state_dict(load_backbone(ckpt, network, flag="--ckpt"))
    atomic_save(state, path)  # a kill while writing leaves any earlier export whole
    print(f"wrote the {network} backbone of {ckpt} to {path} ({len(state)} tensors)")
    return path


@reports_user_errors("minc-lightning-export")
def main() -> None:
    from jsonargparse import CLI

    CLI(export, as_positional=False)


if __name__ == "__main__":
    main()
