#!/usr/bin/env bash
# Create .venv with the pinned stack. torch is installed first and alone, pinned, so that nothing
# later resolves it to a multi-GB CUDA build; on these machines torch==2.13.0 is a local CPU wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
