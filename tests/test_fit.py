"""The minc-lightning CLI: every recipe parses and runs a step; sweeps; W&B offline; errors."""

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from dataset_files import write_cifar, write_fashion_mnist, write_imagenet, write_stl10
from helpers import python

from minc_lightning.callbacks.checkpoint import ResumableCheckpoint
from minc_lightning.commands.fit import run_cli

CONFIGS = Path(__file__).parents[1] / "configs"
RECIPES = [  # the streaming recipe's shards are written by prepare's processes
    pytest.param(p, marks=pytest.mark.slow) if p.stem == "imagenet_streaming" else p
    for p in sorted(CONFIGS.glob("*.yaml"))
    if p.stem not in ("sweep", "wandb", "rankme")  # added to a recipe, not recipes
]
CPU = [
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.num_nodes=1",
    "--trainer.strategy=auto",
    "--trainer.sync_batchnorm=false",
    "--trainer.precision=32-true",
    "--trainer.enable_progress_bar=false",
    "--data.num_workers=0",
]


pytestmark = pytest.mark.usefixtures("offline_wandb")


def fixture_data(dataset: str, root: Path) -> None:
    writers = {
        "imagenet": lambda: write_imagenet(root, per_class=2),
        "imagenet100": lambda: write_imagenet(root, subset_100=True),
        "cifar10": lambda: write_cifar(root, "cifar10"),
        "stl10": lambda: write_stl10(root),
        "fashion_mnist": lambda: write_fashion_mnist(root),
        "streaming": lambda: shards_of_imagenet(root),
    }
    writers[dataset]()


def shards_of_imagenet(root: Path) -> None:
    """ImageNet files written as shards into root, as minc-lightning-prepare writes them."""
    from minc_lightning.commands.prepare import prepare

    write_imagenet(root / "source", per_class=2)
    prepare("imagenet", root, root / "source", num_workers=1, verbose=False)


def small(batch: int = 4) -> list[str]:
    """Shrink any recipe to seconds on a CPU: tiny images and heads (the backbone stays)."""
    return CPU + [
        f"--data.batch_size={batch}",
        "--model.projection_hidden_dim=32",
        "--model.prediction_hidden_dim=32",
        "--model.projection_dim=16",
    ]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_parses_and_runs_one_step(recipe, tmp_path):
    config = yaml.safe_load(recipe.read_text())
    dataset = config["data"]["dataset"]
    fixture_data(dataset, tmp_path / "data")
    size = 32 if dataset != "fashion_mnist" else 28
    args = [
        "fit",
        f"--config={recipe}",
        *small(),
        f"--data.root={tmp_path / 'data'}",
        f"--data.image_size={size}",
        "--trainer.fast_dev_run=true",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
    ]
    local_views = config["data"].get("local_views", 0)
    if local_views:  # multi-crop: local views smaller than the shrunk global ones
        args.append(f"--data.local_size={size // 2}")
    cli = run_cli(args)
    assert cli.trainer.global_step == 1
    assert cli.model.hparams.local_views == local_views  # linked
    # every recipe keeps its resumable state at every epoch end (a kill loses one epoch at most)
    (saver,) = [c for c in cli.trainer.callbacks if isinstance(c, ResumableCheckpoint)]
    assert saver.every_n_epochs == 1 and saver.on_signal
    steps = config.get("checkpoint", {}).get("every_n_train_steps")
    assert saver.every_n_train_steps == steps
    assert cli.model.hparams.objective == config["model"]["objective"]
    assert cli.model.hparams.num_classes == cli.datamodule.num_classes  # linked
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])


def test_print_config_round_trips(capsys):
    with pytest.raises(SystemExit):
        run_cli(["fit", f"--config={CONFIGS / 'quickstart.yaml'}", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["objective"] == "minc" and printed["data"]["dataset"] == "fashion_mnist"


def quick_args(root: Path, run: Path, epochs: int = 1) -> list[str]:
    return [
        f"--config={CONFIGS / 'quickstart.yaml'}",
        *small(8),
        "--model.backbone.init_args.width=4",  # the quickstart's CNN, an eighth as wide
        f"--data.root={root}",
        "--data.train_subset=null",
        f"--trainer.max_epochs={epochs}",
        f"--trainer.default_root_dir={run}",
        "--trainer.logger.init_args.save_dir=" + str(run),
    ]


def test_fit_saves_config_and_last_checkpoint_then_resumes(tmp_path, capsys):
    write_fashion_mnist(tmp_path / "data", n_train=16, n_test=8)
    run = tmp_path / "run"
    run_cli(["fit", *quick_args(tmp_path / "data", run)])
    assert (run / "checkpoints" / "last.ckpt").is_file()
    saved = list(run.rglob("config.yaml"))
    assert saved and yaml.safe_load(saved[0].read_text())["model"]["alpha"] == 0.1
    out = capsys.readouterr()
    assert "last.ckpt" in out.out + out.err and "val/top1" in out.out + out.err
    cli = run_cli(["fit", *quick_args(tmp_path / "data", run, epochs=2), "--ckpt_path=last"])
    assert cli.trainer.global_step == 4  # 2 steps per epoch: resumed after epoch 1, not restarted


def test_the_cli_offers_the_subcommands_the_module_can_run(tmp_path, capsys):
    """fit and validate; test and predict are refused by name before anything is built, since
    the module has no test_step and no forward."""
    write_fashion_mnist(tmp_path / "data", n_train=16, n_test=8)
    run = tmp_path / "run"
    run_cli(["fit", *quick_args(tmp_path / "data", run)])
    last = run / "checkpoints" / "last.ckpt"
    validated = run_cli(["validate", *quick_args(tmp_path / "data", run), f"--ckpt_path={last}"])
    assert 0.0 <= validated.trainer.callback_metrics["val/top1"] <= 1.0
    for refused in ("test", "predict"):
        with pytest.raises(SystemExit):
            run_cli([refused, *quick_args(tmp_path / "data", run)])
        error = capsys.readouterr().err
        assert f"invalid choice: '{refused}' (choose from 'fit', 'validate')" in error


def sweep_args(params: dict, rng) -> list[str]:
    """The ${args} a W&B agent would pass for one sampled point of the sweep."""
    out = []
    for key, spec in params.items():
        if "values" in spec:
            value = spec["values"][rng.integers(len(spec["values"]))]
        else:
            value = float(spec["min"])
        out.append(f"--{key}={json.dumps(value) if isinstance(value, bool) else value}")
    return out


def test_sweep_parameters_reach_the_cli():
    import numpy as np

    sweep = yaml.safe_load((CONFIGS / "sweep.yaml").read_text())
    command = sweep["command"]
    assert command[:3] == ["${env}", "minc-lightning", "fit"] and command[-1] == "${args}"
    base = command[3:-1]  # without run=True the CLI takes no subcommand
    base = [f"{CONFIGS.parent}/{a}" if a.startswith("configs/") else a for a in base]
    rng = np.random.default_rng(0)
    for _ in range(5):
        args = sweep_args(sweep["parameters"], rng)
        cli = run_cli([*base, *args], run=False)
        assert any(type(c).__name__ == "RankMe" for c in cli.trainer.callbacks)
        config = cli.config
        for arg in args:
            key, value = arg[2:].split("=", 1)
            assert str(config[key]).lower() == str(yaml.safe_load(value)).lower(), key


def wandb_fit_args(tmp_path: Path) -> list[str]:
    """``fit`` on tiny Fashion-MNIST files with the W&B logger writing under tmp_path/run."""
    write_fashion_mnist(tmp_path / "data", n_train=16, n_test=8)
    run = tmp_path / "run"
    return [
        "fit",
        *quick_args(tmp_path / "data", run),
        f"--config={CONFIGS / 'wandb.yaml'}",
        f"--trainer.logger.init_args.save_dir={run}",
    ]


def test_one_sweep_trial_offline(tmp_path):
    run = tmp_path / "run"
    args = [
        *wandb_fit_args(tmp_path),
        f"--config={CONFIGS / 'rankme.yaml'}",  # as the sweep's command adds it
        "--model.alpha=0.3",
        "--model.mu=2.0",
        "--trainer.log_every_n_steps=1",
    ]
    cli = run_cli(args)
    wandb_run = cli.trainer.logger.experiment  # what a user reads: the run's config and summary
    config, logged = dict(wandb_run.config), set(dict(wandb_run.summary))
    wandb_run.finish()
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1
    assert config["cli"]["model"]["alpha"] == 0.3 and config["cli"]["model"]["mu"] == 2.0
    assert {"train/loss", "lambda/trace", "lambda/offdiag_ratio", "val/top1"} <= logged
    assert "val/rankme" in logged  # what a sweep over unlabelled data maximises


def test_resumed_run_reuses_wandb_id(tmp_path):
    run = tmp_path / "run"
    base = wandb_fit_args(tmp_path)
    first = run_cli(base)
    run_id = first.trainer.logger.version
    first.trainer.logger.experiment.finish()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["wandb_run_id"] == run_id
    base[base.index("--trainer.max_epochs=1")] = "--trainer.max_epochs=2"
    second = run_cli([*base, "--ckpt_path=last"])
    assert second.trainer.logger.version == run_id
    second.trainer.logger.experiment.finish()


def test_no_wandb_credentials_means_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    run_cli(
        [f"--config={CONFIGS / 'quickstart.yaml'}", f"--config={CONFIGS / 'wandb.yaml'}"], run=False
    )
    assert os.environ["WANDB_MODE"] == "offline"


# --- errors a user will hit ------------------------------------------------------------------
def test_unknown_key_names_it(capsys):
    with pytest.raises(SystemExit):
        run_cli(["fit", f"--config={CONFIGS / 'quickstart.yaml'}", "--model.alpah=0.1"])
    assert "alpah" in capsys.readouterr().err


def test_missing_dataset_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        run_cli(
            [
                "fit",
                f"--config={CONFIGS / 'cifar10.yaml'}",
                *small(),
                f"--data.root={tmp_path / 'nowhere'}",
                "--data.download=false",
                "--trainer.fast_dev_run=true",
            ]
        )


def test_projector_that_does_not_fit_the_backbone(tmp_path):
    write_fashion_mnist(tmp_path / "data", n_train=16, n_test=8)
    with pytest.raises(ValueError, match="feature_dim"):
        run_cli(
            [
                "fit",
                *quick_args(tmp_path / "data", tmp_path / "run"),
                "--model.feature_dim=100",
                "--trainer.fast_dev_run=true",
            ]
        )


def test_checkpoint_from_another_config_is_refused(tmp_path):
    write_fashion_mnist(tmp_path / "data", n_train=16, n_test=8)
    write_cifar(tmp_path / "cifar", "cifar100", per_file=16)
    run = tmp_path / "run"
    run_cli(["fit", *quick_args(tmp_path / "data", run)])
    # the image size is the run's identity, checked before anything starts (the dataset is the
    # stream's, which the data module checks once the identity agrees)
    with pytest.raises(ValueError, match=r"cannot resume .*data.image_size: None there, 28 here"):
        run_cli(
            [
                "fit",
                *quick_args(tmp_path / "cifar", tmp_path / "other", epochs=2),
                "--data.dataset=cifar100",
                "--data.image_size=28",
                f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
            ]
        )


def test_a_run_without_a_terminal_logs_plain_lines(tmp_path, capfd):
    """stdout is not a terminal under pytest: every log_every_n_steps steps one line with the
    step, loss, lr, tau, images/s and time left; no carriage-return progress bar."""
    write_fashion_mnist(tmp_path / "data", n_train=32, n_test=8)
    args = quick_args(tmp_path / "data", tmp_path / "run", epochs=2)
    args.remove("--trainer.enable_progress_bar=false")
    run_cli(["fit", *args, "--trainer.log_every_n_steps=2"])
    out = capfd.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert [line.split(" | ")[0] for line in lines] == [
        "step 2/8",
        "step 4/8",
        "step 6/8",
        "step 8/8",
    ]
    fields = [field.split(" ")[0] for field in lines[-1].split(" | ")]
    assert fields == ["step", "loss", "lr", "tau", lines[-1].split(" | ")[4].split(" ")[0], "ETA"]
    assert "img/s" in lines[-1] and "epoch 1 validation: val/top1" in out
    assert "\r" not in out


def test_picture_of_lambda_is_written_named_and_follows_lambda(tmp_path, capsys):
    from minc_lightning.callbacks.lambda_pictures import draw_lambda

    write_fashion_mnist(tmp_path / "data", n_train=16, n_test=8)
    run = tmp_path / "run"
    run_cli(["fit", *quick_args(tmp_path / "data", run)])
    final = run / "lambda" / "lambda_final.png"
    assert final.is_file() and final.stat().st_size > 1000
    assert f"Λ picture  : {final}" in capsys.readouterr().out

    def png(matrix) -> bytes:
        draw_lambda(matrix).savefig(tmp_path / "x.png")
        return (tmp_path / "x.png").read_bytes()

    diagonal = torch.diag(torch.linspace(1, 0.1, 8))
    assert png(diagonal) == png(diagonal.clone())  # the same Λ, the same picture
    assert png(diagonal) != png(diagonal + 0.05 * torch.ones(8, 8))  # another Λ, another one


def test_online_knn_agrees_with_the_eval_command(tmp_path):
    from minc_lightning.commands.evaluate import knn

    write_fashion_mnist(tmp_path / "data", n_train=32, n_test=16)
    run = tmp_path / "run"
    monitor = tmp_path / "knn.yaml"
    monitor.write_text(
        "trainer:\n  callbacks:\n    - class_path: minc_lightning.callbacks.knn.OnlineKNN\n"
        "      init_args:\n        k: 5\n"
    )
    cli = run_cli(["fit", *quick_args(tmp_path / "data", run), f"--config={monitor}"])
    online = float(cli.trainer.callback_metrics["val/knn_top1"])
    offline = knn(str(run / "checkpoints" / "last.ckpt"), k=5, num_workers=0)["top1"]
    assert online == pytest.approx(offline, abs=1e-6)


def test_python_dash_m_runs_the_fit_command(tmp_path):
    """``python -m minc_lightning fit ...`` (what ``torchrun -m`` starts) is ``minc-lightning``:
    a bad value ends it the same way, with the command's one-line error and exit code 2."""
    done = python("-m", "minc_lightning", "fit", "--data.batch_size=-1", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "batch_size" in done.stderr
