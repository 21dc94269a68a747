"""Writes that cannot destroy what was there: checkpoints and exports."""

import os
import signal
import subprocess
import sys
import tempfile
import textwrap

import pytest
import torch

from minc_lightning.checkpoint_files import atomic_save, find_last, load_checkpoint
from minc_lightning.commands.export import export

KILL_DURING_WRITE = textwrap.dedent(
    """
    import os, signal, sys, torch
    from minc_lightning.callbacks.checkpoint import AtomicCheckpointIO

    path = sys.argv[1]
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": torch.tensor(1), "big": torch.zeros(1 << 16)}, path)
    real_save = torch.save

    def save_then_die(obj, f, *args, **kwargs):  # half a file on disk, then a node failure
        f.write(b"PK\\x03\\x04" + b"x" * 100_000)
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = save_then_die
    io.save_checkpoint({"step": torch.tensor(2), "big": torch.ones(1 << 16)}, path)
    """
)


@pytest.fixture
def other_filesystem(tmpfs):
    """Another filesystem than $TMPDIR (a tmpfs)."""
    folder = tmpfs("64m")
    assert os.stat(folder).st_dev != os.stat(tempfile.gettempdir()).st_dev
    return folder


@pytest.mark.slow  # a process killed mid-write
def test_kill_during_a_checkpoint_write_on_another_filesystem_keeps_the_previous(
    other_filesystem,
):
    last = other_filesystem / "checkpoints" / "last.ckpt"
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_WRITE, str(last)], timeout=120)
    assert killed.returncode == -signal.SIGKILL
    kept = load_checkpoint(last, minc=False)  # whole: the write in progress did not replace it
    assert kept["step"] == 1 and torch.equal(kept["big"], torch.zeros(1 << 16))
    partial = [p.name for p in last.parent.iterdir() if p.name != "last.ckpt"]
    assert len(partial) == 1 and partial[0].startswith(".last.ckpt.")  # in the same folder
    assert find_last(last.parent)[0] == last  # a partial file is never taken for `last`
    atomic_save({"step": torch.tensor(3)}, last)  # the next write clears what the kill left
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
    mask = os.umask(0o022)
    os.umask(mask)
    assert last.stat().st_mode & 0o777 == 0o666 & ~mask  # as any file the user writes


def test_writes_to_a_directory_or_an_unwritable_folder_name_the_path(tmp_path):
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        atomic_save({}, tmp_path)
    blocker = tmp_path / "a file"
    blocker.write_text("where a folder was expected")
    with pytest.raises(OSError, match="cannot write .*a file/x.pt"):
        atomic_save({}, blocker / "x.pt")


def test_export_refuses_to_overwrite_its_input(tmp_path):
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"not read: refused before")
    with pytest.raises(ValueError, match="would overwrite .*the input checkpoint"):
        export(str(ckpt), str(ckpt))
    with pytest.raises(ValueError, match="would overwrite .*the input checkpoint"):
        export(str(tmp_path / "." / "last.ckpt"), str(ckpt))
    with pytest.raises(IsADirectoryError, match=f"--out {tmp_path} is a directory"):
        export(str(ckpt), str(tmp_path))
    assert ckpt.read_bytes() == b"not read: refused before"


def test_export_into_a_folder_below_a_checkpoint_directory_is_refused(tmp_path):
    ckpt = tmp_path / "sharded.ckpt"  # a checkpoint that is a folder (sharded strategies)
    ckpt.mkdir()
    with pytest.raises(ValueError, match="would overwrite \\(or sit inside\\)"):
        export(str(ckpt), str(ckpt / "backbone.pt"))


def test_last_is_the_newest_resumable_state_also_when_lightning_wrote_an_hpc_checkpoint(tmp_path):
    """Lightning's SLURM auto-requeue writes hpc_ckpt_N.ckpt in the run folder; `last` takes
    whichever of it and last.ckpt is newer."""
    folder = tmp_path / "checkpoints"
    atomic_save({"step": 1}, folder / "last.ckpt")
    hpc = atomic_save({"step": 2}, tmp_path / "hpc_ckpt_1.ckpt")
    os.utime(hpc, ns=(os.stat(folder / "last.ckpt").st_mtime_ns + 10**9,) * 2)
    assert find_last(folder)[0] == hpc
    newer = atomic_save({"step": 3}, folder / "last.ckpt")
    os.utime(newer, ns=(os.stat(hpc).st_mtime_ns + 10**9,) * 2)
    assert find_last(folder)[0] == newer


@pytest.mark.parametrize("failure", [RuntimeError("a log write failed"), SystemExit(75)])
def test_a_run_that_fails_after_a_checkpoint_names_the_safe_one(tmp_path, capsys, failure):
    """The checkpoint callback itself says, on the failure, which checkpoint is whole; a stop
    by signal (a SystemExit) says its own thing instead."""
    from helpers import loaders, tiny_module, trainer
    from lightning.pytorch import Callback

    from minc_lightning.callbacks import ResumableCheckpoint

    class FailAtStep3(Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.global_step == 3:
                raise failure

    saver = ResumableCheckpoint(dirpath=str(tmp_path), every_n_train_steps=2)
    callbacks = [saver, FailAtStep3()]
    fit = trainer(
        max_epochs=1, callbacks=callbacks, enable_checkpointing=True, default_root_dir=tmp_path
    )
    with pytest.raises(type(failure)):
        fit.fit(tiny_module(), *loaders())
    said = capsys.readouterr().err
    if isinstance(failure, SystemExit):
        assert "which is whole" not in said
    else:
        assert f"its checkpoint {saver.written}, which is whole" in said
        assert load_checkpoint(saver.written)["global_step"] == 2
