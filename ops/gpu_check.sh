#!/usr/bin/env bash
# Every GPU figure the project states, in one run (ops/gpu_check.py):
#   bash ops/gpu_check.sh OUT_DIR            # on the GPU machine, wheels carried in .whl/
#   bash ops/gpu_check.sh OUT_DIR --dry-run  # here, on the CPU, tiny sizes
# Writes OUT_DIR/results.json and OUT_DIR/summary.md (docs/gpu.md's tables).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: gpu_check.sh OUT_DIR [--dry-run]}
shift
python=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && python=.venv/bin/python
if ! "$python" -c "import lightly, kornia, jsonargparse" 2>/dev/null; then
  # the GPU machine lacks these: the wheels ops/gpu_wheels.sh fetched travel in .whl/
  ls .whl/*.whl >/dev/null 2>&1 || { echo "gpu_check: no wheels in .whl/ (run ops/gpu_wheels.sh)" >&2; exit 2; }
  site=$(mktemp -d)
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec timeout 480 "$python" -m ops.gpu_check --out "$out" "$@"
