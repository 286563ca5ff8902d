#!/usr/bin/env bash
# Set up, then run the test suite: all three tiers by default (what CI runs), or one of them.
#   bash scripts/test.sh                      unit, integration and system tests
#   bash scripts/test.sh --tier unit          one component at a time (tests/unit)
#   bash scripts/test.sh --tier integration   components together on synthetic data, tiny models (tests/integration)
#   bash scripts/test.sh --tier system        real data from ../shared/data, quality assertions (tests/system)
# Other arguments go to pytest (e.g. -x, -k NAME, a test file).
# The full run (no arguments, what CI runs) then runs the numerically sensitive tests (int8,
# oneDNN-packed weights, CTranslate2 export, decoding equalities, golden outputs) a second time with
# the CPU capabilities forced down to plain AVX2 (PyTorch, oneDNN, MKL and CTranslate2 alike), so
# that a dependence on AVX-512 or AMX shows on any machine.
set -euo pipefail
cd "$(dirname "$0")/.."
TIER=()
if [ "${1:-}" = "--tier" ]; then
  case "${2:-}" in
    unit|integration|system) TIER=(-m "$2"); shift 2 ;;
    *) echo "scripts/test.sh: --tier takes unit, integration or system (got '${2:-}')" >&2; exit 2 ;;
  esac
fi
bash scripts/setup.sh
.venv/bin/python -m pytest -q "${TIER[@]}" "$@"
if [ ${#TIER[@]} -eq 0 ] && [ $# -eq 0 ]; then
  echo "== the numerically sensitive tests again, CPU capabilities forced down to AVX2"
  ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 CT2_FORCE_CPU_ISA=AVX2 \
    .venv/bin/python -m pytest -q -p no:cacheprovider tests/unit/model tests/unit/decode \
    tests/integration/model tests/integration/decode tests/integration/export \
    tests/integration/train/test_golden_training.py
fi
