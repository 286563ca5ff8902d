#!/usr/bin/env bash
# Set up, then run the test suite: all three tiers by default (what CI runs), or one of them.
#   bash scripts/test.sh                      unit, integration and system tests
#   bash scripts/test.sh --tier unit          one component at a time (tests/unit)
#   bash scripts/test.sh --tier integration   components together on synthetic data, tiny models (tests/integration)
#   bash scripts/test.sh --tier system        real data from ../shared/data, quality assertions (tests/system)
# Other arguments go to pytest (e.g. -x, -k NAME, a test file).
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
exec .venv/bin/python -m pytest -q "${TIER[@]}" "$@"
