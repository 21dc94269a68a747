"""A digest of a config's final weights, to show that a change leaves training bit-identical.

    python -m benchmarks.weights_digest                    # the quickstart, about 5 minutes
    python -m benchmarks.weights_digest --trainer.max_steps=20

Trains ``--config`` (the quickstart by default) through the ``minc-lightning`` CLI into a
temporary folder and prints one SHA-256 over every tensor of the final ``state_dict``, in key
order, with the step it reached. Run it before and after a change: equal digests are equal
weights, bit for bit.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.common import CLI_HELP, ROOT
from minc_lightning.commands.fit import run_cli


def digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=CLI_HELP)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "quickstart.yaml")
    args, cli_args = parser.parse_known_args()
    sys.argv = sys.argv[:1]
    with tempfile.TemporaryDirectory() as run:
        cli = run_cli(
            [
                "fit",
                f"--config={args.config}",
                f"--trainer.default_root_dir={run}",
                "--trainer.logger=false",
                "--trainer.enable_progress_bar=false",
                *cli_args,
            ]
        )
    state = cli.model.state_dict()
    print(
        f"{args.config.name}: step {cli.trainer.global_step}, {len(state)} tensors, "
        f"sha256 {digest(state)}"
    )


if __name__ == "__main__":
    main()
