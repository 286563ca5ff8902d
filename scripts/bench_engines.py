"""Two int8 kernel libraries on the peers' decoding workload, paired in one process.

Separate processes on a shared 2-vCPU machine differ by 10-30 % from run to run, more than the
engines do. This script builds the benchmark model twice (``bench_decode.py``'s model, seed and
workload), converts one copy with ``--a`` and one with ``--b`` (``prepare_for_inference``, as
``nmt translate --quantize int8`` does; each layer keeps the kernels it was packed for), and decodes
every batch with both, alternating which goes first, so that slow and fast moments of the machine
fall on both sides alike. Prints one JSON line: sentences/s of each side, their ratio, and how many
sentences the two produce identically (the engines round differently).

    python scripts/bench_engines.py --beam 1                     # x86 (FBGEMM) against onednn
    python scripts/bench_engines.py --beam 5 --rounds 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from nmt.decode.translate import translate_batch
from nmt.inference import prepare_for_inference
from nmt.model.quantize import ENGINES

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as C  # noqa: E402
import bench_decode as D  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, decode the workload with both engines, print and return the record."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(ap)
    ap.add_argument("--beam", type=int, default=1, help="beam size; 1 = greedy search")
    ap.add_argument("--a", choices=ENGINES, default="x86", help="engine of side A")
    ap.add_argument("--b", choices=ENGINES, default="onednn", help="engine of side B")
    ap.add_argument("--rounds", type=int, default=2, help="passes over the batches")
    ap.add_argument("--batches", type=int, default=D.N_SENT // D.BATCH, help="batches of 32 per pass")
    args = ap.parse_args(argv)
    for engine in (args.a, args.b):
        if engine not in torch.backends.quantized.supported_engines:
            ap.error(f"engine {engine} is not in this PyTorch build")
    C.setup_process(args)
    vocab = C.load_vocab(args.peers)
    batches = D.decode_batches(args.data, vocab, args.batches)
    models = {}
    for side, engine in (("a", args.a), ("b", args.b)):
        model = C.build_model(args, vocab).eval()  # seeded: the same weights on both sides
        prepare_for_inference(model, True, "int8", engine=engine)
        models[side] = model
    cfg = D.workload_config(args.beam)

    def run(side: str, src: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        with torch.inference_mode():
            hyps = translate_batch(models[side], src, mask, cfg, vocab.bos_id, vocab.eos_id, vocab.pad_id)
        return [h[0].tokens for h in hyps]

    for side in models:  # warm-up
        run(side, *batches[0])
    seconds, same, n = {"a": 0.0, "b": 0.0}, 0, 0
    for r in range(args.rounds):
        for k, (src, mask) in enumerate(batches):
            out = {}
            for side in ("ab" if (k + r) % 2 == 0 else "ba"):
                t = time.perf_counter()
                out[side] = run(side, src, mask)
                seconds[side] += time.perf_counter() - t
            same += sum(x == y for x, y in zip(out["a"], out["b"]))
            n += src.size(0)
    record = {
        "measurement": "int8_engines", "beam": args.beam, "a": args.a, "b": args.b, "rounds": args.rounds,
        "sentences": n, "a_sent_per_s": round(n / seconds["a"], 2), "b_sent_per_s": round(n / seconds["b"], 2),
        "b_over_a": round(seconds["a"] / seconds["b"], 3), "identical_sentences": round(same / n, 3), **C.env_info(),
    }
    C.emit(record)
    return record


if __name__ == "__main__":
    main()
