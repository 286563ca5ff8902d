"""Parameters and analytic FLOPs of every setting of a study, before anything is trained.

Builds each setting's model with the model builder exactly as the study's runs are configured
(``Transformer(cfg.model, V, V, 0)`` with V = the configured joint subword vocabulary) and prints a
Markdown table: all trainable parameters, the parameters of the varied sublayers, and the FLOPs of
the varied attention for one sentence pair of the given lengths under the two ways of charging the
relative-position table (``nmt.ablate.measure``): once per sentence (the campaign's cost) and once
per batch of ``--batch-tokens`` source tokens (amortised over the sentences of that batch).

``--flip`` scans sentence lengths (source = target = n) and prints, for every pair of settings,
the lengths at which their order by cost changes under each definition. ``--test-set`` prints the
varied attention's GFLOPs over the study's test split, both ways, as the runs' records compute them
(``nmt.ablate.measure``; needs the study's data, prepared on the way).

    python scripts/study_costs.py configs/ablation/deformable.yaml --src-len 14 --tgt-len 15
    python scripts/study_costs.py configs/ablation/repro/multi30k-ende/deform.yaml --flip
    python scripts/study_costs.py configs/ablation/repro/multi30k-ende/deform.yaml --test-set --data.root ../shared/data
"""

from __future__ import annotations

import argparse
import itertools
import sys

from nmt.ablate.study import VARIED_FLOPS, load_study
from nmt.model.transformer import Transformer

ROLES = {"encoder_self": ("encoder",), "decoder_self": ("decoder",), "self": ("encoder", "decoder"), "cross": ("cross",)}


def models(config: str, overrides: list | None = None) -> list[tuple[str, str, Transformer, list[str], list]]:
    """(label, spec, model, varied parts, varied mixers) per setting of the study."""
    study = load_study(config, overrides)
    out = []
    for s in study.settings:
        cfg = study.experiment(s.label, study.seeds[0])
        vocab = cfg.data.subword.vocab_size
        model = Transformer(cfg.model, vocab, vocab, 0)
        mixers = model.mixers()
        varied = [m for role in ROLES[study.vary] for m in mixers[role] if m is not None]
        spec = s.spec + (f" / {s.decoder_spec}" if s.decoder_spec else "")
        out.append((s.label, spec, model, list(VARIED_FLOPS[study.vary]), varied))
    return out


def attention_cost(model: Transformer, parts: list[str], src_len: int, tgt_len: int,
                   batch_tokens: int | None = None) -> float:
    """Varied attention FLOPs of one sentence pair: forward plus the relative-position tables, charged
    to this sentence alone (``batch_tokens`` None) or shared by the batch of ``batch_tokens`` source
    tokens it belongs to (``batch_tokens // src_len`` sentences of its length)."""
    flops, tables = model.flops(src_len, tgt_len), model.shared_flops(src_len, tgt_len)
    share = 1 if batch_tokens is None else max(1, batch_tokens // src_len)
    return sum(flops[p] for p in parts) + sum(tables[p] for p in parts) / share


def costs(config: str, src_len: int, tgt_len: int, batch_tokens: int = 4000) -> list[dict]:
    """One dict per setting: label, spec, params, varied_params, attention_flops (tables once per
    sentence), attention_flops_per_batch (tables once per batch of ``batch_tokens`` source tokens)."""
    rows = []
    for label, spec, model, parts, varied in models(config):
        rows.append({
            "label": label, "spec": spec, "params": model.num_parameters(),
            "varied_params": sum(p.numel() for m in varied for p in m.parameters()),
            "attention_flops": attention_cost(model, parts, src_len, tgt_len),
            "attention_flops_per_batch": attention_cost(model, parts, src_len, tgt_len, batch_tokens),
        })
    return rows


def flips(config: str, lengths: range, batch_tokens: int = 4000) -> list[dict]:
    """For each pair of settings and each definition: the lengths n (source = target = n) at which
    the cheaper of the two changes, scanning ``lengths`` upwards."""
    definitions = {"per sentence": None, "per batch": batch_tokens}
    curves = {(label, name): [attention_cost(model, parts, n, n, tokens) for n in lengths]
              for label, _, model, parts, _ in models(config) for name, tokens in definitions.items()}
    labels = list(dict.fromkeys(label for label, _ in curves))
    out = []
    for a, b in itertools.combinations(labels, 2):
        for name in definitions:
            signs = [(x > y) - (x < y) for x, y in zip(curves[(a, name)], curves[(b, name)])]
            changes = [n for n, s0, s1 in zip(list(lengths)[1:], signs, signs[1:]) if s0 != s1]
            out.append({"a": a, "b": b, "definition": name, "flips_at": changes, "a_cheaper_at_start": signs[0] < 0})
    return out


def test_set_costs(config: str, overrides: list | None = None) -> list[dict]:
    """Per setting: the varied attention's FLOPs over the study's test split, relative-position tables
    charged once per sentence (the cost) and once per test batch."""
    from nmt.ablate.measure import corpus_flops, corpus_flops_per_batch, token_lengths
    from nmt.data.datamodule import NMTDataModule
    from nmt.data.prepare import load_prepared

    study = load_study(config, overrides)
    cfg = study.experiment(study.settings[0].label, study.seeds[0])
    vocab = load_prepared(cfg.data).vocab
    dm = NMTDataModule(cfg.data)
    lengths = token_lengths(vocab, dm.sources(study.split), dm.references(study.split))
    rows = []
    for label, spec, _, _, _ in models(config, overrides):
        model = Transformer(study.experiment(label, study.seeds[0]).model, vocab.src_size, vocab.tgt_size, vocab.pad_id)
        rows.append({"label": label, "spec": spec,
                     "per_sentence": study.varied_flops(corpus_flops(model, lengths)),
                     "per_batch": study.varied_flops(corpus_flops_per_batch(model, lengths, study.test_max_tokens))})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", help="study YAML (configs/ablation/*.yaml)")
    ap.add_argument("--src-len", type=int, default=14, help="source tokens of the sentence pair (with </s>)")
    ap.add_argument("--tgt-len", type=int, default=15, help="target tokens of the sentence pair (with <s>)")
    ap.add_argument("--batch-tokens", type=int, default=4000, help="source tokens per batch for the per-batch charge")
    ap.add_argument("--flip", action="store_true", help="scan lengths 2-256 for changes of order between settings")
    ap.add_argument("--test-set", action="store_true", help="attention GFLOPs over the study's test split, both ways")
    ap.add_argument("--data.root", dest="data_root", default=None, help="data root for --test-set")
    args = ap.parse_args(argv)
    if args.test_set:
        overrides = [("data.root", args.data_root)] if args.data_root else None
        print("| setting | spec | attention GFLOPs, tables per sentence (the cost) | tables per test batch |")
        print("|---|---|---|---|")
        for r in test_set_costs(args.config, overrides):
            print(f"| {r['label']} | `{r['spec']}` | {r['per_sentence'] / 1e9:.1f} | {r['per_batch'] / 1e9:.1f} |")
        return 0
    if args.flip:
        print("| A | B | definition | cheaper at n = 2 | order flips at n |")
        print("|---|---|---|---|---|")
        for f in flips(args.config, range(2, 257), args.batch_tokens):
            print(f"| {f['a']} | {f['b']} | {f['definition']} | {'A' if f['a_cheaper_at_start'] else 'B'} | "
                  f"{', '.join(map(str, f['flips_at'])) or 'never'} |")
        return 0
    rows = costs(args.config, args.src_len, args.tgt_len, args.batch_tokens)
    print(f"| setting | spec | params (M) | varied sublayers' params | attention MFLOPs per pair, tables per "
          f"sentence | tables per batch of {args.batch_tokens} tokens |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | `{r['spec']}` | {r['params'] / 1e6:.3f} | {r['varied_params']:,} | "
              f"{r['attention_flops'] / 1e6:.2f} | {r['attention_flops_per_batch'] / 1e6:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
