"""Data pipeline speed on real corpora: SentencePiece training, encoding (sentences/s) and batch
iteration (tokens/s). One JSON line per measurement on stdout.

    python scripts/bench_data.py                       # Multi30k and Tatoeba from ../shared/data
    python scripts/bench_data.py --corpora multi30k --shared /path/to/data
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from nmt.data.config import BatchConfig, DataConfig, SubwordConfig
from nmt.data.datamodule import NMTDataModule
from nmt.data.prepare import run

CORPORA = {
    "multi30k": {"splits": {"train": "train", "valid": "val", "test": "test_2016_flickr"}},
    "tatoeba-deu-eng": {"splits": {"train": "train", "valid": "dev", "test": "test"}},
}


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


def bench(corpus: str, shared: Path, work: Path, vocab_size: int, max_tokens: int, epochs: int) -> None:
    cfg = DataConfig(root=str(shared), corpus=corpus, prepared_dir=str(work), splits=CORPORA[corpus]["splits"],
                     subword=SubwordConfig(vocab_size=vocab_size), batch=BatchConfig(max_tokens=max_tokens))
    t0 = time.perf_counter()
    data, summary = run(cfg)
    cold = time.perf_counter() - t0
    pairs = sum(s.input_pairs for s in summary.splits.values())
    emit(corpus=corpus, measure="prepare_cold", seconds=round(cold, 2), pairs=pairs,
         note="read+validate, SentencePiece training, encode, filter, write")

    for split in data.splits.values():  # drop the encoded splits, keep the subword model
        shutil.rmtree(split.directory)
    t0 = time.perf_counter()
    run(cfg)
    enc = time.perf_counter() - t0
    emit(corpus=corpus, measure="encode", seconds=round(enc, 2), pairs=pairs, sentences_per_s=round(2 * pairs / enc),
         pairs_per_s=round(pairs / enc), note="read+validate, encode both sides, filter, write (model cached)")

    t0 = time.perf_counter()
    run(cfg)
    emit(corpus=corpus, measure="prepare_cached", seconds=round(time.perf_counter() - t0, 3))

    dm = NMTDataModule(cfg)
    loader = dm.train_dataloader()
    sampler = dm.train_sampler()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        n_batches = src_tok = tgt_tok = padded = 0
        for batch in loader:
            n_batches += 1
            src_tok += batch.n_src_tokens
            tgt_tok += batch.n_tgt_tokens
            padded += batch.src.numel() + batch.tgt_out.numel()
        dt = time.perf_counter() - t0
        emit(corpus=corpus, measure="train_iteration", epoch=epoch, seconds=round(dt, 3), batches=n_batches,
             max_tokens=max_tokens, tgt_tokens=tgt_tok, src_tokens=src_tok,
             tgt_tokens_per_s=round(tgt_tok / dt), src_tgt_tokens_per_s=round((src_tok + tgt_tok) / dt),
             padding_share=round(1 - (src_tok + tgt_tok) / padded, 4), split_batches=sampler.n_split)

    t0 = time.perf_counter()
    n = sum(b.n_tgt_tokens for b in dm.val_dataloader())
    dt = time.perf_counter() - t0
    emit(corpus=corpus, measure="valid_iteration", seconds=round(dt, 3), tgt_tokens=n, tgt_tokens_per_s=round(n / dt))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.environ.get("NMT_SHARED_DATA", "../shared/data"),
                    help="folder holding multi30k/ and tatoeba-deu-eng/")
    ap.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--max-tokens", type=int, default=4096)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--work", default=None, help="prepared-data folder (default: a temporary one, removed)")
    args = ap.parse_args()
    emit(measure="machine", cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
         python=platform.python_version())
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        for corpus in args.corpora:
            bench(corpus, Path(args.shared), work, args.vocab_size, args.max_tokens, args.epochs)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
