"""A resume continues the run it belongs to, on the batches it would have trained, or stops
before training and says why."""

import re
import time
from pathlib import Path

import pytest
import torch
from dataset_files import write_fashion_mnist
from lightning.pytorch import Callback
from test_fit import quick_args

from minc_lightning.checkpoint_files import find_last
from minc_lightning.commands.fit import run_cli
from minc_lightning.errors import ResumeRefused

pytestmark = pytest.mark.usefixtures("offline_wandb")


@pytest.fixture
def data(tmp_path) -> Path:
    write_fashion_mnist(tmp_path / "data", n_train=32, n_test=8)  # 4 batches of 8 per epoch
    return tmp_path / "data"


def fit(data: Path, run: Path, *extra: str, epochs: int = 2):
    return run_cli(["fit", *quick_args(data, run, epochs=epochs), "--trainer.logger=false", *extra])


def weights(run: Path, name: str = "last.ckpt") -> dict:
    return torch.load(run / "checkpoints" / name, weights_only=True)


@pytest.mark.parametrize(
    "changed, key, before, after",
    [
        (["--data.seed=1"], "data.seed", "0", "1"),
        (["--data.train_subset=24"], "data.train_subset", "None", "24"),
        (  # the same global batch of 8, split otherwise: other batches
            ["--data.batch_size=4", "--trainer.accumulate_grad_batches=2"],
            "data.batch_size (per device)",
            "8",
            "4",
        ),
    ],
)
def test_resume_onto_another_stream_of_batches_is_refused_naming_both_values(
    tmp_path, data, changed, key, before, after
):
    fit(data, tmp_path / "run", epochs=1)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    with pytest.raises(ResumeRefused, match="cannot resume") as err:
        fit(data, tmp_path / "run", *changed, f"--ckpt_path={last}")
    assert f"{key}: {before} there, {after} here" in str(err.value)


ROUTES = ("file", "last", "last_if_present")


def route(name: str, run: Path) -> str:
    """The --ckpt_path that names ``run``'s checkpoint by ``name``."""
    return f"--ckpt_path={run / 'checkpoints' / 'last.ckpt' if name == 'file' else name}"


@pytest.mark.parametrize("name", ROUTES)
def test_a_changed_lr_is_applied_and_said_whichever_way_the_checkpoint_is_named(
    tmp_path, data, caplog, name
):
    """Lightning's CLI would replace model.* by a checkpoint file's hyper-parameters: the lr
    given here would be dropped silently, and the run would write last-v1.ckpt."""
    run = tmp_path / "run"
    fit(data, run, epochs=1)
    before = weights(run)["minc_lightning"]["lr"]
    with caplog.at_level("INFO"):
        resumed = fit(data, run, "--model.lr=4.0", route(name, run), epochs=2)
    assert resumed.trainer.global_step == 8  # resumed after epoch 1, not started afresh
    assert resumed.model.hparams.lr == 4.0
    after = weights(run)
    applied = after["minc_lightning"]["lr"]
    assert applied == pytest.approx(4.0 * 8 / 256) and applied != before
    assert after["hyper_parameters"]["lr"] == 4.0  # the next checkpoint holds what was applied
    assert f"resuming with lr {applied:.4g} instead of the checkpoint's {before:.4g}" in caplog.text
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]


@pytest.mark.parametrize(
    "changed, difference",
    [
        (["--model.objective=spectral"], "model.objective: 'minc' there, 'spectral' here"),
        (["--data.batch_size=4"], "data.batch_size (per device): 8 there, 4 here"),
    ],
)
def test_a_setting_a_resume_cannot_change_is_refused_in_the_same_words_on_every_route(
    tmp_path, data, changed, difference
):
    run = tmp_path / "run"
    fit(data, run, epochs=1)
    written = weights(run)
    said = set()
    for name in ROUTES:
        with pytest.raises(ResumeRefused, match="cannot resume") as err:
            fit(data, run, *changed, route(name, run), epochs=2)
        assert difference in str(err.value)
        assert str(err.value).count(" there, ") == 1  # one fact changed: one line says it
        said.add(str(err.value))
    assert len(said) == 1, said  # one message, whichever way the checkpoint was named
    assert torch.equal(  # nothing was trained or written
        weights(run)["state_dict"]["criterion.second_moment"],
        written["state_dict"]["criterion.second_moment"],
    )
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]


def test_the_stream_of_batches_is_checked_by_the_data_module_alone(tmp_path):
    """Each setting of the stream is one fact with one check: the data module's. Comparing run
    identities leaves them out (they stay recorded, as in earlier checkpoints)."""
    from minc_lightning.checkpoint_files import STREAM, identity_differences, run_identity
    from minc_lightning.commands.fit import LINKED
    from minc_lightning.data import MINCDataModule

    write_fashion_mnist(tmp_path, n_train=16)
    dm = MINCDataModule("fashion_mnist", str(tmp_path), batch_size=8, num_workers=0)
    dm.setup("fit")
    recorded = {key.split(" ")[0] for key in dm.stream() if key.startswith("data.")}
    assert recorded <= set(STREAM)
    assert all(copy in STREAM for copy, source in LINKED.items() if source in STREAM)
    ours = run_identity({"alpha": 0.1}, {"batch_size": 8, "seed": 0})
    other_stream = run_identity({"alpha": 0.1}, {"batch_size": 4})
    assert identity_differences(other_stream, ours) == []
    other_model = run_identity({"alpha": 0.3}, {"batch_size": 8})
    assert identity_differences(other_model, ours) != []


AUGMENTATION = {  # a user's views, given in the config: part of what makes the run this run
    "class_path": "lightly.transforms.SimCLRTransform",
    "init_args": {"input_size": 16},
}


def test_the_checkpoint_callback_records_the_identity_the_cli_picks_this_runs_checkpoint_by(
    tmp_path, data
):
    """The callback computes the identity from what the module and data module were built
    with; the CLI computes it from the config before anything is built, to find ``last``.
    They agree, a given augmentation and backbone included, so ``last`` finds the run."""
    import yaml

    from minc_lightning.checkpoint_files import RUN_KEY

    run, config = tmp_path / "run", tmp_path / "views.yaml"
    config.write_text(yaml.safe_dump({"data": {"augmentation": AUGMENTATION, "image_size": 16}}))
    first = fit(data, run, f"--config={config}", epochs=1)
    recorded = weights(run)[RUN_KEY]
    assert recorded == first.identity
    assert recorded["data.augmentation.class_path"] == AUGMENTATION["class_path"]
    assert recorded["model.backbone.class_path"] == "minc_lightning.backbones.ConvNet"
    assert recorded["seed_everything"] == 0
    resumed = fit(data, run, f"--config={config}", "--ckpt_path=last", epochs=2)
    assert resumed.trainer.global_step == 8  # epoch 1 restored, epoch 2 trained
    with pytest.raises(ResumeRefused, match="data.augmentation.class_path: 'lightly"):
        fit(data, run, "--data.image_size=16", "--ckpt_path=last_if_present", epochs=3)


def test_a_module_built_in_python_records_its_identity_too(tmp_path, data):
    """Without the CLI (MINCModule dropped into a user's Trainer), the callback records the
    settings the module and data module were built with."""
    from lightning.pytorch import Trainer

    from minc_lightning import MINCDataModule, MINCModule
    from minc_lightning.backbones import ConvNet
    from minc_lightning.callbacks import ResumableCheckpoint
    from minc_lightning.checkpoint_files import RUN_KEY

    dm = MINCDataModule("fashion_mnist", str(data), batch_size=8, num_workers=0, image_size=16)
    model = MINCModule(ConvNet(width=4), alpha=0.3, batch_size=8)
    trainer = Trainer(
        max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=False,
        callbacks=[ResumableCheckpoint(dirpath=str(tmp_path))], enable_progress_bar=False,
    )  # fmt: skip
    trainer.fit(model, dm)
    recorded = torch.load(tmp_path / "last.ckpt", weights_only=True)[RUN_KEY]
    assert recorded["model.alpha"] == 0.3 and recorded["data.image_size"] == 16
    assert "model.backbone" not in recorded  # an object, not a setting


def test_resume_onto_other_root_contents_is_refused(tmp_path, data):
    fit(data, tmp_path / "run", epochs=1)
    write_fashion_mnist(data, n_train=40, n_test=8)  # the folder now holds more images
    with pytest.raises(ResumeRefused, match="data.root's contents.*: 32 there, 40 here"):
        fit(data, tmp_path / "run", "--ckpt_path=last")


def test_resume_with_other_workers_is_accepted_and_said(tmp_path, data, caplog):
    fit(data, tmp_path / "run", epochs=1)
    fit(data, tmp_path / "run", "--data.num_workers=1", "--ckpt_path=last")
    assert "resuming with data.num_workers 1 instead of the checkpoint's 0" in caplog.text


class Slow(Callback):
    """A step of at least 0.5 s, so that max_time (1 s) stops the run inside its first epoch of
    4 steps."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(0.5)


def test_run_stopped_by_max_time_resumes_the_rest_of_its_epoch(tmp_path, data, monkeypatch):
    straight = fit(data, tmp_path / "straight")
    slow = tmp_path / "slow.yaml"
    slow.write_text("trainer:\n  callbacks:\n    - class_path: test_resume.Slow\n")
    stopped = fit(data, tmp_path / "run", f"--config={slow}", "--trainer.max_time=00:00:00:01")
    assert 0 < stopped.trainer.global_step < 4  # inside epoch 0
    resumed = fit(data, tmp_path / "run", "--ckpt_path=last")
    assert resumed.trainer.global_step == straight.trainer.global_step == 8
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "run")
    for name in a["state_dict"]:
        assert torch.equal(a["state_dict"][name], b["state_dict"][name]), name


def test_sweep_runs_sharing_a_folder_never_resume_each_other(tmp_path, data, caplog):
    """Two runs with other hyper-parameters in one default_root_dir (as a sweep without per-run
    folders): each resumes only its own checkpoint, and neither overwrites the other's."""
    run = tmp_path / "shared"
    fit(data, run, "--model.alpha=0.1", epochs=1)
    first = weights(run)
    other = fit(data, run, "--model.alpha=0.3", epochs=1)  # a new run in the same folder
    assert other.trainer.global_step == 4
    assert torch.equal(
        weights(run)["state_dict"]["criterion.second_moment"],
        first["state_dict"]["criterion.second_moment"],
    )  # last.ckpt untouched
    assert weights(run, "last-v1.ckpt")["hyper_parameters"]["alpha"] == 0.3
    again = fit(data, run, "--model.alpha=0.1", "--ckpt_path=last_if_present", epochs=2)
    assert again.trainer.global_step == 8 and again.trainer.ckpt_path.endswith("last.ckpt")
    assert "not resuming last-v1.ckpt: it belongs to another run (model.alpha: 0.3" in caplog.text
    resumed = fit(data, run, "--model.alpha=0.3", "--ckpt_path=last", epochs=2)
    assert resumed.trainer.ckpt_path.endswith("last-v1.ckpt")
    with pytest.raises(ResumeRefused, match="model.alpha: 0.3 there, 0.6 here"):
        fit(data, run, "--model.alpha=0.6", "--ckpt_path=last")  # neither run's settings


def test_each_wandb_sweep_run_gets_its_own_folder(tmp_path, data, monkeypatch):
    monkeypatch.setenv("WANDB_SWEEP_ID", "sweep1")
    for run_id in ("run-a", "run-b"):
        monkeypatch.setenv("WANDB_RUN_ID", run_id)
        fit(data, tmp_path / "runs", "--ckpt_path=last_if_present", epochs=1)
    assert (tmp_path / "runs" / "run-a" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "runs" / "run-b" / "checkpoints" / "last.ckpt").is_file()
    found, _ = find_last(tmp_path / "runs" / "run-b" / "checkpoints")
    assert found is not None


def test_a_run_that_trains_zero_steps_says_so(tmp_path, data):
    fit(data, tmp_path / "run", epochs=1)
    with pytest.raises(RuntimeError, match="trained zero optimizer steps"):
        fit(data, tmp_path / "run", "--ckpt_path=last", epochs=1)  # max_epochs already reached


def test_ckpt_path_that_is_a_directory_says_so(tmp_path, data):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        fit(data, tmp_path / "run", f"--ckpt_path={tmp_path}")


def test_settings_the_objective_ignores_are_named_at_start(tmp_path, data, caplog):
    fit(data, tmp_path / "run", "--model.objective=byol", epochs=1)
    assert "objective 'byol' ignores alpha, triangular, moment_source, mu" in caplog.text


def test_a_picture_that_cannot_be_written_says_the_checkpoint_is_safe(tmp_path, data):
    run = tmp_path / "run"
    run.mkdir()
    (run / "lambda").write_text("a file where the pictures' folder would go")
    with pytest.raises(RuntimeError, match="its checkpoint .*last.ckpt is safe .*picture of Λ"):
        fit(data, run, epochs=1)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4


def test_every_key_of_the_stream_is_checked_on_resume(tmp_path):
    """Each setting that decides the batches, the number of processes included (which needs
    DDP to change in a real run), stops a resume with its name and both values."""
    from minc_lightning.data import MINCDataModule

    write_fashion_mnist(tmp_path, n_train=32)
    dm = MINCDataModule("fashion_mnist", str(tmp_path), batch_size=8, num_workers=0)
    dm.setup("fit")
    saved = dm.state_dict()
    assert len(saved["stream"]) == 9  # data.local_views among them
    for key, value in saved["stream"].items():
        other = "another" if isinstance(value, str) else (value or 0) + 1  # as written then
        written = dict(saved, stream=dict(saved["stream"], **{key: other}))
        with pytest.raises(ValueError, match=re.escape(f"{key}: {other!r} there, {value!r} here")):
            dm.load_state_dict(written)
    dm.load_state_dict(saved)  # the same stream resumes
