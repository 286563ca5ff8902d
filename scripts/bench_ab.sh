#!/usr/bin/env bash
# A/B of a speed change: alternate a git revision (A) and the working tree (B) on one benchmark,
# each run in a fresh process, so that both see the same machine noise.
#
#   bash scripts/bench_ab.sh REV REPEATS SCRIPT [ARGS...]
#   bash scripts/bench_ab.sh HEAD~1 3 scripts/bench_decode.py --beam 5 --batches 6
#
# Prints one line per run: "A|B <sent_per_s or tgt_tok_per_s> <median batch latency or step s> <peak RSS MiB>".
# Revision A is checked out (detached) in a temporary worktree that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n 2,9p "$0"; exit 2; }
rev=$1; reps=$2; shift 2
here=$(pwd)
tree=$(mktemp -d "${TMPDIR:-/tmp}/bench-ab-XXXXXX")
trap 'git -C "$here" worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"' EXIT
git worktree add -q --detach "$tree" "$rev"
for _ in $(seq "$reps"); do
    for side in A B; do
        dir=$here; [ "$side" = A ] && dir=$tree
        # the data and peer files are read from the working tree's ../shared, whichever side runs
        (cd "$dir" && PYTHONPATH=$dir python "$@" --data "$(realpath "$here/../shared/data/multi30k")" \
            --peers "$(realpath "$here/../shared/bench/peers")" 2>/dev/null) | python -c "
import json, sys
r = json.loads(sys.stdin.read().strip().splitlines()[-1])
speed = r.get('sent_per_s', r.get('tgt_tok_per_s'))
lat = r.get('batch_latency_median_s', r.get('sec_per_step_median'))
print('$side', speed, lat, r.get('peak_rss_mib'))"
    done
done
