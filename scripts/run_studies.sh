#!/usr/bin/env bash
# Run ablation studies one after another, first seed 1 of every study, then seed 2 (so that a
# sitting cut short leaves every setting with one seed), on one thread.
# Two of these side by side use the 2 cores (how docs/findings.md was produced), together with
# scripts/share_identical_runs.py --watch so that a configuration two studies share trains once:
#   bash scripts/run_studies.sh self_attention beyond salient > runs/ablation/streamA.log 2>&1 &
#   bash scripts/run_studies.sh cross_attention deformable convolution > runs/ablation/streamB.log 2>&1 &
#   python scripts/share_identical_runs.py configs/ablation/*.yaml --data.root ../shared/data \
#       --train.num_threads 1 --watch 30 &
# Every run resumes or is skipped when finished, so the same commands continue an interrupted sitting.
set -euo pipefail
cd "$(dirname "$0")/.."
NMT=${NMT:-.venv/bin/nmt}
DATA_ROOT=${NMT_DATA_ROOT:-../shared/data}
for seeds in "[1]" "[1, 2]"; do
  for study in "$@"; do
    "$NMT" ablate --config "configs/ablation/$study.yaml" --data.root "$DATA_ROOT" \
      --train.num_threads 1 --study.seeds "$seeds" || echo "study $study (seeds $seeds): some run failed" >&2
  done
done
