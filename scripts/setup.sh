#!/usr/bin/env bash
# Set-up on a fresh clone: a virtual environment in .venv with the CPU torch wheel and the package.
# TORCH_SPEC overrides the torch requirement (e.g. a CUDA build on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  # --system-site-packages reuses an already installed torch instead of downloading it again
  "$PY" -m venv --system-site-packages .venv
fi
# torch first, pinned to the local CPU wheel, so that no dependency pulls a multi-GB CUDA build
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e '.[dev,export]'
