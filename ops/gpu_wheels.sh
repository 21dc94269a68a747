#!/usr/bin/env bash
# The wheels the GPU machine lacks (Python 3.12, manylinux x86_64) into .whl/ (ignored by git):
#   bash ops/gpu_wheels.sh [--out .whl] [--limit_mib 60]
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" ops/gpu_wheels.py "$@"
