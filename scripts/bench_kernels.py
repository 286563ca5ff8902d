"""Micro-benchmarks behind the decoding and training choices in docs/benchmarks.md (CPU, fp32).

Six groups, each line one JSON record (stdout), best of ``--repeats`` timings of ``--calls`` calls:

- ``gemm``: the linear layers of one decoding step of the base model (rows = 32 sentences or 160
  hypotheses; 512 -> 512, 512 -> 2048, 2048 -> 512, 512 -> 8000) and of the encoder over a batch
  (1,056 rows: 32 sentences of 33 pieces; the first three shapes) in GFLOP/s, and the 2048^3
  matmul ceiling, each with PyTorch's default kernel (MKL) and with oneDNN-packed weights
  (``nmt.model.packed``, what our inference uses), and with dynamic int8 weights
  (``nmt.model.quantize``, ``--quantize int8``) on each quantized engine PyTorch has here (x86 picks
  FBGEMM or oneDNN itself; fbgemm; onednn), activations quantized per call as in decoding;
- ``train_gemm``: a training-sized linear layer, forward + backward, MKL (autograd) against oneDNN;
- ``attention``: one decoding step's attention at the workload's shapes, SDPA against explicit
  matmul-softmax-matmul, with keys/values contiguous or in the strided (B, H, S, dh) view that
  splitting heads produces;
- ``adamw``: one AdamW update over the base model's parameter shapes (48.3 M): PyTorch's default
  for-each implementation, the for-loop one and the fused kernel;
- ``search``: one decoding step's search over the 8,000-word output for 32 sentences: beam 5's
  selection of the 10 best of 5 x 8,000 candidates per sentence with ``torch.topk`` and by blocks
  (``nmt.decode.topk``), greedy search's best entry by ``argmax`` + ``gather``, by one ``max`` and
  by blocks;
- ``int8_call``: the fixed cost of calling one tiny int8 layer: PyTorch's operator, ``torch.ao``'s
  layer and ``nmt.model.quantize.Int8Linear`` (which skips the operator's per-argument checks).

    python scripts/bench_kernels.py                 # all groups, 2 threads
    python scripts/bench_kernels.py --only attention
    python scripts/bench_kernels.py --only search
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nmt.decode.topk import topk_rows
from nmt.model.packed import PackedLinear, packing_available
from nmt.model.quantize import quantize_linears

D, FF, VOCAB, HEADS, LAYERS = 512, 2048, 8000, 8, 6
ENCODER_ROWS = 1056  # a batch of 32 sentences of 33 pieces, as the encoder runs it


def best_ms(fn: Callable[[], object], calls: int, repeats: int) -> float:
    """Best mean milliseconds per call over ``repeats`` runs of ``calls`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t) / calls * 1e3)
    return round(best, 4)


def gemm(calls: int, repeats: int) -> list[dict]:
    """Each call runs the shape through 6 distinct weights, as a decoding step runs 6 layers (so the
    weights are not all cache-resident): plain ``F.linear`` (MKL) and oneDNN-packed (``PackedLinear``)."""
    out, engine_before = [], torch.backends.quantized.engine
    kernels: dict[str, Callable[[torch.nn.Linear], torch.nn.Module]] = {"mkl": lambda lin: lin}
    if packing_available():
        kernels["onednn packed"] = PackedLinear
    for engine in ("x86", "fbgemm", "onednn"):
        if engine in torch.backends.quantized.supported_engines:
            kernels[f"int8 {engine}"] = lambda lin, _e=engine: _int8(lin, _e)
    for rows in (32, 160, ENCODER_ROWS):
        for d_in, d_out in ((D, D), (D, FF), (FF, D), (D, VOCAB)):
            if rows == ENCODER_ROWS and d_out == VOCAB:
                continue  # the output layer runs per decoding step only
            x = torch.randn(rows, d_in)
            for kernel, wrap in kernels.items():
                _engine(kernel)
                layers = [wrap(torch.nn.Linear(d_in, d_out, bias=d_out != VOCAB)) for _ in range(LAYERS)]
                ms = best_ms(lambda: [f(x) for f in layers], max(1, calls // LAYERS), repeats) / LAYERS
                out.append({"group": "gemm", "kernel": kernel, "rows": rows, "d_in": d_in, "d_out": d_out,
                            "ms": round(ms, 4), "gflops": round(2 * rows * d_in * d_out / ms / 1e6, 1)})
    for kernel, wrap in kernels.items():
        _engine(kernel)
        a, lin = torch.randn(2048, 2048), wrap(torch.nn.Linear(2048, 2048, bias=False))
        ms = best_ms(lambda: lin(a), max(1, calls // 20), repeats)
        out.append({"group": "gemm", "kernel": kernel, "rows": 2048, "d_in": 2048, "d_out": 2048, "ms": ms,
                    "gflops": round(2 * 2048**3 / ms / 1e6, 1), "note": "matmul ceiling"})
    torch.backends.quantized.engine = engine_before
    return out


def int8_call(calls: int, repeats: int) -> list[dict]:
    """The fixed cost of one int8 layer call: a tiny (2, 8) x (8, 8) product through PyTorch's public
    operator, through ``torch.ao``'s layer and through ``nmt.model.quantize.Int8Linear``, per engine."""
    out, engine_before = [], torch.backends.quantized.engine
    for engine in ("x86", "onednn"):
        if engine not in torch.backends.quantized.supported_engines:
            continue
        layer, x = _int8(torch.nn.Linear(8, 8), engine), torch.randn(2, 8)
        packed, op = layer._packed_params._packed_params, torch.ops.quantized.linear_dynamic.default
        generic = torch.ao.nn.quantized.dynamic.Linear.forward
        with torch.inference_mode():
            out.append({"group": "int8_call", "engine": engine,
                        "operator_us": round(best_ms(lambda: op(x, packed, True), calls, repeats) * 1e3, 2),
                        "torch_ao_layer_us": round(best_ms(lambda: generic(layer, x), calls, repeats) * 1e3, 2),
                        "int8linear_us": round(best_ms(lambda: layer(x), calls, repeats) * 1e3, 2)})
    torch.backends.quantized.engine = engine_before
    return out


def _int8(lin: torch.nn.Linear, engine: str) -> torch.nn.Module:
    """``lin`` as the dynamic int8 layer ``nmt.model.quantize`` makes, weights packed for ``engine``."""
    box = torch.nn.Sequential(lin).eval()
    quantize_linears(box, "int8", engine)
    return box[0]


def _engine(kernel: str) -> None:
    """Select the quantized engine an "int8 <engine>" kernel runs on (its weights were packed for it)."""
    if kernel.startswith("int8 "):
        torch.backends.quantized.engine = kernel.split()[1]


class OneDNNLinear(torch.autograd.Function):
    """A linear layer whose three products (output, input gradient, weight gradient) run on oneDNN
    with plain weights, reordered per call; the transposed operands are made contiguous."""

    @staticmethod
    def forward(ctx, x, w, b):  # (M, in), (out, in), (out,) -> (M, out)
        ctx.save_for_backward(x, w)
        return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")

    @staticmethod
    def backward(ctx, g):  # (M, out)
        x, w = ctx.saved_tensors
        gx = torch.ops.mkldnn._linear_pointwise(g, w.t().contiguous(), None, "none", [], "")  # (M, in)
        gw = torch.ops.mkldnn._linear_pointwise(g.t().contiguous(), x.t().contiguous(), None, "none", [], "")
        return gx, gw, g.sum(0)


def train_gemm(calls: int, repeats: int) -> list[dict]:
    """A training-sized linear layer (4,000 rows), forward + backward: F.linear with autograd (MKL)
    against ``OneDNNLinear``."""
    out, rows = [], 4000
    kernels: dict[str, Callable[..., torch.Tensor]] = {"mkl": F.linear}
    if packing_available():
        kernels["onednn"] = OneDNNLinear.apply
    for d_in, d_out in ((D, FF), (FF, D), (D, D), (D, VOCAB)):
        x = torch.randn(rows, d_in, requires_grad=True)
        w, b = torch.randn(d_out, d_in, requires_grad=True), torch.randn(d_out, requires_grad=True)
        g = torch.randn(rows, d_out)
        for kernel, fn in kernels.items():
            ms = best_ms(lambda: fn(x, w, b).backward(g), max(1, calls // 40), repeats)
            out.append({"group": "train_gemm", "kernel": kernel, "rows": rows, "d_in": d_in, "d_out": d_out,
                        "ms": ms, "gflops": round(3 * 2 * rows * d_in * d_out / ms / 1e6, 1)})
    return out


def attention(calls: int, repeats: int) -> list[dict]:
    """(name, batch rows, queries per row, keys, key padding?) of the beam-5 workload's decoding steps."""
    dh, out = D // HEADS, []
    cases = [
        ("cross, a sentence's 5 hypotheses folded", 32, 5, 20, True),
        ("cross, one row per hypothesis", 160, 1, 20, True),
        ("decoder self, t = 16", 160, 1, 16, False),
        ("decoder self, t = 32", 160, 1, 32, False),
    ]
    for name, B, n, S, padded in cases:
        q = torch.randn(B, n, HEADS, dh).transpose(1, 2)  # (B, H, n, dh)
        k_strided = torch.randn(B, S, HEADS, dh).transpose(1, 2)  # (B, H, S, dh) as split from (B, S, D)
        v_strided = torch.randn(B, S, HEADS, dh).transpose(1, 2)
        pad = torch.zeros(B, 1, 1, S, dtype=torch.bool)
        if padded:
            pad[..., S - 3 :] = True  # (B, 1, 1, S)
        for layout, k, v in (("strided", k_strided, v_strided),
                             ("contiguous", k_strided.contiguous(), v_strided.contiguous())):
            def explicit(k=k, v=v):
                logits = (q @ k.transpose(-1, -2)) * dh**-0.5  # (B, H, n, S)
                if padded:
                    logits = logits.masked_fill(pad, float("-inf"))
                return logits.softmax(-1) @ v

            def sdpa(k=k, v=v):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=~pad if padded else None)

            out.append({"group": "attention", "case": name, "kv": layout,
                        "sdpa_ms": best_ms(sdpa, calls, repeats), "explicit_ms": best_ms(explicit, calls, repeats)})
    return out


def adamw(calls: int, repeats: int) -> list[dict]:
    # shared embedding; 4 (encoder) + 8 (decoder) attention matrices per layer pair; 2 FFNs per layer pair;
    # vectors: 12 attention biases, 5 LayerNorms (weight + bias), 2 FFN output biases; 2 FFN hidden biases
    shapes = [(VOCAB, D)] + [(D, D)] * (12 * LAYERS) + [(FF, D), (D, FF)] * (2 * LAYERS)
    shapes += [(D,)] * ((12 + 10 + 2) * LAYERS) + [(FF,)] * (2 * LAYERS)
    out = []
    for impl, kw in (("for-each (default)", {"foreach": True}), ("for-loop", {"foreach": False}),
                     ("fused", {"fused": True})):
        params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
        for p in params:
            p.grad = torch.randn_like(p)
        opt = torch.optim.AdamW(params, lr=5e-4, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0, **kw)
        out.append({"group": "adamw", "impl": impl, "params_m": round(sum(p.numel() for p in params) / 1e6, 2),
                    "ms": best_ms(opt.step, max(1, calls // 20), repeats)})
    return out


def search(calls: int, repeats: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    cand = torch.randn(32, 5 * VOCAB, generator=g)  # (sentences, beam x V) candidate scores
    lprobs = torch.randn(32, VOCAB, generator=g).log_softmax(-1)  # (rows, V) greedy
    return [
        {"group": "search", "case": "beam 5: 10 best of (32, 40000)",
         "torch_topk_ms": best_ms(lambda: cand.topk(10, dim=1), calls, repeats),
         "blocks_ms": best_ms(lambda: topk_rows(cand, 10), calls, repeats)},
        {"group": "search", "case": "greedy: best of (32, 8000) and its score",
         "argmax_gather_ms": best_ms(lambda: lprobs.gather(1, lprobs.argmax(-1, keepdim=True)), calls, repeats),
         "max_ms": best_ms(lambda: lprobs.max(dim=-1), calls, repeats),
         "blocks_ms": best_ms(lambda: topk_rows(lprobs, 1), calls, repeats)},
    ]


def main(argv: list[str] | None = None) -> list[dict]:
    """Parse ``argv``, run the chosen groups and print one JSON line per measurement."""
    groups = {"gemm": gemm, "train_gemm": train_gemm, "attention": attention, "adamw": adamw, "search": search,
              "int8_call": int8_call}
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=sorted(groups), action="append", help="run only these groups")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=200, help="calls per timing (AdamW and the ceiling: / 20)")
    ap.add_argument("--repeats", type=int, default=5, help="timings per measurement; the best is reported")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    records = []
    for name in args.only or groups:
        # AdamW updates parameters and train_gemm needs gradients, which inference mode forbids
        with contextlib.nullcontext() if name in ("adamw", "train_gemm") else torch.inference_mode():
            records += groups[name](args.calls, args.repeats)
    for r in records:
        print(json.dumps({**r, "threads": args.threads, "torch": torch.__version__}), flush=True)
    return records


if __name__ == "__main__":
    main()
