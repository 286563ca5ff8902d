"""Translate and score a test set with a model exported by ``nmt export`` (CTranslate2), the way
``docs/decoding.md`` deploys it: speed, BLEU/chrF with signatures, peak RSS. Does not import torch.

    nmt export --checkpoint runs/multi30k_small/final.ckpt -o /tmp/ct2_f32
    nmt export --checkpoint runs/multi30k_small/final.ckpt -o /tmp/ct2_int8 --quantization int8
    python scripts/bench_deploy.py --model /tmp/ct2_int8 --compute_type int8 \\
        --src ../shared/data/multi30k/test_2016_flickr.en --ref ../shared/data/multi30k/test_2016_flickr.de

Next to our own decoder on the same file: ``nmt test --checkpoint ... --json [--quantize int8]``.
Batches of ``--batch`` sentences in file order; untimed warm-up on the first batch. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="directory written by nmt export")
    ap.add_argument("--src", type=Path, required=True)
    ap.add_argument("--ref", type=Path, help="references: also score BLEU and chrF")
    ap.add_argument("--compute_type", default="float32", choices=["float32", "int8", "int8_float32", "int16"])
    ap.add_argument("--beam", type=int, default=None, help="default: the checkpoint's beam (nmt_export.json)")
    ap.add_argument("--length_penalty", type=float, default=1.0, help="CTranslate2's: score / length^p")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="write the hypotheses here")
    args = ap.parse_args(argv)
    import ctranslate2
    import sentencepiece as spm

    info = json.loads((args.model / "nmt_export.json").read_text(encoding="utf-8"))
    beam = args.beam or info["decode"]["beam_size"]
    src_sp = spm.SentencePieceProcessor(model_file=str(args.model / "source.spm.model"))
    tgt_sp = spm.SentencePieceProcessor(model_file=str(args.model / "target.spm.model"))
    lines = args.src.read_text(encoding="utf-8").split("\n")
    lines = lines[:-1] if lines and lines[-1] == "" else lines
    t = time.perf_counter()
    tr = ctranslate2.Translator(str(args.model), device="cpu", compute_type=args.compute_type,
                                inter_threads=1, intra_threads=args.threads)
    load_s = time.perf_counter() - t
    pieces = [src_sp.encode(line, out_type=str) for line in lines]
    batches = [pieces[i : i + args.batch] for i in range(0, len(pieces), args.batch)]

    def run(b: list) -> list:
        return tr.translate_batch(b, beam_size=beam, length_penalty=args.length_penalty, max_batch_size=args.batch)

    run(batches[0])  # warm-up
    t = time.perf_counter()
    hyps = [tgt_sp.decode(r.hypotheses[0]) for b in batches for r in run(b)]
    seconds = time.perf_counter() - t
    record = {
        "measurement": "deploy_ct2", "model": str(args.model), "exported": info["quantization"],
        "compute_type": tr.compute_type, "beam": beam, "length_penalty": args.length_penalty,
        "sentences": len(lines), "seconds": round(seconds, 3), "sent_per_s": round(len(lines) / seconds, 2),
        "load_s": round(load_s, 2), "threads": args.threads,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
    if args.out:
        args.out.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    if args.ref:
        from nmt.eval.score import read_lines, score

        bleu, chrf = score(hyps, read_lines(args.ref), metrics=("bleu", "chrf"))
        record.update(bleu=bleu.score, bleu_signature=bleu.signature, chrf=chrf.score, chrf_signature=chrf.signature)
    record["torch_imported"] = "torch" in sys.modules
    print(json.dumps(record), flush=True)
    return record


if __name__ == "__main__":
    main()
