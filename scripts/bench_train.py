"""Training throughput of our Transformer on the peers' workload (shared/bench/peers/README.md).

Default mode: the 25 batches of ``train_batches.json`` (sentence indices into Multi30k train,
~4096 padded target tokens each), encoded with ``spm8k.model``: src = ids + [eos], labels =
ids + [eos], decoder input = [bos] + ids, right padding with pad 7999. Base model (512/2048/8
heads/6+6, shared and tied embeddings, post-norm like the peers' Marian model, dropout 0.1), AdamW
lr 5e-4 betas (0.9, 0.98) eps 1e-9 (our fused kernel; ``--no_fused_adam``: the peers' for-each one),
label smoothing 0.1, fp32 (``--bf16``: bfloat16 autocast). Steps 0-4 untimed warm-up, steps
5-24 timed: forward + loss + zero_grad + backward + AdamW step, ending with ``loss.item()``.
Our loss projects to the vocabulary only the non-pad target rows (as ``TranslationTask`` does).

``--epoch``: end-to-end throughput over a Multi30k epoch through our own data pipeline
(``NMTDataModule``, token-budget bucketing, ``spm8k.model`` via ``data.subword.model``); the clock
runs continuously after the warm-up steps, so batch building and loading are included.

    python scripts/bench_train.py --matmul_peak 168.7
    python scripts/bench_train.py --spec 0110 --matmul_peak 168.7
    python scripts/bench_train.py --epoch --max_steps 40
    python scripts/bench_train.py --d_model 64 --d_ff 128 --heads 2 --layers 1 --warmup 1 --steps 1   # smoke

Prints exactly one JSON line (stdout); diagnostics go to stderr. Model FLOPs for MFU: 3 x the forward
FLOPs of ``Transformer.flops`` summed over each sentence's real (unpadded) lengths.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from nmt.data.batch import Batch, collate_pairs
from nmt.data.subwords import Vocab
from nmt.model.transformer import Transformer
from nmt.train.config import OptimConfig
from nmt.train.loss import label_smoothed_nll
from nmt.train.schedule import build_optimizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as C  # noqa: E402

LABEL_SMOOTHING = 0.1


def pad_batch(src: list[list[int]], tgt: list[list[int]], vocab: Vocab) -> Batch:
    """Padded ``Batch`` of encoded pairs (ids without eos): src/labels + [eos], decoder input [bos] + ids."""
    return collate_pairs(src, tgt, range(len(src)), vocab.pad_id, vocab.bos_id, vocab.eos_id)


def fixed_batches(peers: Path, data: Path, vocab: Vocab, n: int) -> list[Batch]:
    """The first ``n`` batches of ``train_batches.json``, token counts checked against the file."""
    spec = json.loads((peers / "train_batches.json").read_text())
    if spec.get("spm_model_md5") != C.SPM_MD5:
        raise ValueError(f"{peers / 'train_batches.json'}: made with another spm model ({spec.get('spm_model_md5')})")
    if n > len(spec["batches"]):
        raise ValueError(f"--warmup + --steps = {n} exceeds the {len(spec['batches'])} batches of train_batches.json")
    src_lines, tgt_lines = C.read_lines(data / "train.en"), C.read_lines(data / "train.de")
    batches = []
    for k, b in enumerate(spec["batches"][:n]):
        idx = b["indices"]
        src = vocab.encode_src([src_lines[i] for i in idx])
        tgt = vocab.encode_tgt([tgt_lines[i] for i in idx])
        batch = pad_batch(src, tgt, vocab)
        if (batch.n_src_tokens, batch.n_tgt_tokens) != (b["src_tokens"], b["tgt_tokens"]):
            raise ValueError(f"batch {k}: {batch.n_src_tokens}/{batch.n_tgt_tokens} src/tgt tokens, "
                             f"train_batches.json says {b['src_tokens']}/{b['tgt_tokens']}")
        batches.append(batch)
    return batches


class Trainer:
    """One optimisation step of our toolkit's training, without Lightning (the workload's timed unit)."""

    def __init__(self, model: Transformer, compile_model: bool, fused: bool = True, bf16: bool = False) -> None:
        self.model = model.train()
        self.bf16 = bf16  # forward and loss under CPU autocast to bfloat16 (Lightning's "bf16-mixed")
        self.forward = torch.compile(model, dynamic=True) if compile_model else model
        # The peers' AdamW settings through our toolkit's optimiser factory (fused kernel by default).
        optim = OptimConfig(optimizer="adamw", lr=5e-4, betas=[0.9, 0.98], eps=1e-9, weight_decay=0.0, fused=fused)
        self.opt = build_optimizer(model, optim, None)["optimizer"]
        self._flops: dict[tuple[int, int], int] = {}

    def step(self, batch: Batch) -> float:
        """Forward, label-smoothed loss over non-pad targets, backward, AdamW; returns the loss value."""
        # No target padding mask: right padding + causal decoder mixing (as the peers).
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            hidden = self.forward(batch.src, batch.src_padding_mask, batch.tgt_in)  # (B, T, D)
            keep = ~batch.tgt_padding_mask  # (B, T)
            logits = self.model.logits(hidden[keep])  # (N, V) real target positions only
            loss = label_smoothed_nll(logits, batch.tgt_out[keep], LABEL_SMOOTHING).loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach().item()

    def flops(self, batch: Batch) -> int:
        """Training FLOPs of the batch: 3 x forward FLOPs over every sentence's real lengths."""
        src_len = (~batch.src_padding_mask).sum(1).tolist()
        tgt_len = (~batch.tgt_padding_mask).sum(1).tolist()
        total = 0
        for s, t in zip(src_len, tgt_len):
            if (s, t) not in self._flops:
                self._flops[(s, t)] = self.model.flops(s, t)["total"]
            total += self._flops[(s, t)]
        return 3 * total


def throughput(tgt: int, src: int, seconds: float, flops: int, peak: dict | None) -> dict:
    """Tokens per second and MFU of a timed stretch."""
    return {
        "tgt_tokens": tgt, "src_tokens": src, "timed_seconds": round(seconds, 3),
        "tgt_tok_per_s": round(tgt / seconds, 1), "src_tgt_tok_per_s": round((src + tgt) / seconds, 1),
        "model_tflop": round(flops / 1e12, 3), "mfu": C.mfu(flops, seconds, peak),
    }


def run_fixed(args: argparse.Namespace, trainer: Trainer, batches: list[Batch], peak: dict | None) -> dict:
    """The peers' 25-batch workload: untimed warm-up steps, then each step timed on its own."""
    losses, times, first = [], [], None
    t_all = time.perf_counter()
    for k, batch in enumerate(batches[: args.warmup]):
        t = time.perf_counter()
        losses.append(trainer.step(batch))
        first = first if first is not None else time.perf_counter() - t
        C.log(f"warm-up step {k}: {time.perf_counter() - t:.2f} s, loss {losses[-1]:.3f}")
    warm = time.perf_counter() - t_all
    timed = batches[args.warmup:]
    with C.profiled(args.profile, args.profile_rows, args.profile_shapes):
        for k, batch in enumerate(timed):
            t = time.perf_counter()
            losses.append(trainer.step(batch))
            times.append(time.perf_counter() - t)
            C.log(f"step {args.warmup + k}: {times[-1]:.2f} s, loss {losses[-1]:.3f}")
    flops = sum(trainer.flops(b) for b in timed)
    return {
        "measurement": "train_nmt", "warmup_steps": args.warmup, "timed_steps": len(times),
        **throughput(sum(b.n_tgt_tokens for b in timed), sum(b.n_src_tokens for b in timed), sum(times), flops, peak),
        **C.step_stats(times),
        "warmup_seconds": round(warm, 2), "first_step_seconds": round(first, 2) if first is not None else None,
        "loss_first": round(losses[0], 3), "loss_last": round(losses[-1], 3),
        "wall_seconds_incl_warmup": round(time.perf_counter() - t_all, 1),
    }


def run_epoch(args: argparse.Namespace, trainer: Trainer, peak: dict | None) -> dict:
    """One Multi30k epoch through NMTDataModule; the clock runs from the end of warm-up to the last step."""
    from nmt.data.config import BatchConfig, DataConfig, SubwordConfig
    from nmt.data.datamodule import NMTDataModule

    work = Path(args.prepared_dir) if args.prepared_dir else Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        cfg = DataConfig(root=str(args.data.parent), corpus=args.data.name, prepared_dir=str(work),
                         splits={"train": "train"}, max_train_pairs=args.max_train_pairs,
                         subword=SubwordConfig(model=str(args.peers / "spm8k.model")),
                         batch=BatchConfig(max_tokens=args.max_tokens, seed=1234))
        dm = NMTDataModule(cfg)
        t = time.perf_counter()
        dm.setup()
        C.log(f"data prepared in {time.perf_counter() - t:.1f} s: {len(dm.data.splits['train'])} pairs")
        sampler = dm.train_sampler()
        sampler.set_epoch(0)
        n_batches = len(sampler)
        limit = min(n_batches, args.max_steps) if args.max_steps > 0 else n_batches
        if limit <= args.warmup:
            raise ValueError(f"--max_steps {args.max_steps} leaves no timed step after --warmup {args.warmup}")
        times, losses, tgt, src, flops, padded = [], [], 0, 0, 0, 0
        with C.profiled(args.profile, args.profile_rows, args.profile_shapes):
            it = iter(dm.train_dataloader())
            for k in range(limit):
                if k == args.warmup:
                    t0 = time.perf_counter()
                t = time.perf_counter()
                batch = next(it)
                losses.append(trainer.step(batch))
                if k >= args.warmup:
                    times.append(time.perf_counter() - t)
                    tgt, src, flops = tgt + batch.n_tgt_tokens, src + batch.n_src_tokens, flops + trainer.flops(batch)
                    padded += batch.tgt_out.numel()
                if k % 10 == 0:
                    C.log(f"step {k}/{limit}: {time.perf_counter() - t:.2f} s, loss {losses[-1]:.3f}")
            seconds = time.perf_counter() - t0
    finally:
        if not args.prepared_dir:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "measurement": "train_nmt_epoch", "epoch_batches": n_batches, "warmup_steps": args.warmup,
        "timed_steps": len(times), "max_tokens": args.max_tokens,
        **throughput(tgt, src, seconds, flops, peak), **C.step_stats(times),
        "tgt_padding_share": round(1 - tgt / padded, 4),
        "loss_first": round(losses[0], 3), "loss_last": round(losses[-1], 3),
    }


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, run the benchmark, print and return the JSON record."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(ap)
    ap.add_argument("--warmup", type=int, default=5, help="untimed warm-up steps")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (fixed batches)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (dynamic shapes); "
                    "compilation happens in the warm-up steps, see first_step_seconds / warmup_seconds")
    ap.add_argument("--bf16", action="store_true", help="forward and loss under CPU autocast to bfloat16 "
                    "(what train.precision bf16-mixed does); parameters, gradients and AdamW stay float32")
    ap.add_argument("--no_fused_adam", action="store_true", help="PyTorch's for-each AdamW (the peers' default) "
                    "instead of our default fused kernel")
    ap.add_argument("--epoch", action="store_true", help="end-to-end epoch through NMTDataModule instead")
    ap.add_argument("--max_steps", type=int, default=0, help="--epoch: stop after this many batches (0 = epoch)")
    ap.add_argument("--max_tokens", type=int, default=4096, help="--epoch: token budget per batch")
    ap.add_argument("--max_train_pairs", type=int, default=0, help="--epoch: only the first N pairs (0 = all)")
    ap.add_argument("--prepared_dir", default=None, help="--epoch: keep prepared data here (default: temporary)")
    args = ap.parse_args(argv)
    if args.warmup < 0 or args.steps < 1:
        ap.error("--warmup must be >= 0 and --steps >= 1")
    C.setup_process(args)

    peak = C.resolve_peak(args)
    vocab = C.load_vocab(args.peers)
    batches = [] if args.epoch else fixed_batches(args.peers, args.data, vocab, args.warmup + args.steps)
    t = time.perf_counter()
    model = C.build_model(args, vocab)
    load_s = time.perf_counter() - t
    C.log(f"model: {model.num_parameters():,} parameters, built in {load_s:.2f} s")
    trainer = Trainer(model, args.compile, fused=not args.no_fused_adam, bf16=args.bf16)
    result = run_epoch(args, trainer, peak) if args.epoch else run_fixed(args, trainer, batches, peak)
    record = {
        **result, **C.model_record(args, model), "compile": args.compile, "bf16": args.bf16,
        "fused_adamw": not args.no_fused_adam,
        "flops_method": "3 x Transformer.flops (forward) over real lengths", "matmul_peak": peak,
        "profiled": args.profile, "load_s": round(load_s, 2), "peak_rss_mib": C.peak_rss_mib(), **C.env_info(),
    }
    C.emit(record)
    return record


if __name__ == "__main__":
    main()
