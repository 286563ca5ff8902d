"""Translate sentences with a trained checkpoint from Python (the ``nmt.Translator`` API).

    python examples/translate.py runs/multi30k_small/final.ckpt "A man rides a bike." "Two dogs play."
    python examples/translate.py runs/multi30k_small/final.ckpt --beam 5 --nbest 3 "A man rides a bike."
    python examples/translate.py runs/multi30k_small/final.ckpt < sentences.txt      # one sentence a line

Prints one translation per line, or with ``--nbest N`` the N best per sentence as ``index<TAB>score<TAB>text``.
With ``--ref FILE`` (one reference a line) it also prints BLEU and chrF of the translations.
"""

from __future__ import annotations

import argparse
import sys

from nmt import Translator


def main() -> int:
    p = argparse.ArgumentParser(description="Translate sentences with a trained factor-nmt checkpoint.")
    p.add_argument("checkpoint", help="a .ckpt file (e.g. runs/multi30k_small/final.ckpt)")
    p.add_argument("sentences", nargs="*", help="sentences to translate (default: one a line from stdin)")
    p.add_argument("--beam", type=int, help="beam size (default: the checkpoint's)")
    p.add_argument("--nbest", type=int, default=1, help="hypotheses per sentence")
    p.add_argument("--quantize", choices=["int8"], help="int8 linear layers (CPU)")
    p.add_argument("--ref", help="reference file to score the translations against")
    args = p.parse_args()

    sentences = args.sentences or sys.stdin.read().splitlines()
    translator = Translator(args.checkpoint, quantize=args.quantize)  # loads the model once
    out = translator.translate(sentences, beam=args.beam, nbest=args.nbest)
    if args.nbest == 1:
        best = out
        print("\n".join(out))
    else:
        best = [nbest[0][0] for nbest in out]
        for i, nbest in enumerate(out):
            for text, score in nbest:
                print(f"{i}\t{score:.4f}\t{text}")
    if args.ref:
        with open(args.ref, encoding="utf-8") as f:
            refs = f.read().splitlines()
        scores = translator.score(best, refs)
        print(f"BLEU {scores['bleu']:.2f}  chrF {scores['chrf']:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
