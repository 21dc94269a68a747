"""Multi-crop: two global views and N local ones. Targets come from the global views only, every
view predicts, the loss is the mean over the (prediction, target) pairs, and Λ is the global
targets' second moment; the data path makes the local views in both ``augment_on`` modes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dataset_files import write_fashion_mnist, write_image_folder
from helpers import TwoViewToy, tiny_module, trainer
from lightly.transforms import BYOLView1Transform, BYOLView2Transform
from lightly.transforms.multi_view_transform import MultiViewTransform
from torch.utils.data import DataLoader
from two_view_steps import RECORD, RUNS, TOLERANCE, machine, relative_difference, train_steps

from minc_lightning.baselines import byol_loss
from minc_lightning.data import MINCDataModule
from minc_lightning.loss import minc_loss, normalize_rows

TESTS = Path(__file__).parent
B, GLOBAL, LOCAL = 4, 12, 6


def batch_views(n_local: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [GLOBAL] * 2 + [LOCAL] * n_local
    return [torch.randn(B, 3, s, s, generator=g) for s in shapes]


def multicrop_module(**kwargs):
    return tiny_module(batch_size=B, local_views=2, **kwargs)


# --- the module ------------------------------------------------------------------------------
def test_two_views_train_as_before_multicrop(tmp_path):
    """local_views=0: the weights after three steps on both data paths, for fixed-size images
    and image folders, equal those recorded before multi-crop existed: bit for bit on a machine
    in the record, within float rounding (``TOLERANCE``) on another CPU, a bound that an lr
    twice as large (as a loss averaged over half its pairs would give) exceeds."""
    records = torch.load(RECORD, weights_only=True)
    states = {name: train_steps(name, tmp_path / name) for name in RUNS}
    for name, state in states.items():
        for record in records.values():
            assert state.keys() == record[name].keys(), name
    if (here := machine()) in records:
        for name, state in states.items():
            for key, value in state.items():
                assert torch.equal(value, records[here][name][key]), (name, key)
    else:
        for name, state in states.items():
            closest = min(relative_difference(state, r[name]) for r in records.values())
            assert closest < TOLERANCE, (name, closest)
    doubled = train_steps("fashion_mnist_device", tmp_path / "doubled", lr=1.0)
    for record in records.values():
        assert relative_difference(doubled, record["fashion_mnist_device"]) > 10 * TOLERANCE


def pairs_by_hand(model, views):
    """The (prediction, target) pairs, one by one: g1→t2, g2→t1, then each local view → t1, t2.
    The networks see the same groups as in the module (global views together, local views
    together), so batch normalisation sees the same batches."""
    x1, x2, local = views[0], views[1], views[2:]
    online = lambda x, head: head(model.projector(model.backbone(x)))  # noqa: E731
    p1, p2 = online(torch.cat([x1, x2]), model.predictor).chunk(2)
    head = getattr(model, "local_predictor", model.predictor)
    p_local = online(torch.cat(local), head).chunk(len(local))
    with torch.no_grad():
        t2, t1 = model.target_projector(model.target_backbone(torch.cat([x2, x1]))).chunk(2)
    pairs = [(p1, t2), (p2, t1)]
    for p in p_local:
        pairs += [(p, t1), (p, t2)]
    return pairs, (t2, t1)


@pytest.mark.parametrize("local_predictor", ["separate", "shared"])
def test_minc_multicrop_loss_is_the_mean_over_pairs_and_lambda_the_global_moment(
    local_predictor,
):
    model = multicrop_module(local_predictor=local_predictor, alpha=1.0)
    views = batch_views(2)
    loss = model.objective_loss(views)[0]
    pairs, (t2, t1) = pairs_by_hand(model, views)
    assert len(pairs) == 2 + 2 * 2
    t = normalize_rows(torch.cat([t2, t1]), 1.0)  # each global target once
    second_moment = t.T @ t / len(t)
    torch.testing.assert_close(model.criterion.second_moment, second_moment)
    A = second_moment.tril()
    by_hand = [minc_loss(normalize_rows(p, 1.0), normalize_rows(t, 1.0), A) for p, t in pairs]
    torch.testing.assert_close(loss, torch.stack(by_hand).mean())


def test_byol_multicrop_loss_is_the_mean_over_pairs_of_its_two_view_scale():
    model = multicrop_module(objective="byol")
    views = batch_views(2)
    loss = model.objective_loss(views)[0]
    pairs, _ = pairs_by_hand(model, views)
    # BYOL's two-view loss sums its two directions: 2 × the mean over pairs, for any N
    by_hand = torch.stack([2 * byol_loss(p, t) for p, t in pairs]).mean()
    torch.testing.assert_close(loss, by_hand)


def test_the_target_network_sees_only_the_global_views():
    model = multicrop_module()
    seen = []
    model.target_backbone.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    model.objective_loss(batch_views(2))
    assert seen == [torch.Size([2 * B, 3, GLOBAL, GLOBAL])]


def predictor_gradients(model, views) -> dict[str, list[torch.Tensor]]:
    model.zero_grad()
    model.objective_loss(views)[0].backward()
    heads = {"global": model.predictor, "local": getattr(model, "local_predictor", None)}
    return {
        name: [p.grad.clone() for p in head.parameters()]
        for name, head in heads.items()
        if head is not None
    }


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(x, y, atol=1e-7, rtol=1e-5) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("objective", ["minc", "byol"])
def test_separate_predictors_learn_only_from_their_own_view_type(objective):
    """Changing the local images leaves the global predictor's gradient as it was, and the
    local predictor's gradient is zero from a loss over the global pairs alone. With one shared
    predictor the local images do reach it (so the first check can fail)."""
    views, other = batch_views(2, seed=0), batch_views(2, seed=1)
    other = views[:2] + other[2:]  # the same global views, other local ones
    model = multicrop_module(objective=objective, local_predictor="separate")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = predictor_gradients(model, views)
    model.load_state_dict(state)  # Λ and batch-norm statistics as before
    second = predictor_gradients(model, other)
    assert same(first["global"], second["global"])
    assert not same(first["local"], second["local"])
    model.load_state_dict(state)
    model.zero_grad()
    model.objective_loss(views[:2])[0].backward()  # the global pairs alone
    local_grads = [p.grad for p in model.local_predictor.parameters()]
    assert all(g is None or not g.any() for g in local_grads)

    shared = multicrop_module(objective=objective, local_predictor="shared")
    assert not hasattr(shared, "local_predictor")
    state = {k: v.clone() for k, v in shared.state_dict().items()}
    first = predictor_gradients(shared, views)
    shared.load_state_dict(state)
    assert not same(first["global"], predictor_gradients(shared, other)["global"])


def test_multicrop_trains_and_the_probe_reads_the_first_global_view(tmp_path):
    write_fashion_mnist(tmp_path, n_train=16, n_test=4)
    dm = MINCDataModule("fashion_mnist", str(tmp_path), batch_size=4, num_workers=0, local_views=2)
    model = tiny_module(batch_size=4, num_classes=10, local_views=2)
    probed = []
    model.probe.linear.register_forward_hook(lambda m, a, out: probed.append(a[0].shape[0]))
    trainer(max_steps=2, limit_val_batches=0).fit(model, datamodule=dm)
    assert probed == [4, 4]  # B rows per step: the first global view only
    assert model.criterion.num_updates.item() == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


class ThreeLocalViews(TwoViewToy):
    def __getitem__(self, i: int):
        (v1, v2), label = super().__getitem__(i)
        return [v1, v2, *(v[:, :6, :6] for v in (v1, v2, v1))], label


def test_a_batch_with_other_local_views_than_the_module_is_refused():
    model = tiny_module(batch_size=B, local_views=2)
    data = DataLoader(ThreeLocalViews(8), batch_size=B)
    with pytest.raises(ValueError, match=r"local_views=2.*has 5 views.*data.local_views \(3\)"):
        trainer(max_steps=1).fit(model, data)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(local_views=-1), "local_views"),
        (dict(local_views=1.5), "local_views"),
        (dict(local_views=2, objective="spectral"), "local_views"),
        (dict(local_predictor="both"), "local_predictor"),
    ],
)
def test_module_refuses_bad_multicrop_values_by_name(kwargs, key):
    with pytest.raises(ValueError, match=key):
        tiny_module(**kwargs)


# --- the data path ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(local_views=-2), "local_views"),
        (dict(local_views=2, local_size=29), "local_size"),  # the global views are 28 px
        (dict(local_size=0), "local_size"),
        (dict(local_scale=(0.0, 0.5)), "local_scale"),
        (dict(local_scale=(0.1, 1.5)), "local_scale"),
        (dict(local_scale=(0.5, 0.1)), "local_scale"),
        (dict(local_scale=(0.1,)), "local_scale"),
    ],
)
def test_data_module_refuses_bad_multicrop_values_by_name(kwargs, key):
    with pytest.raises(ValueError, match=key):
        MINCDataModule("fashion_mnist", download=False, **kwargs)


def first_batch(dm: MINCDataModule):
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    return dm.on_after_batch_transfer(batch, 0)


@pytest.mark.parametrize("augment_on", ["device", "loader"])
@pytest.mark.parametrize("dataset", ["fashion_mnist", "folder"])
def test_local_views_have_local_size_and_differ(tmp_path, dataset, augment_on):
    if dataset == "fashion_mnist":
        write_fashion_mnist(tmp_path, n_train=8)
        size, local, image_size = 28, 14, None  # the preset's local size
    else:
        write_image_folder(tmp_path, ["a", "b"], per_class=4, size=40)
        size, local, image_size = 24, 10, 24
    dm = MINCDataModule(
        dataset,
        str(tmp_path),
        batch_size=8,
        num_workers=0,
        image_size=image_size,
        augment_on=augment_on,
        download=False,
        local_views=3,
        local_size=None if dataset == "fashion_mnist" else local,
    )
    views, labels = first_batch(dm)
    assert [tuple(v.shape) for v in views] == [(8, 3, size, size)] * 2 + [(8, 3, local, local)] * 3
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in views)
    locals_ = views[2:]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.allclose(locals_[i], locals_[j])  # three different crops


def test_a_users_augmentation_with_local_views(tmp_path):
    """Its view sizes say which views are global (the first two) and which local."""
    write_fashion_mnist(tmp_path, n_train=8)
    views = [BYOLView1Transform(input_size=28, normalize=None)]
    views += [BYOLView2Transform(input_size=s, normalize=None) for s in (28, 12, 12)]
    dm = MINCDataModule(
        "fashion_mnist",
        str(tmp_path),
        batch_size=4,
        num_workers=0,
        augmentation=MultiViewTransform(views),
        augment_on="device",
        local_views=2,
    )
    made, _ = first_batch(dm)
    assert [v.shape[-1] for v in made] == [28, 28, 12, 12]
    with pytest.raises(ValueError, match="local_views"):
        MINCDataModule("fashion_mnist", augmentation=MultiViewTransform(views), local_views=0)
    mixed = MultiViewTransform([views[0], views[2], views[1], views[3]])  # 28, 12 | 28, 12
    with pytest.raises(ValueError, match="global views"):
        MINCDataModule("fashion_mnist", augmentation=mixed, local_views=2)


@pytest.mark.slow
def test_processes_under_ddp_draw_different_local_crops(tmp_path):
    """Two gloo processes: the local views' crop boxes of their first batches share no row."""
    write_fashion_mnist(tmp_path / "data", n_train=16)
    env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    command = [sys.executable, str(TESTS / "ddp_augment_script.py"), str(tmp_path / "data")]
    result = subprocess.run(
        [*command, str(tmp_path), "2"], capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank_0, rank_1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert rank_0.shape == rank_1.shape and rank_0.shape[:2] == (4, 4)  # 2 global + 2 local
    boxes_0, boxes_1 = rank_0[:, 2:, :4].flatten(1), rank_1[:, 2:, :4].flatten(1)
    assert not (boxes_0[:, None] == boxes_1[None]).all(-1).any()


def test_the_local_predictor_without_local_views_does_not_make_another_run():
    """A two-view run's checkpoint is the same run whatever local_predictor says, since no local
    predictor exists; with local views it is another run."""
    from minc_lightning.checkpoint_files import identity_differences

    for predictor in ("separate", "shared"):
        ours = {"model.alpha": 0.1, "model.local_views": 0, "model.local_predictor": predictor}
        other = dict(
            ours, **{"model.local_predictor": "shared" if predictor == "separate" else "separate"}
        )
        assert identity_differences(other, ours) == []
    two_local = {"model.local_views": 2, "model.local_predictor": "separate"}
    assert identity_differences(
        two_local, dict(two_local, **{"model.local_predictor": "shared"})
    ) == ["model.local_predictor: 'separate' there, 'shared' here"]
