#!/usr/bin/env bash
# Run (or resume) the reproduction campaign in the background as STREAMS processes side by side
# (default 2: one thread each on a 2-core machine, the fastest measured layout, docs/benchmarks.md).
# Each process takes the next run no other holds (nmt ablate's run locks), so the streams share the
# campaign's runs; the data of every Multi30k family is prepared first, once.
#
#   bash scripts/campaign.sh                 # start or resume; logs in runs/campaign/stream<k>.log
#   STREAMS=1 bash scripts/campaign.sh       # one stream
#   bash scripts/campaign.sh stop            # SIGTERM every stream (each writes last.ckpt, resumable)
#   .venv/bin/nmt ablate --config configs/ablation/repro/campaign.yaml --status
set -euo pipefail
cd "$(dirname "$0")/.."
config=${CONFIG:-configs/ablation/repro/campaign.yaml}
root=${DATA_ROOT:-../shared/data}
logs=runs/campaign
mkdir -p "$logs"
if [ "${1:-}" = "stop" ]; then
    for f in "$logs"/stream*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" && echo "stopping stream $(basename "$f" .pid) ($pid)"; fi
        rm -f "$f"
    done
    exit 0
fi
for f in "$logs"/stream*.pid; do
    if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
        echo "scripts/campaign.sh: $(basename "$f" .pid) is still running (pid $(cat "$f")); stop it first" >&2
        exit 2
    fi
done
[ -x .venv/bin/nmt ] || bash scripts/setup.sh
for pair in "en de" "de en"; do
    set -- $pair
    .venv/bin/nmt prepare --config configs/multi30k_small.yaml --data.root "$root" \
        --data.src_lang "$1" --data.tgt_lang "$2" > "$logs/prepare.$1-$2.log" 2>&1
done
for k in $(seq "${STREAMS:-2}"); do
    nohup .venv/bin/nmt ablate --config "$config" --data.root "$root" >> "$logs/stream$k.log" 2>&1 &
    echo $! > "$logs/stream$k.pid"
    echo "stream $k: pid $!, log $logs/stream$k.log"
    sleep 20  # the first stream claims its run before the next one looks
done
