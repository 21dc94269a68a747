"""Augmentation on the device: the loader reads, decodes and crops; the rest runs batched.

``augment_on="device"`` splits each BYOL view in two:

* in the loader (``LoaderViews``), per image: every random parameter of every view is drawn
  (under the seeded generators of ``sampling.SeededDataset``, so a resumed run draws the same),
  and images of varying size are decoded, at reduced scale where the crops allow, and cropped
  as uint8: the two global views to ``image_size``, multi-crop's local views to their own size.
  Fixed-size datasets yield the image once, uncropped;
* on the device (``augment_batch``), per batch: the crop of fixed-size images, horizontal flip,
  colour jitter in each sample's own order, grayscale, Gaussian blur, solarisation and
  normalisation, each with the sample's parameters.

Every parameter comes from lightly's view transforms as the loader path builds them
(``ViewRecipe.of`` reads their torchvision steps), so the two paths share one source of truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import kornia.color
import kornia.enhance
import kornia.filters
import torch
import torchvision.transforms as T1
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from lightly.transforms import GaussianBlur, RandomRotate, RandomSolarization
from lightly.transforms import ToTensor as LightlyToTensor
from PIL import Image
from torch import Tensor

from minc_lightning.data.images import to_rgb
from minc_lightning.errors import BadInput

__all__ = ["DeviceViews", "LoaderViews", "ViewRecipe", "augment_batch", "draw_params"]

# The layout of one view's parameters (one row of ``DeviceViews.params``).
TOP, LEFT, HEIGHT, WIDTH = 0, 1, 2, 3  # crop box in the decoded image's pixels
FLIP, JITTER = 4, 5
ORDER = slice(6, 10)  # the permutation of (brightness, contrast, saturation, hue)
FACTORS = slice(10, 14)  # their factors
GRAY, BLUR, SIGMA, SOLARIZE = 14, 15, 16, 17
N_PARAMS = 18
NO_LOCAL = torch.empty(0, dtype=torch.uint8)  # DeviceViews.local without local views


class DeviceViews(NamedTuple):
    """A sample (or, collated, a batch) for the device: ``pixels`` uint8 (V, C, H, W), with V = 2
    cropped global views or V = 1 uncropped image; ``params`` (2 + N, N_PARAMS), one row per
    view, the global views first; ``local`` uint8 (N, C, h, w), the N cropped local views of
    multi-crop, or an empty (0,) tensor when there are none or the device crops them."""

    pixels: Tensor
    params: Tensor
    local: Tensor


def steps_of(view: Any) -> dict[str, Any]:
    """The steps of a lightly view transform that the device path does, by kind; a step that
    never happens (p = 0) is passed over, any other step is refused, by name."""
    found: dict[str, Any] = {}
    for step in getattr(view, "transform", view).transforms:
        if isinstance(step, T.RandomResizedCrop):
            found["crop"] = step
        elif isinstance(step, T.RandomHorizontalFlip):
            found["flip"] = step.p
        elif isinstance(step, T.RandomApply) and isinstance(step.transforms[0], T.ColorJitter):
            found["jitter"] = step
        elif isinstance(step, T.RandomGrayscale):
            found["gray"] = step.p
        elif isinstance(step, GaussianBlur):
            found["blur"] = step
        elif isinstance(step, RandomSolarization):
            found["solarize"] = step
        elif isinstance(step, T.RandomVerticalFlip) and step.p == 0:
            continue
        elif isinstance(step, RandomRotate) and step.prob == 0:
            continue
        elif not isinstance(step, (LightlyToTensor, T.PILToTensor, T.Normalize)):
            raise BadInput(
                f"augment_on='device' does not do the step {step!r} of {type(view).__name__}; "
                "use augment_on='loader' for this augmentation"
            )
    return found


@dataclass(frozen=True)
class ViewRecipe:
    """One view's augmentation: the values of lightly's view transform, read from its steps."""

    size: tuple[int, int]
    scale: tuple[float, float]
    ratio: tuple[float, float]
    flip: float
    jitter: float
    ranges: tuple[tuple[float, float] | None, ...]  # brightness, contrast, saturation, hue
    gray: float
    blur: float
    sigmas: tuple[float, float]
    solarize: float
    threshold: float  # on the [0, 255] scale, as PIL's solarize

    @classmethod
    def of(cls, view: Any) -> ViewRecipe:
        """The recipe of a lightly view transform (e.g. ``BYOLView1Transform``) or of its
        torchvision ``Compose``. Steps the device path does not do are refused, by name."""
        found = steps_of(view)
        if "crop" not in found:
            raise BadInput(f"{type(view).__name__} has no RandomResizedCrop to read")
        # a step the view does not have is one that never happens
        crop, jitter = found["crop"], found.get("jitter")
        cj = jitter.transforms[0] if jitter is not None else None
        blur, solarize = found.get("blur"), found.get("solarize")
        return cls(
            size=tuple(crop.size),
            scale=tuple(crop.scale),
            ratio=tuple(crop.ratio),
            flip=found.get("flip", 0.0),
            jitter=jitter.p if jitter is not None else 0.0,
            ranges=(cj.brightness, cj.contrast, cj.saturation, cj.hue) if cj else (None,) * 4,
            gray=found.get("gray", 0.0),
            blur=blur.prob if blur is not None else 0.0,
            sigmas=tuple(blur.sigmas) if blur is not None else (0.0, 0.0),
            solarize=solarize.prob if solarize is not None else 0.0,
            threshold=float(solarize.threshold) if solarize is not None else 0.0,
        )

    @property
    def kernel_size(self) -> int:
        """lightly blurs with PIL's radius = sigma and no kernel size (PIL's blur reaches as far
        as the Gaussian does); a true Gaussian truncated at 3 sigma_max is the same to 0.3%."""
        return max(2 * math.ceil(3 * self.sigmas[1]) + 1, 3)


def draw_params(recipe: ViewRecipe, height: int, width: int) -> Tensor:
    """One view's random parameters for an image of ``height`` × ``width``, drawn from torch's
    global generator with torchvision's own samplers (the loader path's distributions)."""
    p = torch.zeros(N_PARAMS)
    # get_params only reads the image's dimensions: a view of one number stands for the image
    stand_in = torch.empty(1, 1, 1).expand(1, height, width)
    p[TOP], p[LEFT], p[HEIGHT], p[WIDTH] = T1.RandomResizedCrop.get_params(
        stand_in, list(recipe.scale), list(recipe.ratio)
    )
    u = torch.rand(5)
    p[FLIP] = u[0] < recipe.flip
    p[JITTER] = u[1] < recipe.jitter
    order, *factors = T1.ColorJitter.get_params(*recipe.ranges)
    p[ORDER] = order.float()
    neutral = (1.0, 1.0, 1.0, 0.0)  # a range of None: that operation leaves the image as it is
    p[FACTORS] = torch.tensor(
        [n if f is None else f for f, n in zip(factors, neutral, strict=True)]
    )
    p[GRAY] = u[2] < recipe.gray
    p[BLUR] = u[3] < recipe.blur
    p[SIGMA] = torch.empty(()).uniform_(*recipe.sigmas)
    p[SOLARIZE] = u[4] < recipe.solarize
    return p


def displayed_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the image as shown, i.e. after its EXIF rotation (read lazily)."""
    orientation = image.getexif().get(0x0112, 1)
    return image.size[::-1] if orientation in (5, 6, 7, 8) else image.size


class LoaderViews:
    """The loader's part of ``augment_on="device"``: an image in, ``DeviceViews`` out.

    Args:
        recipes: every view's recipe: the two global views, then any local views (one size).
        crop: crop and resize each view here (images of varying size); else yield the image once
            and leave the crop to the device (fixed-size datasets).
    """

    def __init__(self, recipes: Sequence[ViewRecipe], crop: bool) -> None:
        self.recipes = tuple(recipes)
        self.crop = crop

    def __call__(self, image: Image.Image) -> DeviceViews:
        params = self.draw(*image.size)
        return self.finish(image, params)

    def draw(self, width: int, height: int) -> Tensor:
        return torch.stack([draw_params(r, height, width) for r in self.recipes])

    def finish(self, image: Image.Image, params: Tensor, shrink: float = 1.0) -> DeviceViews:
        """The views' pixels from the decoded ``image``, whose sides are ``shrink`` times those
        of the image the crop boxes in ``params`` were drawn on."""
        pixels = TF.pil_to_tensor(image)
        if not self.crop:
            return DeviceViews(pixels.unsqueeze(0), params, NO_LOCAL)
        views = []
        rows, columns = pixels.shape[-2:]
        for recipe, p in zip(self.recipes, params, strict=True):
            top, left, height, width = (round(float(v) * shrink) for v in p[:4])
            top, left = min(top, rows - 1), min(left, columns - 1)  # inside the reduced image
            height, width = min(height, rows - top), min(width, columns - left)
            # torchvision's uint8 resize: PIL's bilinear result (tested), in a third of the time
            crop = TF.resized_crop(pixels, top, left, height, width, list(recipe.size))
            views.append(crop)
        local = torch.stack(views[2:]) if len(views) > 2 else NO_LOCAL
        return DeviceViews(torch.stack(views[:2]), params, local)

    def from_file(self, image: Image.Image) -> DeviceViews:
        """From a lazily opened image file: the crops are drawn first, so that a JPEG whose
        crops are all at least ``reduce`` times larger than the output decodes ``reduce`` times
        smaller (PIL's draft mode, as fast JPEG loaders do)."""
        width, height = displayed_size(image)
        params = self.draw(width, height)
        if self.crop and image.format == "JPEG":
            # the largest power-of-two reduction that leaves every crop at least output-sized
            room = min(
                min(float(p[HEIGHT]) / r.size[0], float(p[WIDTH]) / r.size[1])
                for p, r in zip(params, self.recipes, strict=True)
            )
            reduce = max(k for k in (1, 2, 4, 8) if k <= max(room, 1))
            if reduce > 1:
                image.draft(image.mode, (image.size[0] // reduce, image.size[1] // reduce))
        image = to_rgb(image)
        return self.finish(image, params, shrink=image.size[0] / width)


# --- the device's part -------------------------------------------------------------------------
def crop(images: Tensor, params: Tensor, size: tuple[int, int]) -> Tensor:
    """Each image's random resized crop, as torchvision's ``resized_crop`` (bilinear,
    antialiased) makes it. Crops no larger than the output (always so when a fixed-size
    dataset keeps its size) are upsampled, where antialiasing does nothing: one batched
    bilinear sampling does them all. Larger crops are resized one by one."""
    boxes = params[:, :4].round()
    out_h, out_w = size
    shrinks = (boxes[:, HEIGHT] > out_h) | (boxes[:, WIDTH] > out_w)
    out = upsample_crops(images, boxes, size)
    for i in shrinks.nonzero().flatten().tolist():
        top, left, h, w = (int(v) for v in boxes[i].tolist())
        out[i] = TF.resized_crop(images[i], top, left, h, w, list(size), antialias=True)
    return out


def upsample_crops(images: Tensor, boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of each box (top, left, height, width) to ``size`` by sampling the
    whole image at the points ``interpolate`` samples inside the crop (align_corners=False,
    clamped to the crop's edge pixels), so no pixel outside a box contributes."""
    rows, columns = images.shape[-2:]

    def points(start: Tensor, extent: Tensor, out: int, full: int) -> Tensor:
        centres = torch.arange(out, device=images.device, dtype=images.dtype) + 0.5
        source = centres * (extent / out).unsqueeze(1) - 0.5  # (B, out), in the crop's pixels
        source = torch.minimum(source.clamp(min=0), (extent - 1).unsqueeze(1))
        return (2 * (start.unsqueeze(1) + source) + 1) / full - 1  # grid_sample's coordinates

    ys = points(boxes[:, TOP], boxes[:, HEIGHT], size[0], rows)
    xs = points(boxes[:, LEFT], boxes[:, WIDTH], size[1], columns)
    grid = torch.stack(torch.broadcast_tensors(xs[:, None, :], ys[:, :, None]), dim=-1)
    return torch.nn.functional.grid_sample(
        images, grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def flip(images: Tensor, chosen: Tensor) -> Tensor:
    return torch.where(chosen.view(-1, 1, 1, 1), images.flip(-1), images)


# brightness, contrast, saturation, hue: kornia's functions equal torchvision's (tests/test_augment)
JITTER_OPS = (
    kornia.enhance.adjust_brightness_accumulative,
    kornia.enhance.adjust_contrast_with_mean_subtraction,
    kornia.enhance.adjust_saturation_with_gray_subtraction,
    lambda x, f: kornia.enhance.adjust_hue(x, f * 2 * math.pi),  # kornia's hue is in radians
)


def jitter(images: Tensor, chosen: Tensor, order: Tensor, factors: Tensor) -> Tensor:
    """Colour jitter with each sample's own order of the four operations. Written here because
    kornia's ColorJitter draws one order per batch; torchvision's draws one per image."""
    out = images.clone()
    for slot in range(4):
        for op, adjust in enumerate(JITTER_OPS):
            rows = (chosen & (order[:, slot] == op)).nonzero().squeeze(1)
            if len(rows):
                out[rows] = adjust(out[rows], factors[rows, op]).clamp(0, 1)
    return out


def grayscale(images: Tensor, chosen: Tensor) -> Tensor:
    gray = kornia.color.rgb_to_grayscale(images).expand_as(images)
    return torch.where(chosen.view(-1, 1, 1, 1), gray, images)


def blur(images: Tensor, chosen: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    rows = chosen.nonzero().squeeze(1)
    if not len(rows):
        return images
    out = images.clone()
    sigmas = sigma[rows].unsqueeze(1).expand(-1, 2)
    out[rows] = kornia.filters.gaussian_blur2d(images[rows], kernel_size, sigmas)
    return out


def solarize(images: Tensor, chosen: Tensor, threshold: float) -> Tensor:
    """PIL inverts the uint8 values >= threshold; in [0, 1] that is >= threshold / 255."""
    inverted = chosen.view(-1, 1, 1, 1) & (images >= threshold / 255)
    return torch.where(inverted, 1 - images, images)


def augment_view(images: Tensor, params: Tensor, recipe: ViewRecipe, cropped: bool) -> Tensor:
    """One view of a batch: float images in [0, 1] (B, C, H, W), params (B, N_PARAMS)."""
    on = params > 0.5  # the yes/no columns as booleans
    if not cropped:
        images = crop(images, params, recipe.size)
    images = flip(images, on[:, FLIP])
    images = jitter(images, on[:, JITTER], params[:, ORDER].long(), params[:, FACTORS])
    images = grayscale(images, on[:, GRAY])
    images = blur(images, on[:, BLUR], params[:, SIGMA], recipe.kernel_size)
    return solarize(images, on[:, SOLARIZE], recipe.threshold)


def augment_batch(batch: DeviceViews, recipes: Sequence[ViewRecipe]) -> list[Tensor]:
    """The views of a collated batch (global views first), as float images in [0, 1] on the
    batch's device."""
    pixels = batch.pixels.float().div_(255)
    cropped = pixels.shape[1] > 1  # else one uncropped image that every view is cropped from
    local = batch.local.float().div_(255) if cropped and batch.local.ndim == 5 else None
    views = []
    for i, recipe in enumerate(recipes):
        if not cropped:
            source = pixels[:, 0]
        else:
            source = pixels[:, i] if i < 2 else local[:, i - 2]
        views.append(augment_view(source, batch.params[:, i], recipe, cropped))
    return views


def normalized(images: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """Images (B, C, H, W), uint8 or float in [0, 1], as float32 (x - shift) / scale, with shift
    and scale (1, C, 1, 1) the dataset's mean and std times 255: one pass."""
    shift, scale = shift.to(images.device), scale.to(images.device)
    images = images.float() if images.dtype == torch.uint8 else images.mul(255)
    return images.sub_(shift).div_(scale)


def finish_batch(batch: Any, recipes: Sequence[ViewRecipe], shift: Tensor, scale: Tensor) -> Any:
    """A training batch on its device: the views made from ``DeviceViews`` (``recipes``) or the
    loader's uint8 views, normalised; anything else (float validation batches) as it is."""
    views = batch[0] if isinstance(batch, (list, tuple)) and batch else None
    if isinstance(views, DeviceViews):
        made = augment_batch(views, recipes)
        return type(batch)([[normalized(v, shift, scale) for v in made], *batch[1:]])
    if isinstance(views, (list, tuple)) and all(
        isinstance(v, Tensor) and v.dtype == torch.uint8 for v in views
    ):
        views = type(views)(normalized(v, shift, scale) for v in views)
        return type(batch)([views, *batch[1:]])
    return batch
