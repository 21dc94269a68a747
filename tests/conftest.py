"""Fixtures shared by the test modules."""

import pytest


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B offline, writing under tmp_path, and tmp_path as the working directory."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
