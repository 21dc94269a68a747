"""A user's mistake ends a command with one line that names the setting or file and says what to
do, and a non-zero exit; ``MINC_LIGHTNING_DEBUG=1`` brings the traceback back. An unreadable
checkpoint is named, with its size, by every command that reads one, and nobody is told to
trust it."""

import sys
import traceback
import zipfile
from pathlib import Path

import pytest
import torch
from dataset_files import write_fashion_mnist
from test_fit import quick_args

from minc_lightning import loading
from minc_lightning.checkpoint_files import atomic_save, load_checkpoint
from minc_lightning.commands import evaluate, export
from minc_lightning.commands import fit as cli
from minc_lightning.errors import DEBUG, USER_ERROR_EXIT, NoSpace, UserError

pytestmark = pytest.mark.usefixtures("offline_wandb")


class RunsCode:
    """Unpickled, it writes a file: what a checkpoint carrying code could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def bad_checkpoint(path: Path, kind: str, marker: Path) -> str:
    """Write a checkpoint file that cannot be resumed; returns what the message must say."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
        return "it is empty"
    if kind == "truncated":
        torch.save({"state_dict": {"w": torch.randn(256, 256)}}, path)
        path.write_bytes(path.read_bytes()[:4096])
        return "it is truncated or damaged"
    if kind == "text":
        path.write_text("model: resnet18\nlr: 0.1\n")
        return "it is not a PyTorch checkpoint"
    if kind == "foreign":  # another program's zip archive
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("weights.txt", "1 2 3")
        return "it is truncated or damaged"
    if kind == "other torch file":  # readable, but not what minc-lightning fit writes
        torch.save({"weights": torch.ones(3)}, path)
        return "is not a minc-lightning checkpoint"
    torch.save({"state_dict": {}, "payload": RunsCode(marker)}, path)  # code-carrying
    return "holds objects other than tensors and plain values"


def run_command(main, argv: list[str], monkeypatch, capfd) -> tuple[int, str]:
    """A command's ``main`` as its console script runs it: (exit code, everything printed)."""
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    out = capfd.readouterr()
    return exited.value.code, out.out + out.err


def one_error_line(printed: str, prog: str) -> str:
    lines = [line for line in printed.splitlines() if "error" in line.lower()]
    assert "Traceback" not in printed, printed
    assert len(lines) == 1, printed
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    return lines[0]


KINDS = ["empty", "truncated", "text", "foreign", "other torch file", "code-carrying"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_unreadable_checkpoint_is_named_by_every_command_and_never_trusted(
    tmp_path, monkeypatch, capfd, kind
):
    write_fashion_mnist(tmp_path / "data", n_train=16, n_test=8)
    marker = tmp_path / "marker"
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "last.ckpt"
    reason = bad_checkpoint(ckpt, kind, marker)
    size = ckpt.stat().st_size
    fit = ["minc-lightning", "fit", *quick_args(tmp_path / "data", run)]
    commands = [
        (cli.main, [*fit, f"--ckpt_path={ckpt}"], "minc-lightning", "--ckpt_path"),
        (cli.main, [*fit, "--ckpt_path=last"], "minc-lightning", "--ckpt_path"),
        (cli.main, [*fit, "--ckpt_path=last_if_present"], "minc-lightning", "--ckpt_path"),
        (
            evaluate.main,
            ["minc-lightning-eval", "knn", f"--ckpt={ckpt}"],
            "minc-lightning-eval",
            "--ckpt",
        ),
        (
            export.main,
            ["minc-lightning-export", f"--ckpt={ckpt}", f"--out={tmp_path / 'out.pt'}"],
            "minc-lightning-export",
            "--ckpt",
        ),
    ]
    for main, argv, prog, flag in commands:
        code, printed = run_command(main, argv, monkeypatch, capfd)
        assert code == USER_ERROR_EXIT, printed
        line = one_error_line(printed, prog)
        assert str(ckpt) in line and reason in line, line
        assert f"({size} bytes)" in line, line
        assert f"another {flag}" in line or f"another {flag}" in line.lower(), line
        assert "weights_only=False" not in printed
    with pytest.raises(UserError) as err:  # the Python loader names the file as well
        loading.model_from_checkpoint(ckpt)
    assert str(ckpt) in str(err.value) and reason in str(err.value)
    monkeypatch.setenv(DEBUG, "1")  # with the traceback: still no advice to trust the file
    with pytest.raises(UserError) as err:
        run_command(cli.main, [*fit, f"--ckpt_path={ckpt}"], monkeypatch, capfd)
    assert "weights_only=False" not in "".join(traceback.format_exception(err.value))
    assert not marker.exists()  # the code it carries never ran


@pytest.fixture
def data(tmp_path) -> Path:
    write_fashion_mnist(tmp_path / "data", n_train=16, n_test=8)
    return tmp_path / "data"


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--data.batch_size=0"], "batch_size must be an integer >= 1, got 0"),
        (["--model.objective=simclr"], "objective must be one of 'minc', 'spectral', 'byol'"),
        (["--model.batch_size=16"], "model.batch_size is set from data.batch_size"),
        (["--checkpoint.every_n_epochs=0"], "checkpoint.every_n_epochs must be >= 1, got 0"),
    ],
)
def test_a_bad_setting_is_one_line_that_names_it(data, tmp_path, monkeypatch, capfd, extra, says):
    argv = ["minc-lightning", "fit", *quick_args(data, tmp_path / "run"), *extra]
    code, printed = run_command(cli.main, argv, monkeypatch, capfd)
    assert code == USER_ERROR_EXIT
    assert says in one_error_line(printed, "minc-lightning")
    if extra[0].startswith("--model.batch_size"):
        assert "set --data.batch_size instead" in printed


def test_a_folder_that_cannot_be_written_is_one_line_that_names_it(
    data, tmp_path, monkeypatch, capfd
):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").write_text("a file where the folder should be")
    argv = ["minc-lightning", "fit", *quick_args(data, tmp_path / "run")]
    code, printed = run_command(cli.main, argv, monkeypatch, capfd)
    assert code == USER_ERROR_EXIT
    assert str(tmp_path / "run" / "checkpoints") in one_error_line(printed, "minc-lightning")


def test_the_debug_switch_shows_the_traceback_and_a_bug_keeps_its_own(
    data, tmp_path, monkeypatch, capfd
):
    argv = ["minc-lightning", "fit", *quick_args(data, tmp_path / "run"), "--data.batch_size=0"]
    monkeypatch.setenv(DEBUG, "1")
    with pytest.raises(ValueError, match="batch_size must be an integer"):
        run_command(cli.main, argv, monkeypatch, capfd)
    monkeypatch.delenv(DEBUG)

    def bug(*args, **kwargs):
        return {}["a key that is not there"]  # not a user's mistake: a bug

    monkeypatch.setattr(cli, "run_cli", bug)
    with pytest.raises(KeyError):
        run_command(cli.main, argv, monkeypatch, capfd)


def test_a_mistyped_root_is_named_and_nothing_is_created_or_fetched(tmp_path, monkeypatch, capfd):
    import socket

    tried = []
    monkeypatch.setattr(socket.socket, "connect", lambda *a: tried.append(a) or 1 / 0)
    root = tmp_path / "nonexistent" / "xyz"
    argv = ["minc-lightning", "fit", *quick_args(root, tmp_path / "run")]
    code, printed = run_command(cli.main, argv, monkeypatch, capfd)
    assert code == USER_ERROR_EXIT
    line = one_error_line(printed, "minc-lightning")
    assert f"Fashion-MNIST not found at {root} (no such folder)" in line
    assert "Expected layout" in line and "--data.download true" in line
    assert not (tmp_path / "nonexistent").exists() and not tried  # nothing made, nothing fetched


@pytest.fixture
def small_disk(tmpfs):
    """A disk that fills up: a 1 MiB tmpfs."""
    return tmpfs("1m")


def test_a_full_disk_names_the_folder_and_keeps_the_previous_file(
    small_disk, data, monkeypatch, capfd
):
    kept = small_disk / "checkpoints" / "last.ckpt"
    atomic_save({"step": torch.tensor(1)}, kept)
    with pytest.raises(NoSpace, match=f"no space left in {kept.parent} to write last.ckpt"):
        atomic_save({"big": torch.zeros(1 << 19)}, kept)  # 2 MiB
    assert load_checkpoint(kept, minc=False)["step"] == 1  # the previous file is whole
    assert sorted(p.name for p in kept.parent.iterdir()) == ["last.ckpt"]  # nothing partial
    kept.unlink()
    (small_disk / "filler").write_bytes(b"\0" * ((1 << 20) - 64 * 1024))
    argv = [
        "minc-lightning",
        "fit",
        *quick_args(data, small_disk / "run"),
        "--model.backbone.init_args.width=32",  # a checkpoint larger than the space left
    ]
    code, printed = run_command(cli.main, argv, monkeypatch, capfd)
    assert code == USER_ERROR_EXIT
    line = one_error_line(printed, "minc-lightning")
    assert "no space left" in line and str(small_disk / "run") in line, line


def test_a_refused_resume_is_one_line_naming_the_file_and_the_setting(
    data, tmp_path, monkeypatch, capfd
):
    fit = ["minc-lightning", "fit", *quick_args(data, tmp_path / "run")]
    monkeypatch.setattr(sys, "argv", fit)
    cli.main()  # a first run: exits normally
    argv = [*fit, "--model.objective=byol", "--ckpt_path=last"]
    code, printed = run_command(cli.main, argv, monkeypatch, capfd)
    assert code == USER_ERROR_EXIT
    line = one_error_line(printed, "minc-lightning")
    assert f"cannot resume {tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}" in line
    assert "model.objective: 'minc' there, 'byol' here" in line
