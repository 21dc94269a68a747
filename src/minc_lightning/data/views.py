"""The views a training image is made into, as lightly's transforms build them, and the eval
transform: BYOL's two asymmetric views with a dataset preset's settings, multi-crop's local views,
their uint8 form for the loader, and the checks on a user's own augmentation. ``augment.py``
applies the same views to whole batches on the device (``ViewRecipe.of`` reads them)."""

from __future__ import annotations

from typing import Any

import torchvision.transforms as T
import torchvision.transforms.v2 as T2
from lightly.transforms import BYOLView1Transform, BYOLView2Transform
from lightly.transforms import ToTensor as LightlyToTensor
from lightly.transforms.multi_view_transform import MultiViewTransform

from minc_lightning.data.augment import ViewRecipe
from minc_lightning.data.presets import Preset
from minc_lightning.errors import BadInput


def uint8_output(view: BYOLView1Transform | BYOLView2Transform) -> T.Compose:
    """lightly's view transform, ending in a uint8 tensor instead of a float one (the same
    augmentations, the same random draws): a quarter of the bytes to collate, pin and copy, and
    no float image per sample. Reads the view's public torchvision ``Compose``; lightly has no
    option for integer output (the public API that is missing)."""
    steps = view.transform.transforms
    if not isinstance(steps[-1], LightlyToTensor):  # lightly changed its transform: fail loudly
        raise RuntimeError(f"expected lightly's view transform to end in ToTensor: {steps}")
    return T.Compose([*steps[:-1], T.PILToTensor()])


def default_views(
    preset: Preset,
    image_size: int,
    local_views: int = 0,
    local_size: int | None = None,
    local_scale: tuple[float, float] | None = None,
) -> tuple[BYOLView1Transform | BYOLView2Transform, ...]:
    """BYOL's two asymmetric views with the preset's settings and lightly's other defaults,
    then ``local_views`` local views (multi-crop): BYOL's second view's colour jitter, blur and
    solarisation with their own crop, ``local_size`` px over ``local_scale`` of the image (None:
    the preset's)."""
    common = dict(
        cj_strength=preset.cj_strength,
        normalize=None,  # on whole batches, on the device: on_after_batch_transfer
    )
    blur, solarize = preset.gaussian_blur, preset.solarization_prob
    first = common | {"gaussian_blur": blur[0], "solarization_prob": solarize[0]}
    second = common | {"gaussian_blur": blur[1], "solarization_prob": solarize[1]}
    view_1 = BYOLView1Transform(**first, input_size=image_size, min_scale=preset.min_scale)
    view_2 = BYOLView2Transform(**second, input_size=image_size, min_scale=preset.min_scale)
    if not local_views:
        return view_1, view_2
    size = local_size or local_size_for(preset, image_size)
    scale = tuple(local_scale or preset.local_scale)
    local = BYOLView2Transform(**second, input_size=size, min_scale=scale[0])
    local.transform = crop_over(local.transform, size, scale)
    return (view_1, view_2, *[local] * local_views)


def crop_over(view: T.Compose, size: int, scale: tuple[float, float]) -> T.Compose:
    """``view`` with its first step, a random resized crop, cropping ``size`` px over ``scale``:
    lightly's views crop over (min_scale, 1), with no upper bound to set."""
    steps = view.transforms
    if not hasattr(steps[0], "scale"):  # lightly changed its transform: fail loudly
        raise RuntimeError(f"expected lightly's view transform to start with its crop: {steps}")
    return type(view)([type(steps[0])(size, scale=scale), *steps[1:]])


def local_size_for(preset: Preset, image_size: int) -> int:
    """The preset's local size at ``image_size``, in the preset's ratio to its image size
    (ImageNet's 96/224 where the preset gives none)."""
    side = preset.local_size or preset.image_size * 96 / 224
    return max(1, round(side * image_size / preset.image_size))


def uint8_views(views: tuple[BYOLView1Transform | BYOLView2Transform, ...]) -> MultiViewTransform:
    """The loader path's transform: ``views`` (``default_views``'), each yielding uint8."""
    return MultiViewTransform([uint8_output(v) for v in views])


def crop_size(view: Any) -> tuple[int, int] | None:
    """The output size of a view transform's random resized crop, where it has one to read."""
    steps = getattr(getattr(view, "transform", view), "transforms", ())
    sizes = [
        tuple(s.size) for s in steps if isinstance(s, (T.RandomResizedCrop, T2.RandomResizedCrop))
    ]
    return sizes[0] if sizes else None


def check_view_sizes(views: list[Any], local_views: int) -> None:
    """A user's augmentation has 2 + ``local_views`` views: two global views of one size, then
    the local views, of one size."""
    if len(views) != 2 + local_views:
        raise BadInput(
            f"MINCDataModule: the augmentation makes {len(views)} views, but local_views is "
            f"{local_views}: a training batch is two global views and local_views local ones; "
            f"set data.local_views={max(len(views) - 2, 0)}"
            + (" (the augmentation needs at least two views)" if len(views) < 2 else "")
        )
    sizes = [crop_size(v) for v in views]
    if None in sizes:
        return  # sizes not readable here; MINCModule checks the batch's shapes
    if sizes[0] != sizes[1] or len(set(sizes[2:])) > 1:
        raise BadInput(
            f"MINCDataModule: the augmentation's views crop to {sizes}; the first two (the "
            "global views) must share one size, and the local views after them another"
        )


def recipes_of(
    views: list[Any] | None, preset: Preset, sizes: tuple[int, int, int, tuple[float, float]]
) -> tuple[ViewRecipe, ...]:
    """Each view's augmentation as ``augment_on="device"`` applies it, read from a user's
    ``views`` or (None) the preset's ``default_views`` at ``sizes``."""
    return tuple(ViewRecipe.of(v) for v in views or default_views(preset, *sizes))


def eval_transform(preset: Preset, image_size: int, eval_resize: int | None) -> T.Compose:
    """Resize, centre crop and normalise; the resize keeps the preset's ratio to the crop."""
    resize = eval_resize or round(image_size * preset.eval_resize / preset.image_size)
    return T.Compose(
        [T.Resize(resize), T.CenterCrop(image_size), T.ToTensor(), T.Normalize(*preset.stats)]
    )
