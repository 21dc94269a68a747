"""W&B for runs that may have no credentials or no network: the logger goes offline instead of
failing (``wandb sync`` uploads the run later) and a resumed run keeps its W&B run id. The
resolved config reaches the run through ``callbacks.save_config``."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn


def wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def wandb_reachable(timeout: float = 5.0) -> bool:
    """Whether W&B's server (``WANDB_BASE_URL``, default api.wandb.ai) accepts a connection
    within ``timeout`` seconds; wandb itself would wait about 100 s before failing."""
    url = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def configure_wandb(config, run_id: str | None) -> None:
    """Offline W&B without credentials or server; a resumed run keeps its W&B ``run_id``."""
    logger = config.get("trainer", {}).get("logger")
    loggers = logger if isinstance(logger, list) else [logger]
    wandb_logger = next(
        (lg for lg in loggers if "WandbLogger" in str(getattr(lg, "class_path", ""))), None
    )
    if wandb_logger is None:
        return
    if not wandb_credentials():
        rank_zero_warn(
            "No W&B credentials found (WANDB_API_KEY or `wandb login`): "
            "logging to W&B offline; `wandb sync` uploads the run later."
        )
        os.environ["WANDB_MODE"] = "offline"
    elif os.environ.get("WANDB_MODE") not in ("offline", "disabled") and not wandb_reachable():
        rank_zero_warn(
            "W&B's server cannot be reached: logging to W&B offline; `wandb sync` uploads "
            "the run later."
        )
        os.environ["WANDB_MODE"] = "offline"
    if run_id:
        wandb_logger.init_args.id = run_id  # WandbLogger resumes a given id
        rank_zero_info(f"minc-lightning: resuming W&B run {run_id}")
