#!/usr/bin/env bash
# One benchmark sitting: the peers (HF transformers, CTranslate2; ../shared/bench/peers) and our
# toolkit on the same workload, interleaved, each measurement in a fresh process, so that the
# ratios in docs/benchmarks.md are fair on a noisy machine. Run nothing else meanwhile.
#
#   bash scripts/bench_sitting.sh                      # 3 repeats + mechanism variants + epoch (~75 min)
#   REPEATS=1 VARIANTS=0 EPOCH=0 bash scripts/bench_sitting.sh   # one quick repeat (~16 min)
#   TRAIN=0 VARIANTS=0 EPOCH=0 bash scripts/bench_sitting.sh      # decoding only, 3 repeats (~17 min)
#
#   TRAIN=0 VARIANTS=0 EPOCH=0 INT8=1 bash scripts/bench_sitting.sh   # decoding incl. int8 rows (~30 min)
#
# Knobs (environment): PEERS (peer benchmark dir), REPEATS (3), TRAIN (1: the training pair in each
# repeat; 0: decoding only), INT8 (1: our int8 decoder, `--quantize int8`, and our model exported to
# CTranslate2, float32 and int8, in each repeat; 0: not), VARIANTS (1: our other mechanisms, short runs, once), EPOCH (1: our
# end-to-end Multi30k epoch, once), OUT (where the raw JSON lines
# and logs go; default $TMPDIR/sitting). Output: $OUT/sitting.jsonl, one line
# {"name", "rep", "result"} per run, and at the end the tables of scripts/sitting_table.py on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=$(realpath "${PEERS:-../shared/bench/peers}")
REPEATS=${REPEATS:-3}; VARIANTS=${VARIANTS:-1}; EPOCH=${EPOCH:-1}; TRAIN=${TRAIN:-1}; INT8=${INT8:-1}
T=${TMPDIR:-/tmp}; OUT=${OUT:-$T/sitting}
VENV=$T/peers-venv; P=$VENV/bin/python
export PEERS_WORK=$T/peers-work PEERS_OUT=$T/peers-out
RAW=$OUT/sitting.jsonl; LOGS=$OUT/logs
mkdir -p "$PEERS_WORK" "$PEERS_OUT" "$LOGS"; : > "$RAW"

# Set-up, as the peers' run_all.sh steps 1-4: venv, artifacts, CTranslate2 conversion, parity check.
[ -x "$P" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q torch==2.13.0 \
                 && "$VENV/bin/pip" install -q torch==2.13.0 -r "$PEERS/requirements.txt"; }
(cd "$PEERS" && "$P" prepare.py 2>"$LOGS/prepare.err")
for q in float32 int8; do
    [ -f "$PEERS_WORK/ct2_$q/model.bin" ] || "$VENV/bin/ct2-transformers-converter" \
        --model "$PEERS_WORK/hf_marian" --output_dir "$PEERS_WORK/ct2_$q" --quantization $q --force 2>>"$LOGS/convert.err"
done
(cd "$PEERS" && "$P" check_parity.py 2>"$LOGS/parity.err" | tail -n1)
OURS_CT2=$T/ours-ct2  # our benchmark model through nmt.export.ctranslate2, read by the peers' decode_ct2.py
[ "$INT8" = 1 ] && python scripts/bench_export.py --out "$OURS_CT2" 2>"$LOGS/export.err" | tail -n1

record() {  # name rep json
    echo "{\"name\": \"$1\", \"rep\": $2, \"result\": ${3:-null}}" >> "$RAW"
    echo "[sitting] $(date +%H:%M:%S) $1 rep $2 done" >&2
}
peer() { local n=$1; shift; record "$n" "$rep" "$(cd "$PEERS" && "$P" "$@" 2>>"$LOGS/$n.err" | tail -n1)"; }
ours() { local n=$1; shift; record "$n" "$rep" "$(python "$@" --matmul_peak "$PEAK" 2>>"$LOGS/$n.err" | tail -n1)"; }
exported() { local n=$1; shift; record "$n" "$rep" "$(cd "$PEERS" && PEERS_WORK=$OURS_CT2 "$P" "$@" 2>>"$LOGS/$n.err" | tail -n1)"; }

for rep in $(seq "$REPEATS"); do
    peer matmul_peak matmul_peak.py
    PEAK=$(tail -n1 "$RAW" | python -c "import json,sys; print(json.load(sys.stdin)['result']['gflops_median'])")
    peer ct2_float32_b5 decode_ct2.py --compute_type float32 --beam 5
    ours nmt_b5         scripts/bench_decode.py --beam 5
    ours nmt_b5_plain   scripts/bench_decode.py --beam 5 --no_pack
    peer ct2_float32_b1 decode_ct2.py --compute_type float32 --beam 1
    ours nmt_b1         scripts/bench_decode.py --beam 1
    peer ct2_int8_b5    decode_ct2.py --compute_type int8 --beam 5
    peer ct2_int8_b1    decode_ct2.py --compute_type int8 --beam 1
    if [ "$INT8" = 1 ]; then
        ours nmt_b5_int8        scripts/bench_decode.py --beam 5 --quantize int8
        ours nmt_b1_int8        scripts/bench_decode.py --beam 1 --quantize int8
        exported ours_ct2_float32_b5 decode_ct2.py --compute_type float32 --beam 5
        exported ours_ct2_int8_b5    decode_ct2.py --compute_type int8 --beam 5
        exported ours_ct2_int8_b1    decode_ct2.py --compute_type int8 --beam 1
    fi
    peer hf_b5          decode_hf.py --beam 5
    peer hf_b1          decode_hf.py --beam 1
    if [ "$TRAIN" = 1 ]; then
        peer train_hf       train_hf.py
        ours nmt_train      scripts/bench_train.py
    fi
done

rep=1
if [ "$VARIANTS" = 1 ]; then  # our mechanisms against "1000" in short runs (ratios within this block)
    for spec in 1000 1111 0110 0010+deformable dynamic:k=7; do
        cross=1000; [ "$spec" = 1111 ] && cross=1111
        ours "variant_train:$spec" scripts/bench_train.py --spec "$spec" --cross_spec "$cross" --warmup 2 --steps 8
        ours "variant_b5:$spec"    scripts/bench_decode.py --spec "$spec" --cross_spec "$cross" --beam 5 --batches 6
    done
fi
if [ "$EPOCH" = 1 ]; then  # end-to-end: a full Multi30k epoch through our data pipeline
    ours nmt_epoch scripts/bench_train.py --epoch
fi

python scripts/sitting_table.py "$RAW"
