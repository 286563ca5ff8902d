"""Parameters and analytic FLOPs of every setting of a study, before anything is trained.

Builds each setting's model with the model builder exactly as the study's runs are configured
(``Transformer(cfg.model, V, V, 0)`` with V = the configured joint subword vocabulary) and prints a
Markdown table: all trainable parameters, the parameters of the varied sublayers, and the FLOPs of
the varied attention for one sentence pair of the given lengths (``Transformer.flops``).

    python scripts/study_costs.py configs/ablation/deformable.yaml --src-len 14 --tgt-len 15
"""

from __future__ import annotations

import argparse
import sys

from nmt.ablate.study import VARIED_FLOPS, load_study
from nmt.model.transformer import Transformer

ROLES = {"encoder_self": ("encoder",), "decoder_self": ("decoder",), "self": ("encoder", "decoder"), "cross": ("cross",)}


def costs(config: str, src_len: int, tgt_len: int) -> list[dict]:
    """One dict per setting: label, spec, params, varied_params, attention_flops."""
    study = load_study(config)
    rows = []
    for s in study.settings:
        cfg = study.experiment(s.label, study.seeds[0])
        vocab = cfg.data.subword.vocab_size
        model = Transformer(cfg.model, vocab, vocab, 0)
        mixers = model.mixers()
        varied = [m for role in ROLES[study.vary] for m in mixers[role] if m is not None]
        flops = model.flops(src_len, tgt_len)
        rows.append({
            "label": s.label,
            "spec": s.spec + (f" / {s.decoder_spec}" if s.decoder_spec else ""),
            "params": model.num_parameters(),
            "varied_params": sum(p.numel() for m in varied for p in m.parameters()),
            "attention_flops": sum(flops[part] for part in VARIED_FLOPS[study.vary]),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", help="study YAML (configs/ablation/*.yaml)")
    ap.add_argument("--src-len", type=int, default=14, help="source tokens of the sentence pair (with </s>)")
    ap.add_argument("--tgt-len", type=int, default=15, help="target tokens of the sentence pair (with <s>)")
    args = ap.parse_args(argv)
    rows = costs(args.config, args.src_len, args.tgt_len)
    print("| setting | spec | params (M) | varied sublayers' params | attention MFLOPs per pair |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | `{r['spec']}` | {r['params'] / 1e6:.3f} | {r['varied_params']:,} | "
              f"{r['attention_flops'] / 1e6:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
