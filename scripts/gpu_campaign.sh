#!/usr/bin/env bash
# The reproduction campaign (configs/ablation/repro/campaign.yaml) on one GPU for a fixed time, from
# prepared data alone (no network), with the finished runs' records collected into one folder.
#
# 1. Here (CPU, once): copy the raw text of the campaign's corpora and prepare every family's
#    subword model and binarized splits into data/gpu/ (raw text stays needed: the test references
#    and the cache fingerprints are read from it):
#      bash scripts/gpu_campaign.sh prepare            # DATA_ROOT=../shared/data by default
# 2. On the GPU machine, with data/gpu carried along (and the venv):
#      OUT=/some/folder BUDGET_S=480 STREAMS=4 bash scripts/gpu_campaign.sh run
#    STREAMS studies train side by side on the one GPU (the models are small), each study resuming
#    where it stopped and skipping finished runs; after BUDGET_S seconds every stream is stopped
#    with SIGINT (the run in progress is lost; finished runs are kept). Each finished run's record
#    and hypotheses land in the study's records_dir (docs/findings/repro/...), copied to
#    $OUT/repro/ with the campaign status; commit them from there, then `nmt ablate --config
#    configs/ablation/repro/campaign.yaml --report_only` rebuilds tables, plots and verdicts.
#    The same study commands as on CPU, plus --train.accelerator gpu --train.precision bf16-mixed.
# DRY=1 prints the commands instead of running them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export PYTHONPATH=${PYTHONPATH:-$PWD}
GPU_DATA=${GPU_DATA:-data/gpu}
CAMPAIGN=configs/ablation/repro/campaign.yaml
DATA_ARGS=(--data.root "$GPU_DATA/raw" --data.prepared_dir "$GPU_DATA/prepared")
run() { if [[ "${DRY:-0}" == 1 ]]; then echo "$*"; else "$@"; fi; }

# the campaign's study files, in campaign order (primary family first)
studies() {
  "$PY" - "$CAMPAIGN" <<'PYEOF'
import sys
from pathlib import Path
import yaml
path = Path(sys.argv[1])
seen = []
for fam in yaml.safe_load(path.read_text())["families"]:
    for rel in fam["studies"].values():
        p = (path.parent / rel).as_posix()
        if p not in seen:
            seen.append(p)
print("\n".join(seen))
PYEOF
}

case "${1:-}" in
  prepare)
    DATA_ROOT=${DATA_ROOT:-../shared/data}
    for corpus in multi30k tatoeba-deu-eng; do
      mkdir -p "$GPU_DATA/raw/$corpus"
      for f in "$DATA_ROOT/$corpus"/*.{en,de}; do run cp "$f" "$GPU_DATA/raw/$corpus/"; done
    done
    # one study per family and direction covers every data config of the campaign
    for study in $(studies); do
      run "$PY" - "$study" "${DATA_ARGS[@]}" <<'PYEOF'
import sys
from nmt.ablate.study import load_study
from nmt.data.prepare import prepare
study = load_study(sys.argv[1], [("data.root", sys.argv[3]), ("data.prepared_dir", sys.argv[5])])
prepare(study.experiment(study.settings[0].label, study.seeds[0]).data, progress=False)
PYEOF
    done
    du -sh "$GPU_DATA"
    ;;
  run)
    OUT=${OUT:?set OUT to the folder that receives the results}
    BUDGET_S=${BUDGET_S:-480}
    STREAMS=${STREAMS:-4}
    mkdir -p "$OUT/logs"
    mapfile -t ALL < <(studies)
    pids=()
    for ((s = 0; s < STREAMS; s++)); do
      (
        for ((i = s; i < ${#ALL[@]}; i += STREAMS)); do
          name=$(basename "$(dirname "${ALL[$i]}")")-$(basename "${ALL[$i]}" .yaml)
          run "$PY" -m nmt.cli ablate --config "${ALL[$i]}" "${DATA_ARGS[@]}" \
            --train.accelerator gpu --train.devices 1 --train.precision bf16-mixed --train.num_threads 4 \
            >> "$OUT/logs/$name.log" 2>&1 || echo "study ${ALL[$i]}: stopped or some run failed" >> "$OUT/logs/streams.log"
        done
      ) &
      pids+=($!)
    done
    # the deadline: SIGINT to each stream's training process, SIGKILL 30 s later if still there
    ( sleep "$BUDGET_S"
      for p in "${pids[@]}"; do pkill -INT -P "$p" 2>/dev/null || true; done
      sleep 30
      for p in "${pids[@]}"; do pkill -KILL -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
    ) &
    watcher=$!
    wait "${pids[@]}" || true
    kill "$watcher" 2>/dev/null || true
    mkdir -p "$OUT/repro"
    [[ -d docs/findings/repro ]] && cp -r docs/findings/repro/. "$OUT/repro/"
    "$PY" -m nmt.cli ablate --config "$CAMPAIGN" "${DATA_ARGS[@]}" --status > "$OUT/status.md" 2>> "$OUT/logs/streams.log" || true
    ;;
  *)
    echo "usage: bash scripts/gpu_campaign.sh prepare | run   (see the header)" >&2
    exit 2
    ;;
esac
