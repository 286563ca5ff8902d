#!/usr/bin/env bash
# The main job: set up, train the small Multi30k en->de model, translate the test set, score it.
# Extra arguments are passed to `nmt fit` (e.g. --train.max_time_minutes 5 for a quick look).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# default data location is data/multi30k; without it (and without network) use ../shared/data
if [ ! -d data/multi30k ] && [ -z "${NMT_DATA_ROOT:-}" ] && [ -d ../shared/data/multi30k ]; then
  export NMT_DATA_ROOT=../shared/data
fi
NMT=.venv/bin/nmt
$NMT prepare --config configs/multi30k_small.yaml
$NMT fit --config configs/multi30k_small.yaml --ckpt_path auto "$@"
RUN=runs/multi30k_small
ROOT=${NMT_DATA_ROOT:-data}
echo "== test_2016_flickr, last checkpoint (beam 5, alpha 0.6)"
$NMT translate --checkpoint $RUN/checkpoints/last.ckpt --beam 5 \
  --input "$ROOT/multi30k/test_2016_flickr.en" --output $RUN/test_2016_flickr.hyp.de
$NMT score --hyp $RUN/test_2016_flickr.hyp.de --ref "$ROOT/multi30k/test_2016_flickr.de" --metrics bleu chrf
# The final model, chosen on the validation set only: the average of the N best checkpoints (N by val
# BLEU) and the length penalty alpha (by val BLEU); written with its alpha to final.ckpt (+ final.json).
$NMT select --dir $RUN/checkpoints --output $RUN/final.ckpt
echo "== test_2016_flickr, final model (selected on val; beam 5, its alpha)"
$NMT translate --checkpoint $RUN/final.ckpt --beam 5 \
  --input "$ROOT/multi30k/test_2016_flickr.en" --output $RUN/test_2016_flickr.final.hyp.de
$NMT score --hyp $RUN/test_2016_flickr.final.hyp.de --ref "$ROOT/multi30k/test_2016_flickr.de" --metrics bleu chrf
