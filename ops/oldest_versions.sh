#!/usr/bin/env bash
# The test suite on the oldest versions pyproject.toml claims (torch 2.11 and torchvision 0.26
# are also the GPU machine's), in a venv of its own (about 5 GB: a CUDA build of torch):
#   bash ops/oldest_versions.sh [VENV_DIR] [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-/tmp/minc-oldest}
shift || true
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q torch==2.11.0 torchvision==0.26.0 lightning==2.6.0 torchmetrics==1.9.0 \
  lightly==1.5.23 "jsonargparse[signatures]==4.39.0" kornia==0.8.0 wandb==0.17.0 \
  matplotlib==3.8.0 timm==1.0.9 "pytest>=8"
"$venv/bin/pip" install -q --no-deps -e .
"$venv/bin/pip" list 2>/dev/null | grep -E -i "^(torch|torchvision|lightning|torchmetrics|lightly|jsonargparse|kornia|wandb|matplotlib|timm|numpy) "
exec "$venv/bin/python" -m pytest "$@"
