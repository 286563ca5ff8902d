"""Decoding speed of our Transformer on the peers' workload (shared/bench/peers/README.md).

The first 512 lines of Multi30k ``test_2016_flickr.en``, encoded with ``spm8k.model`` (ids + [eos]),
in file order, 16 consecutive batches of 32 (right padding, no length sorting). Beam 5 (or
``--beam 1``: greedy), one hypothesis, exactly 32 new tokens per sentence (eos forbidden before 32
tokens, length limit 32). Randomly initialised base model (seeded), ``model.eval()``, inference
mode, fp32, 2 threads. Untimed warm-up: batch 0 once; timed: all 16 batches.

Length penalty: we use alpha = 0 where the peers use HF length_penalty 1. With a forced length every
hypothesis has 32 tokens, so any length penalty divides all scores by the same number and does not
change the ranking (nor the work).

    python scripts/bench_decode.py --beam 5 --matmul_peak 168.7
    python scripts/bench_decode.py --beam 1 --spec 0110
    python scripts/bench_decode.py --beam 5 --quantize int8             # int8 linear layers (nmt.model.quantize)
    python scripts/bench_decode.py --beam 1 --quantize int8 --no_merge  # ... with separate q/k/v projections
    python scripts/bench_decode.py --beam 5 --batches 4 --breakdown     # where the time goes
    python scripts/bench_decode.py --beam 1 --batches 2 --profile --profile_shapes   # per operator and shape
    python scripts/bench_decode.py --d_model 64 --d_ff 128 --heads 2 --layers 1 --batches 2   # smoke

Prints exactly one JSON line (stdout); diagnostics go to stderr. Model FLOPs for MFU (an estimate):
per sentence, the encoder's forward FLOPs once plus ``beam`` x the decoder's forward FLOPs of
``Transformer.flops`` for 32 target tokens (teacher-forced count: dense causal logits, cross K/V
projections per hypothesis; beam bookkeeping not counted).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

from nmt.data.batch import pad_rows
from nmt.data.subwords import Vocab
from nmt.decode.config import DecodeConfig
from nmt.decode.translate import translate_batch
from nmt.inference import prepare_for_inference
from nmt.model.quantize import ENGINES
from nmt.model.transformer import Transformer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as C  # noqa: E402

N_SENT, BATCH, NEW_TOKENS = 512, 32, 32


def decode_batches(data: Path, vocab: Vocab, n_batches: int) -> list[tuple[Tensor, Tensor]]:
    """The first ``n_batches`` batches of 32 source lines: tokens (B, S) and padding mask (B, S)."""
    lines = C.read_lines(data / "test_2016_flickr.en")[:N_SENT]
    if len(lines) < N_SENT:
        raise ValueError(f"{data / 'test_2016_flickr.en'}: {len(lines)} lines, the workload needs {N_SENT}")
    ids = [s + [vocab.eos_id] for s in vocab.encode_src(lines)]
    return [pad_rows(ids[b * BATCH : (b + 1) * BATCH], vocab.pad_id) for b in range(n_batches)]


def workload_config(beam: int) -> DecodeConfig:
    """The workload's search: ``beam``, one hypothesis, exactly ``NEW_TOKENS`` new tokens, alpha 0."""
    return DecodeConfig(beam=beam, alpha=0.0, max_len_a=0.0, max_len_b=NEW_TOKENS, max_len=NEW_TOKENS,
                        min_len=NEW_TOKENS, nbest=1)


def decode_flops(model: Transformer, src_lengths: list[int], beam: int) -> int:
    """Estimated forward FLOPs of decoding: encoder once, decoder (32 tokens) once per hypothesis."""
    total = 0
    for s in src_lengths:
        f = model.flops(s, NEW_TOKENS)
        encoder = f["encoder_self"] + sum(layer.ffn.flops(s) for layer in model.encoder)
        total += encoder + beam * (f["total"] - encoder)
    return total


def breakdown_targets(model: Transformer) -> list[tuple[str, object, str]]:
    """What ``--breakdown`` times: the model's decoding entry points and every decoder sublayer by role."""
    targets: list[tuple[str, object, str]] = [
        ("encode", model, "encode"), ("model.step", model, "step"), ("reorder_state", model, "reorder_state"),
        ("model.step > output projection", model, "logits"),
    ]
    for layer in model.decoder:
        if layer.self_mixer is not None:
            targets.append(("model.step > decoder self-mixing", layer.self_mixer, "step"))
        targets.append(("model.step > cross-mixing", layer.cross_mixer, "step"))
        targets.append(("model.step > feed-forward", layer.ffn, "forward"))
    return targets


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, run the benchmark, print and return the JSON record."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(ap)
    ap.add_argument("--beam", type=int, default=5, help="beam size; 1 = greedy search")
    ap.add_argument("--batches", type=int, default=N_SENT // BATCH, help="timed batches of 32 (16 = the workload)")
    ap.add_argument("--no_pack", action="store_true", help="keep nn.Linear (MKL) instead of the oneDNN-packed "
                    "linear layers (nmt.model.packed; by default packed where the CPU has AVX-512)")
    ap.add_argument("--pack", action="store_true", help="pack even where the CPU's default would not")
    ap.add_argument("--quantize", choices=["int8"], help="run the linear layers as dynamic int8 (what "
                    "`nmt translate --quantize int8` does); the rest stays fp32")
    ap.add_argument("--no_merge", action="store_true", help="keep the self-attention projections separate "
                    "(nmt translate merges them: Transformer.fuse_projections)")
    ap.add_argument("--quantized_engine", choices=ENGINES, help="int8 kernel library (default: PyTorch's, x86)")
    ap.add_argument("--breakdown", action="store_true", help="time the model's parts (encoder, decoder sublayers, "
                    "output projection, reorder) over the timed batches: 'breakdown_s' in the JSON")
    args = ap.parse_args(argv)
    if not 1 <= args.batches <= N_SENT // BATCH:
        ap.error(f"--batches must be in 1..{N_SENT // BATCH}")
    C.setup_process(args)

    peak = C.resolve_peak(args)
    vocab = C.load_vocab(args.peers)
    batches = decode_batches(args.data, vocab, args.batches)
    t = time.perf_counter()
    model = C.build_model(args, vocab).eval()
    model_info = C.model_record(args, model)  # before int8 layers, which hold no parameters, replace nn.Linear
    pack = False if args.no_pack else True if args.pack else None  # None: the CPU's default
    done = prepare_for_inference(model, pack, args.quantize, merge=not args.no_merge,
                                 engine=args.quantized_engine)  # as nmt.inference.load_model does
    load_s = time.perf_counter() - t
    C.log(f"model: {model_info['params']:,} parameters, {done['packed']} packed / {done['int8']} int8 linear layers "
          f"({done['merged']} merged away), built in {load_s:.2f} s")
    cfg = workload_config(args.beam)

    def run(src: Tensor, mask: Tensor) -> list:
        with torch.inference_mode():
            return translate_batch(model, src, mask, cfg, vocab.bos_id, vocab.eos_id, vocab.pad_id)

    t = time.perf_counter()
    run(*batches[0])  # warm-up
    C.log(f"warm-up batch: {time.perf_counter() - t:.2f} s")
    lat, n_new = [], 0
    profile = C.profiled(args.profile, args.profile_rows, args.profile_shapes)
    with profile, C.timed_calls(breakdown_targets(model) if args.breakdown else []) as parts:
        t0 = time.perf_counter()
        for k, (src, mask) in enumerate(batches):
            t = time.perf_counter()
            hyps = run(src, mask)
            lat.append(time.perf_counter() - t)
            for nbest in hyps:
                tokens = nbest[0].tokens
                if len(tokens) != NEW_TOKENS or vocab.eos_id in tokens:
                    raise RuntimeError(f"batch {k}: a hypothesis of {len(tokens)} tokens; the workload forces "
                                       f"exactly {NEW_TOKENS} without eos")
                n_new += len(tokens)
            C.log(f"batch {k}: {lat[-1]:.2f} s")
        total = time.perf_counter() - t0
    n_sent = sum(src.size(0) for src, _ in batches)
    breakdown = None
    if args.breakdown:
        breakdown = {k: round(v, 3) for k, v in parts.items()}
        breakdown["search and the rest"] = round(total - parts["model.step"] - parts["reorder_state"] - parts["encode"], 3)
        C.log(f"breakdown (s, nested names count in their parents): {breakdown}")
    flops = sum(decode_flops(model, (~mask).sum(1).tolist(), args.beam) for _, mask in batches)
    record = {
        "measurement": "decode_nmt", "beam": args.beam, "n_sent": n_sent, "batch": BATCH, "new_tokens": n_new,
        "seconds": round(total, 3), "sent_per_s": round(n_sent / total, 2), "gen_tok_per_s": round(n_new / total, 1),
        "batch_latency_median_s": round(statistics.median(lat), 4),
        "model_tflop": round(flops / 1e12, 3), "mfu": C.mfu(flops, total, peak),
        "flops_method": "encoder once + beam x decoder, Transformer.flops (forward) over real source lengths",
        "length_penalty": "alpha 0 (forced length 32: any penalty leaves the ranking unchanged)",
        **model_info, "packed_linears": done["packed"], "merged_linears": done["merged"], "quantize": args.quantize,
        "int8_linears": done["int8"],
        "quantized_engine": torch.backends.quantized.engine if args.quantize else None,
        "matmul_peak": peak, "profiled": args.profile,
        "load_s": round(load_s, 2), "peak_rss_mib": C.peak_rss_mib(), "breakdown_s": breakdown, **C.env_info(),
    }
    C.emit(record)
    return record


if __name__ == "__main__":
    main()
