"""Shared pieces of ``bench_train.py`` and ``bench_decode.py``: where the peer workload lives, the
benchmark model, the fp32 matmul ceiling, the environment record, JSON output and profiling.

The workload is the one of the peer benchmark (``shared/bench/peers/README.md``): same
SentencePiece model, same training batches, same decode batches, 2 threads, fp32.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from nmt import io as nmt_io
from nmt.data.subwords import Vocab
from nmt.model.config import ModelConfig
from nmt.model.transformer import Transformer
from nmt.runtime import tune_allocator

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NMT_SHARED", REPO.parent / "shared"))
PEERS_DIR = SHARED / "bench" / "peers"
DATA_DIR = Path(os.environ.get("NMT_SHARED_DATA", SHARED / "data")) / "multi30k"
SPM_MD5 = "dde7841288b36d2193d515ddc5f36c05"  # the peers' spm8k.model
SPECIAL_IDS = {"unk": 0, "bos": 1, "eos": 2, "pad": 7999}
MAX_POSITIONS = 256  # as the peers' Marian model (the table size does not change the work)


def add_common_args(ap: argparse.ArgumentParser) -> None:
    """Paths, threads, the model's shape and mechanisms, the matmul ceiling and profiling."""
    g = ap.add_argument_group("workload")
    g.add_argument("--peers", type=Path, default=PEERS_DIR, help="peer benchmark folder (spm8k.model, ...)")
    g.add_argument("--data", type=Path, default=DATA_DIR, help="Multi30k folder (train.en, test_2016_flickr.en)")
    g.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    g.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    m = ap.add_argument_group("model (defaults: the peers' base model)")
    m.add_argument("--spec", default="1000", help="mechanism spec of every self-attention sublayer (enc+dec)")
    m.add_argument("--cross_spec", default="1000", help="mechanism spec of every cross-attention sublayer")
    m.add_argument("--d_model", type=int, default=512)
    m.add_argument("--heads", type=int, default=8)
    m.add_argument("--d_ff", type=int, default=2048)
    m.add_argument("--layers", type=int, default=6, help="encoder layers = decoder layers")
    m.add_argument("--dropout", type=float, default=0.1)
    m.add_argument("--norm", choices=["pre", "post"], default="post",
                   help="post-norm matches the peers' Marian model (no final LayerNorms)")
    m.add_argument("--absolute_positions", choices=["auto", "on", "off"], default="on")
    p = ap.add_argument_group("MFU and profiling")
    p.add_argument("--matmul_peak", type=float, default=None, metavar="GFLOPS",
                   help="measured fp32 matmul ceiling (e.g. the median of the peers' matmul_peak.py) for MFU")
    p.add_argument("--measure_peak", action="store_true",
                   help="measure the 2048^3 matmul ceiling in this process first (as matmul_peak.py)")
    p.add_argument("--profile", action="store_true",
                   help="run the timed part under torch.profiler and print the top operators to stderr "
                        "(timings are then inflated by the profiler)")
    p.add_argument("--profile_rows", type=int, default=25, help="operators listed by --profile")
    p.add_argument("--profile_shapes", action="store_true", help="--profile lists operators per input shape")


def log(msg: str) -> None:
    """A diagnostic line on stderr (stdout carries only the final JSON line)."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def emit(record: dict) -> None:
    """The one JSON result line on stdout."""
    print(json.dumps(record), flush=True)


def read_lines(path: Path) -> list[str]:
    """The lines of a workload text file (``nmt.io``'s rule); a missing file says how to point to it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (set --data or NMT_SHARED_DATA)")
    return nmt_io.read_lines(path)


def load_vocab(peers: Path) -> Vocab:
    """The peers' ``spm8k.model``, checked by md5 and special ids."""
    path = peers / "spm8k.model"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (set --peers)")
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    if md5 != SPM_MD5:
        raise ValueError(f"{path}: md5 {md5} differs from the peers' spm8k.model ({SPM_MD5})")
    vocab = Vocab(path)
    ids = {"unk": vocab.unk_id, "bos": vocab.bos_id, "eos": vocab.eos_id, "pad": vocab.pad_id}
    if ids != SPECIAL_IDS or vocab.src_size != 8000:
        raise ValueError(f"{path}: special ids {ids}, size {vocab.src_size}; expected {SPECIAL_IDS}, 8000")
    return vocab


def model_config(args: argparse.Namespace) -> ModelConfig:
    """The benchmark model: one spec for all self-attention sublayers, one for all cross sublayers."""
    return ModelConfig(
        d_model=args.d_model, n_heads=args.heads, d_ff=args.d_ff,
        encoder_layers=args.layers, decoder_layers=args.layers,
        dropout=args.dropout, attention_dropout=0.0, activation_dropout=0.0, activation="relu",
        norm=args.norm, absolute_positions=args.absolute_positions, max_positions=MAX_POSITIONS,
        share_embeddings=True, tie_embeddings=True,
        encoder_self=args.spec, decoder_self=args.spec, cross=args.cross_spec,
    )


def build_model(args: argparse.Namespace, vocab: Vocab) -> Transformer:
    """Randomly initialised model (seeded), fp32 on CPU."""
    torch.manual_seed(args.seed)
    return Transformer(model_config(args), vocab.src_size, vocab.tgt_size, vocab.pad_id)


def model_record(args: argparse.Namespace, model: Transformer) -> dict:
    """What the JSON line says about the model."""
    cfg = model.cfg
    return {
        "spec": args.spec, "cross_spec": args.cross_spec, "d_model": cfg.d_model, "heads": cfg.n_heads,
        "d_ff": cfg.d_ff, "layers": cfg.encoder_layers, "norm": cfg.norm,
        "absolute_positions": {s: cfg.uses_absolute_positions(s) for s in ("encoder", "decoder")},
        "params": model.num_parameters(),
    }


def matmul_peak(n: int = 2048, warmup: int = 3, iters: int = 10) -> dict:
    """fp32 ``torch.matmul`` n x n x n GFLOP/s (median, min, max of ``iters``), as the peers' matmul_peak.py."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    c = torch.empty(n, n)
    for _ in range(warmup):
        torch.matmul(a, b, out=c)
    gflops = []
    for _ in range(iters):
        t0 = time.perf_counter()
        torch.matmul(a, b, out=c)
        gflops.append(2.0 * n**3 / (time.perf_counter() - t0) / 1e9)
    return {"gflops_median": round(statistics.median(gflops), 2), "gflops_min": round(min(gflops), 2),
            "gflops_max": round(max(gflops), 2), "n": n}


def resolve_peak(args: argparse.Namespace) -> dict | None:
    """The matmul ceiling used for MFU: measured here (``--measure_peak``) or given (``--matmul_peak``)."""
    if args.measure_peak:
        peak = matmul_peak()
        log(f"matmul ceiling measured: {peak}")
        return {"source": "measured in-process", **peak}
    if args.matmul_peak is not None:
        if args.matmul_peak <= 0:
            raise ValueError(f"--matmul_peak must be positive GFLOP/s, got {args.matmul_peak}")
        return {"source": "--matmul_peak", "gflops_median": args.matmul_peak}
    return None


def mfu(flops: float, seconds: float, peak: dict | None) -> float | None:
    """Model FLOPs per second over the matmul ceiling (None without a ceiling)."""
    if peak is None or seconds <= 0:
        return None
    return round(flops / seconds / (peak["gflops_median"] * 1e9), 4)


def cpu_name() -> str:
    """CPU model name and its vector extensions that matter for fp32/int8 GEMM."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return f"{name} ({', '.join(isa) or 'no AVX2'})"


MALLOC_TUNED = False


def setup_process(args: argparse.Namespace) -> None:
    """What our CLI does at start-up (the allocator, ``nmt.runtime``) plus the benchmark's thread count."""
    global MALLOC_TUNED
    MALLOC_TUNED = tune_allocator()
    torch.set_num_threads(args.threads)


def env_info() -> dict:
    """Versions, threads, CPU and load: the conditions of the measurement."""
    return {
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(), "cpu": cpu_name(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "loadavg_1m": round(os.getloadavg()[0], 2),
        "malloc_tuned": MALLOC_TUNED,
    }


def peak_rss_mib() -> float:
    """High-water resident set size of this process (Linux: ru_maxrss is in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def step_stats(times: Sequence[float]) -> dict:
    """Mean and median seconds per step (or per batch)."""
    if not times:
        return {"sec_per_step": None, "sec_per_step_median": None}
    return {"sec_per_step": round(statistics.mean(times), 3), "sec_per_step_median": round(statistics.median(times), 3)}


@contextmanager
def profiled(enabled: bool, rows: int, shapes: bool = False) -> Iterator[None]:
    """Run the block under torch.profiler (CPU) when ``enabled``; print the top operators by self time
    (one row per operator and input shapes when ``shapes``) and how many operator calls the block
    made from Python (views included, nested calls not)."""
    if not enabled:
        yield
        return
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=shapes) as prof:
        yield
    averages = prof.key_averages(group_by_input_shape=shapes)
    table = averages.table(sort_by="self_cpu_time_total", row_limit=rows, max_shapes_column_width=60)
    print(table, file=sys.stderr, flush=True)
    calls = sum(e.cpu_parent is None for e in prof.events())
    log(f"operator calls made from Python: {calls:,}")


@contextmanager
def timed_calls(targets: Sequence[tuple[str, Any, str]]) -> Iterator[dict[str, float]]:
    """Wall seconds spent in ``owner.method`` for each ``(name, owner, method)`` while the block runs,
    summed per name (several owners may share one). Each owner is an object whose method is
    shadowed by a timing wrapper and restored afterwards; nested calls count in every enclosing
    name. CPU operators are synchronous, so wall time is the operators' time plus Python's."""
    totals: dict[str, float] = {name: 0.0 for name, _, _ in targets}
    shadowed: list[tuple[Any, str]] = []
    try:
        for name, owner, method in targets:
            if method in vars(owner):
                raise ValueError(f"{name}: {method} is already shadowed on {type(owner).__name__}")
            fn = getattr(owner, method)

            def timed(*args, _fn=fn, _name=name, **kwargs):
                t = time.perf_counter()
                try:
                    return _fn(*args, **kwargs)
                finally:
                    totals[_name] += time.perf_counter() - t

            setattr(owner, method, timed)
            shadowed.append((owner, method))
        yield totals
    finally:
        for owner, method in shadowed:
            delattr(owner, method)
