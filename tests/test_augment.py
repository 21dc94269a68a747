"""augment_on="device": each batched operation equals torchvision's, the parameters follow the
loader path's distributions, and the data path keeps its promises (different views, different
processes, any image mode and size)."""

import inspect
import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from dataset_files import write_cifar, write_fashion_mnist, write_imagenet, write_stl10
from lightly.transforms import BYOLView1Transform
from PIL import Image

from minc_lightning.data import PRESETS, MINCDataModule, default_views, sampling
from minc_lightning.data import augment as A

TESTS = Path(__file__).parent


def recipes(dataset: str = "imagenet", size: int | None = None) -> tuple[A.ViewRecipe, ...]:
    preset = PRESETS[dataset]
    return tuple(A.ViewRecipe.of(v) for v in default_views(preset, size or preset.image_size))


def images(n: int = 6, h: int = 20, w: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def params(n: int, seed: int = 0) -> torch.Tensor:
    """n parameter rows drawn from the ImageNet view 1 recipe for a 24×24 image."""
    torch.manual_seed(seed)
    return torch.stack([A.draw_params(recipes()[0], 24, 24) for _ in range(n)])


# --- each operation equals torchvision's, per image ------------------------------------------
@pytest.mark.parametrize("size", [(24, 24), (16, 16)])  # upsampled crops only; mixed
def test_crops_equal_torchvision(size):
    x, p = images(32, 24, 24), params(32)
    cropped = A.crop(x, p, size)
    for xi, pi, ci in zip(x, p, cropped, strict=True):
        t, left, h, w = (int(v) for v in pi[:4])
        expected = TF.resized_crop(xi, t, left, h, w, list(size), antialias=True)
        torch.testing.assert_close(ci, expected, atol=1e-5, rtol=0)


def test_flip_grayscale_solarize_equal_torchvision():
    x = images()
    chosen = torch.tensor([True, False, True, False, True, True])
    for out, op in (
        (A.flip(x, chosen), TF.horizontal_flip),
        (A.grayscale(x, chosen), lambda xi: TF.rgb_to_grayscale(xi, num_output_channels=3)),
        (A.solarize(x, chosen, 128.0), lambda xi: TF.solarize(xi, 128 / 255)),
    ):
        for xi, ci, oi in zip(x, chosen, out, strict=True):
            expected = op(xi) if ci else xi
            # kornia's grayscale weights are 0.299 where torchvision's are 0.2989: up to
            # 1.0e-4 apart in [0, 1] (1/40 of a uint8 level), by float rounding on some versions
            torch.testing.assert_close(oi, expected, atol=2e-4, rtol=0)


def test_blur_equals_torchvision_with_each_sigma():
    x = images()
    sigma = torch.tensor([0.1, 0.5, 1.0, 1.5, 2.0, 0.3])
    chosen = torch.tensor([True, True, False, True, True, True])
    k = recipes()[0].kernel_size
    out = A.blur(x, chosen, sigma, k)
    for xi, si, ci, oi in zip(x, sigma, chosen, out, strict=True):
        expected = TF.gaussian_blur(xi, [k, k], [float(si)] * 2) if ci else xi
        torch.testing.assert_close(oi, expected, atol=1e-6, rtol=0)


def test_jitter_applies_each_samples_own_order_as_torchvision_does():
    """Every one of the 24 orders, each sample its own: torchvision's four functions in that
    order, per image. Orders are what kornia's ColorJitter would get wrong (one per batch)."""
    orders = torch.tensor(list(itertools.permutations(range(4))))
    n = len(orders)
    x = images(n)
    g = torch.Generator().manual_seed(1)
    factors = torch.stack(
        [
            torch.empty(n).uniform_(0.6, 1.4, generator=g),
            torch.empty(n).uniform_(0.6, 1.4, generator=g),
            torch.empty(n).uniform_(0.8, 1.2, generator=g),
            torch.empty(n).uniform_(-0.1, 0.1, generator=g),
        ],
        dim=1,
    )
    chosen = torch.arange(n) % 5 != 0
    out = A.jitter(x, chosen, orders, factors)
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for i in range(n):
        expected = x[i]
        if chosen[i]:
            for op in orders[i]:
                expected = ops[op](expected, float(factors[i, op]))
        # kornia's grayscale weights (contrast, saturation) differ from torchvision's by 1e-4
        torch.testing.assert_close(out[i], expected, atol=2e-4, rtol=0)
    # the order matters: applying one fixed order instead changes the images
    fixed = A.jitter(x, chosen, orders[:1].expand(n, 4), factors)
    assert (fixed - out).abs().amax(dim=(1, 2, 3))[chosen].max() > 1e-3


# --- the parameters are the loader path's ----------------------------------------------------
def test_recipes_are_lightlys_view_values_and_the_presets():
    defaults = {k: v.default for k, v in inspect.signature(BYOLView1Transform).parameters.items()}
    for dataset in ("imagenet", "cifar10", "fashion_mnist"):
        preset = PRESETS[dataset]
        view_1, view_2 = recipes(dataset)
        s = preset.cj_strength
        bright = s * defaults["cj_bright"]
        assert view_1.ranges[0] == pytest.approx((1 - bright, 1 + bright))
        assert view_1.ranges[3] == pytest.approx((-s * defaults["cj_hue"], s * defaults["cj_hue"]))
        assert view_1.scale == (preset.min_scale, 1.0)
        assert view_1.size == (preset.image_size,) * 2
        assert (view_1.blur, view_2.blur) == preset.gaussian_blur
        assert (view_1.solarize, view_2.solarize) == preset.solarization_prob
        assert view_1.gray == defaults["random_gray_scale"]
        assert view_1.jitter == defaults["cj_prob"] and view_1.flip == defaults["hf_prob"]
        assert view_1.sigmas == tuple(defaults["sigmas"])


def test_other_lightly_views_are_read_with_their_absent_steps_as_never():
    from lightly.transforms import SimCLRViewTransform

    recipe = A.ViewRecipe.of(SimCLRViewTransform(input_size=32, gaussian_blur=0.5))
    assert recipe.blur == 0.5 and recipe.solarize == 0.0 and recipe.size == (32, 32)
    torch.manual_seed(0)
    drawn = torch.stack([A.draw_params(recipe, 40, 40) for _ in range(200)])
    assert not drawn[:, A.SOLARIZE].any() and drawn[:, A.BLUR].any()


def test_steps_the_device_does_not_do_are_refused_by_name():
    with pytest.raises(ValueError, match="RandomVerticalFlip"):
        A.ViewRecipe.of(BYOLView1Transform(vf_prob=0.5))
    with pytest.raises(ValueError, match="augment_on.*'gpu'"):
        MINCDataModule("fashion_mnist", augment_on="gpu")


def test_10k_draws_follow_the_recipes_distributions():
    n = 10_000
    torch.manual_seed(0)
    views = A.LoaderViews(recipes("imagenet", 32), crop=True)
    drawn = torch.stack([views.draw(500, 375) for _ in range(n)])  # (n, 2, N_PARAMS)

    def rate_matches(values: torch.Tensor, p: float) -> bool:
        se = math.sqrt(max(p * (1 - p), 1e-12) / n)
        return abs(values.float().mean().item() - p) <= 4 * se + 1e-9

    for v, recipe in enumerate(views.recipes):
        d = drawn[:, v]
        for column, p in (
            (A.FLIP, recipe.flip),
            (A.JITTER, recipe.jitter),
            (A.GRAY, recipe.gray),
            (A.BLUR, recipe.blur),
            (A.SOLARIZE, recipe.solarize),
        ):
            assert rate_matches(d[:, column], p), (v, column, p, d[:, column].mean())
        for j, (low, high) in enumerate(recipe.ranges):
            f = d[:, A.FACTORS][:, j]
            assert low <= f.min() and f.max() <= high
            width = high - low  # uniform: mean in the middle, sd = width / sqrt(12)
            assert abs(f.mean() - (low + high) / 2) <= 4 * width / math.sqrt(12 * n)
            assert f.std() == pytest.approx(width / math.sqrt(12), rel=0.05)
        s = d[:, A.SIGMA]
        assert recipe.sigmas[0] <= s.min() and s.max() <= recipe.sigmas[1]
        orders = [tuple(o) for o in d[:, A.ORDER].long().tolist()]
        counts = np.array([orders.count(o) for o in itertools.permutations(range(4))])
        assert len(set(orders)) == 24
        assert np.abs(counts - n / 24).max() <= 4 * math.sqrt(n / 24)
        area = d[:, A.HEIGHT] * d[:, A.WIDTH] / (500 * 375)
        aspect = d[:, A.WIDTH] / d[:, A.HEIGHT]
        assert recipe.scale[0] - 0.01 <= area.min() and area.max() <= 1.0
        assert recipe.ratio[0] - 0.02 <= aspect.min() and aspect.max() <= recipe.ratio[1] + 0.02


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.sort(np.concatenate([a, b]))
    cdf = lambda x: np.searchsorted(np.sort(x), grid, side="right") / len(x)  # noqa: E731
    return float(np.abs(cdf(a) - cdf(b)).max())


def test_crop_boxes_match_the_loader_paths_crop_step():
    """The loader path's own RandomResizedCrop step (taken from lightly's view) crops an image
    whose pixels are their coordinates; the boxes it chose have the distribution of ours."""
    n, width, height, size = 3000, 600, 450, 32
    view = default_views(PRESETS["imagenet"], size)[0]
    step = view.transform.transforms[0]
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    coordinates = torch.stack([ys, xs]).float()
    torch.manual_seed(0)
    theirs = []
    for _ in range(n):  # the pixel centres span the box less one output pixel
        out = step(coordinates)
        extent = out.amax(dim=(1, 2)) - out.amin(dim=(1, 2))
        theirs.append(float(extent.prod()) * (size / (size - 1)) ** 2)
    torch.manual_seed(1)
    recipe = A.ViewRecipe.of(view)
    drawn = [A.draw_params(recipe, height, width) for _ in range(n)]
    ours = [float(p[A.HEIGHT] * p[A.WIDTH]) for p in drawn]
    distance = ks_distance(np.array(theirs), np.array(ours))
    assert distance < 1.63 * math.sqrt(2 / n) + 0.02  # KS at 1%, plus the read-back's pixel error


def test_grayscale_rate_matches_the_loader_paths_transform():
    """Observed on lightly's own view transform: a colourful image comes out gray as often as
    the device path draws gray."""
    n = 3000
    view = default_views(PRESETS["cifar10"], 8)[0]
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    torch.manual_seed(0)
    gray = 0
    for _ in range(n):
        out = np.asarray(view.transform(image), dtype=np.float32)
        gray += bool(
            np.allclose(out[0], out[1], atol=1e-6) and np.allclose(out[1], out[2], atol=1e-6)
        )
    p = A.ViewRecipe.of(view).gray
    assert abs(gray / n - p) <= 4 * math.sqrt(p * (1 - p) / n)


# --- the data path in device mode -------------------------------------------------------------
def device_module(dataset: str, root, **kwargs) -> MINCDataModule:
    args = dict(batch_size=4, num_workers=0, download=False, augment_on="device") | kwargs
    dm = MINCDataModule(dataset, str(root), **args)
    dm.setup("fit")
    return dm


def test_the_two_views_of_each_image_differ_and_are_normalised(tmp_path):
    write_fashion_mnist(tmp_path, n_train=16)
    dm = device_module("fashion_mnist", tmp_path, batch_size=16)
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch[0], A.DeviceViews) and batch[0].pixels.shape == (16, 1, 3, 28, 28)
    (v1, v2), labels = dm.on_after_batch_transfer(batch, 0)
    assert v1.shape == v2.shape == (16, 3, 28, 28) and v1.dtype == torch.float32
    assert labels.tolist() == batch[1].tolist()
    assert (v1 - v2).abs().amax(dim=(1, 2, 3)).min() > 0.01
    low = (0 - dm.shift / 255) / (dm.scale / 255)  # normalised [0, 1] spans [low, high]
    high = (1 - dm.shift / 255) / (dm.scale / 255)
    assert (v1 >= low - 1e-5).all() and (v1 <= high + 1e-5).all()


def first_batch_params(tmp_path, rank: int, world: int, monkeypatch) -> torch.Tensor:
    monkeypatch.setattr(sampling, "rank", lambda: rank)
    monkeypatch.setattr(sampling, "world_size", lambda: world)
    dm = device_module("fashion_mnist", tmp_path, batch_size=8)
    return next(iter(dm.train_dataloader()))[0].params


def test_processes_under_ddp_draw_different_augmentations(tmp_path, monkeypatch):
    write_fashion_mnist(tmp_path, n_train=32)
    rank_0 = first_batch_params(tmp_path, 0, 2, monkeypatch)
    rank_1 = first_batch_params(tmp_path, 1, 2, monkeypatch)
    again = first_batch_params(tmp_path, 1, 2, monkeypatch)
    assert torch.equal(rank_1, again)  # a function of (seed, epoch, position): reproducible
    assert not torch.equal(rank_0, rank_1)
    # no sample of one process repeats any sample's parameters of the other
    a, b = rank_0.flatten(1), rank_1.flatten(1)
    assert not (a[:, None] == b[None]).all(-1).any()


@pytest.mark.slow
def test_processes_under_lightnings_ddp_draw_different_augmentations(tmp_path):
    """Two gloo processes launched by Lightning: the first batches' parameters share no row."""
    write_fashion_mnist(tmp_path / "data", n_train=16)
    env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    command = [sys.executable, str(TESTS / "ddp_augment_script.py"), str(tmp_path / "data")]
    result = subprocess.run(
        [*command, str(tmp_path)], capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank_0, rank_1 = (torch.load(tmp_path / f"rank{r}.pt").flatten(1) for r in (0, 1))
    assert rank_0.shape == rank_1.shape == (4, 2 * A.N_PARAMS)
    assert not (rank_0[:, None] == rank_1[None]).all(-1).any()


def write_mixed_folder(root) -> None:
    """Images of many sizes and modes, as real folders hold them."""
    rng = np.random.default_rng(0)
    pixels = lambda h, w, c: rng.integers(0, 256, (h, w, c), dtype=np.uint8)  # noqa: E731
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir(parents=True)
    Image.fromarray(pixels(30, 41, 1)[..., 0], "L").save(root / "a" / "gray.png")
    Image.fromarray(pixels(64, 50, 4), "RGBA").save(root / "a" / "alpha.png")
    Image.fromarray(pixels(70, 52, 3)).convert("CMYK").save(root / "a" / "cmyk.jpg")
    Image.fromarray(pixels(33, 90, 3)).convert("P").save(root / "b" / "palette.png")
    Image.fromarray(pixels(375, 500, 3)).save(root / "b" / "large.jpg", quality=90)
    Image.fromarray(pixels(20, 20, 3)).save(root / "b" / "small.jpg")


def test_mixed_sizes_and_modes_go_through_the_device_path(tmp_path):
    write_mixed_folder(tmp_path)
    dm = device_module("folder", tmp_path, batch_size=6, image_size=24)
    batch = next(iter(dm.train_dataloader()))
    assert batch[0].pixels.shape == (6, 2, 3, 24, 24)  # cropped in the loader
    (v1, v2), labels = dm.on_after_batch_transfer(batch, 0)
    assert v1.shape == v2.shape == (6, 3, 24, 24) and torch.isfinite(v1).all()
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize(
    "name, write",
    [
        ("cifar10", lambda root: write_cifar(root, "cifar10")),
        ("stl10", write_stl10),
        ("imagenet", lambda root: write_imagenet(root, per_class=2)),
    ],
)
def test_each_dataset_format_goes_through_the_device_path(tmp_path, name, write):
    write(tmp_path)
    dm = device_module(name, tmp_path, image_size=16)
    (v1, v2), _ = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert v1.shape == v2.shape == (4, 3, 16, 16) and v1.dtype == torch.float32


def test_loader_crop_matches_pils_bilinear_resize():
    """The device mode's loader crops (torchvision's uint8 resize) show what the loader mode's
    crops (torchvision's resized_crop of the PIL image: PIL's bilinear resize) show."""
    pixels = np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    views = A.LoaderViews(recipes("imagenet"), crop=True)
    torch.manual_seed(0)
    for _ in range(5):
        made = views(image)
        for view, p in zip(made.pixels, made.params, strict=True):
            top, left, h, w = (int(v) for v in p[:4])
            pil = TF.resized_crop(image, top, left, h, w, [224, 224])  # the loader path's crop
            difference = (view.float() - TF.pil_to_tensor(pil).float()).abs()
            assert difference.mean() < 0.5 and difference.max() <= 3  # grey levels of 255


def test_reduced_decode_crops_the_same_region(tmp_path):
    """A JPEG whose crops are large enough decodes at 1/2 to 1/8 scale; the crops show what a
    full decode's crops show (the boxes are scaled with the image)."""
    y, x = np.mgrid[0:480, 0:640]
    smooth = np.stack([x * 255 / 640, y * 255 / 480, (x + y) * 255 / 1120], -1).astype(np.uint8)
    path = tmp_path / "smooth.jpg"
    Image.fromarray(smooth).save(path, quality=95)
    views = A.LoaderViews(recipes("imagenet", 16), crop=True)
    torch.manual_seed(3)
    with Image.open(path) as lazy:
        reduced = views.from_file(lazy)
        assert lazy.size[0] < 640  # the draft took effect
    full = views.finish(Image.open(path).convert("RGB"), reduced.params)
    difference = (reduced.pixels.float() - full.pixels.float()).abs().mean()
    assert difference < 4, difference  # of 255; a misplaced box differs by tens


def test_on_gpu_the_default_is_device_and_on_cpu_the_measured_choice():
    from minc_lightning.data import module as data

    dm = MINCDataModule("fashion_mnist")
    assert dm.views_on() == data.CPU_AUGMENT_ON

    class Strategy:
        root_device = torch.device("cuda", 0)

    class Trainer:
        strategy = Strategy()

    dm = MINCDataModule("fashion_mnist")
    dm.trainer = Trainer()
    assert dm.views_on() == "device"
