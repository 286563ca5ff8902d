#!/usr/bin/env bash
# Campaign throughput: runs per machine-hour of the campaign model trained (a) as one run on all
# cores, (b) as two runs side by side with one thread each. The peers' fixed batches
# (scripts/bench_train.py); nothing else may run meanwhile.
#
#   bash scripts/bench_streams.sh [SPEC] [STEPS]        # default 1111, 20 timed steps
#
# Prints the JSON lines of every process, then one summary line per mode:
# "mode processes x threads: aggregate target tokens/s, seconds per update of one run".
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:-1111}; steps=${2:-20}
PY=${PYTHON:-.venv/bin/python}
model=(--spec "$spec" --cross_spec "$spec" --d_model 256 --heads 4 --d_ff 1024 --layers 3 --dropout 0.2
       --norm pre --absolute_positions off --warmup 3 --steps "$steps")
out=$(mktemp -d "${TMPDIR:-/tmp}/bench-streams-XXXXXX")
trap 'rm -rf "$out"' EXIT
"$PY" scripts/bench_train.py "${model[@]}" --threads 2 > "$out/a.json" 2>/dev/null
"$PY" scripts/bench_train.py "${model[@]}" --threads 1 > "$out/b1.json" 2>/dev/null &
"$PY" scripts/bench_train.py "${model[@]}" --threads 1 > "$out/b2.json" 2>/dev/null &
wait
cat "$out"/*.json
"$PY" - "$out" <<'PYEOF'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
rec = {p.stem: json.loads(p.read_text().strip().splitlines()[-1]) for p in d.glob("*.json")}
a = rec["a"]
print(f"(a) 1 x 2 threads: {a['tgt_tok_per_s']:.0f} tgt tok/s aggregate, {a['sec_per_step_median']:.3f} s/update")
b = [rec["b1"], rec["b2"]]
agg = sum(r["tgt_tok_per_s"] for r in b)
print(f"(b) 2 x 1 thread: {agg:.0f} tgt tok/s aggregate, "
      f"{sum(r['sec_per_step_median'] for r in b) / 2:.3f} s/update per run; "
      f"runs per machine-hour {agg / a['tgt_tok_per_s']:.2f}x (a)")
PYEOF
