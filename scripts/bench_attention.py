"""Micro-benchmark of one attention sublayer: forward+backward time per factor mask, fused vs unfused.

"fused" is the default path (``scaled_dot_product_attention`` with E2/E4 and masks as an additive
bias whenever E1 is on); "unfused" forces the explicit logits/softmax path (the one used when
attention weights are recorded). Prints one JSON line per measurement.

    python scripts/bench_attention.py --masks 1000 0110 1111 --roles encoder decoder cross
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from nmt.modules.options import BuildContext
from nmt.modules.registry import build_mixer
from nmt.modules.spec import parse_spec


def time_sublayer(spec: str, role: str, args: argparse.Namespace, fused: bool) -> dict:
    torch.manual_seed(0)
    ctx = BuildContext(args.d_model, args.heads, role, 0, 1, 0.0)  # type: ignore[arg-type]
    mixer = build_mixer(parse_spec(spec), ctx)
    x = torch.randn(args.batch, args.length, args.d_model, requires_grad=True)  # (B, T, D)
    memory = torch.randn(args.batch, args.length, args.d_model) if role == "cross" else None
    pad = torch.zeros(args.batch, args.length, dtype=torch.bool)
    pad[: args.batch // 2, -args.length // 4:] = True  # half the batch padded by a quarter
    kw = {"memory": memory, "memory_padding_mask": pad} if role == "cross" else {"padding_mask": pad}
    if role == "decoder":
        kw = {}  # right-padded targets need no mask under causality
    mixer.record_weights = not fused
    times = []
    for i in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        y = mixer(x, **kw)
        y.sum().backward()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    return {
        "spec": spec, "role": role, "path": "fused" if fused else "unfused",
        "median_ms": round(1000 * statistics.median(times), 2), "min_ms": round(1000 * min(times), 2),
        "batch": args.batch, "length": args.length, "d_model": args.d_model, "heads": args.heads,
        "fwd_flops_per_sentence": mixer.flops(args.length, args.length), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--masks", nargs="+", default=["1000", "0110", "1111", "0010"])
    p.add_argument("--roles", nargs="+", default=["encoder", "decoder", "cross"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=32)
    p.add_argument("--d_model", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for role in args.roles:
        for spec in args.masks:
            for fused in (True, False):
                print(json.dumps(time_sublayer(spec, role, args, fused)), flush=True)


if __name__ == "__main__":
    main()
