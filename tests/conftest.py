"""Fixtures shared by the test modules."""

import os
import subprocess

import pytest

if "PYTEST_XDIST_WORKER" in os.environ:  # `pytest -n N`: N workers share the cores
    # one torch thread each, set before torch loads: two 2-thread workers on 2 cores spin
    # against each other (the fast loop took 164 s so, 53 s with one thread each)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B offline, writing under tmp_path, and tmp_path as the working directory."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size)``: a tmpfs of ``size`` ("64m") mounted on a new folder of tmp_path and
    unmounted after the test (root only; the test is skipped elsewhere)."""
    mounted = []

    def mount(size: str):
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)
