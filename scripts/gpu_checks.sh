#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run: tests/test_gpu.py (with the CPU tests of the same
# stages beside it) and benchmarks/routing_overhead.py at OLMoE-1B-7B's shape in bf16 (the
# README's GPU rows), the paper's lengths, and the default model. Each step has its own time limit,
# so one that hangs does not take the others with it; every log lands in $OUT (default gpu-checks/).
#
#     bash scripts/gpu_checks.sh [BASELINE_EXTRACTION_PY]
#
# With BASELINE_EXTRACTION_PY (e.g. `git show HEAD~1:src/grokpath/extraction.py > /tmp/base.py`),
# each benchmark also times that extraction.py side by side (`--baseline-extraction`).
# grokpath must be importable (installed, or PYTHONPATH=src), with torch built for CUDA.
set -uo pipefail
out=${OUT:-gpu-checks}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
base=()
if [ $# -ge 1 ]; then base=(--baseline-extraction "$1"); fi
status=0

step() { # step NAME SECONDS COMMAND...: run it under a time limit, its output into $out/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date -u +%T), limit ${limit}s): $*"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log" | grep -v '^{'
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc"
    [ "$rc" -eq 0 ] || status=1
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
bench=(python3 benchmarks/routing_overhead.py --device cuda --dtype bfloat16 "${base[@]}")
step pytest 120 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_devices.py tests/test_extraction.py tests/test_tuning.py
step olmoe 240 "${bench[@]}" --model olmoe --samples 1024 --repeats 3
step olmoe_paper_lengths 120 "${bench[@]}" --model olmoe --lengths 1792 2048 --repeats 3
step default 60 "${bench[@]}" --model default --repeats 10
exit $status
