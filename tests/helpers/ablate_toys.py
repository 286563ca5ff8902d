"""A tiny synthetic corpus, base experiment and two-setting study for the ablation tests."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from nmt.ablate.results import RunRecord

WORDS = "the a man woman dog cat runs sits on in under green red big small house street ball water tree".split()

BASE_YAML = """\
data:
  root: {root}
  corpus: toy
  prepared_dir: {prepared}
  splits: {{train: train, valid: valid, test: test}}
  subword: {{vocab_size: 60}}
  batch: {{max_tokens: 256}}
model: {{d_model: 16, n_heads: 2, d_ff: 32, encoder_layers: 1, decoder_layers: 1, dropout: 0.0}}
optim: {{lr: 3.0e-3, warmup_steps: 2}}
train: {{max_steps: 8, val_every_steps: 4, val_max_sentences: 4, log_every_steps: 2, save_top_k: 1,
         heatmap_sentences: 0, num_threads: 1, accelerator: cpu, devices: 1}}
decode: {{beam: 1}}
"""

STUDY_YAML = """\
name: tiny
base: base.yaml
vary: self
reference: "1000"
seeds: [1]
output_dir: {out}
bootstrap_samples: 100
compare: [["1000", "0110-noabs"]]
settings:
  - {{label: "1000", spec: "1000"}}
  - {{label: "0110-noabs", spec: "0110", overrides: {{model.absolute_positions: "off"}}}}
"""


def sentences(n: int, seed: int) -> list[str]:
    """``n`` pseudo-sentences of 2-8 words."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8))) for _ in range(n)]


def write_corpus(directory: Path, sizes: dict[str, int]) -> None:
    """``<split>.en`` and ``<split>.de`` files; the 'translation' reverses words and their letters."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, (split, n) in enumerate(sizes.items()):
        src = sentences(n, seed=i)
        tgt = [" ".join(w[::-1] for w in reversed(s.split())) for s in src]
        (directory / f"{split}.en").write_text("".join(s + "\n" for s in src), encoding="utf-8")
        (directory / f"{split}.de").write_text("".join(t + "\n" for t in tgt), encoding="utf-8")


def write_study(tmp: Path) -> Path:
    """Corpus (train 300, valid 20, test 30), ``base.yaml`` and ``study.yaml`` under ``tmp``; returns the study path."""
    write_corpus(tmp / "raw" / "toy", {"train": 300, "valid": 20, "test": 30})
    (tmp / "base.yaml").write_text(BASE_YAML.format(root=tmp / "raw", prepared=tmp / "prepared"), encoding="utf-8")
    study = tmp / "study.yaml"
    study.write_text(STUDY_YAML.format(out=tmp / "out"), encoding="utf-8")
    return study


def write_campaign(tmp: Path, study: Path, family: str = "toy en->de") -> Path:
    """``campaign.yaml`` under ``tmp``: one family of ``study`` as its self study, one claim
    ("0110-noabs" close to "1000"), verdicts into ``tmp/verdicts``; returns its path."""
    campaign = tmp / "campaign.yaml"
    campaign.write_text(f"""name: toy
results_dir: {tmp / 'verdicts'}
families:
  - name: "{family}"
    studies: {{self: {study}}}
claims:
  - {{id: "3", text: "close", parts: [{{study: self, a: "0110-noabs", b: "1000", test: close}}]}}
""", encoding="utf-8")
    return campaign


def toy_record(label: str, seed: int, **fields: Any) -> RunRecord:
    """A finished run's record with placeholder values (spec = label, BLEU 30, chrF 50, 4,000 updates),
    ``fields`` set on top."""
    values: dict[str, Any] = dict(
        label=label, seed=seed, spec=label, decoder_spec=None, vary="self", absolute_positions="no", bleu=30.0,
        chrf=50.0, bleu_signature="b", chrf_signature="c", test_sentences=1, flops={"total": 1}, attention_flops=1,
        params=1, train_steps=4000, train_tokens_per_s=None, decode_sentences_per_s=1.0, hypotheses="test.hyp",
        checkpoint="x")
    return RunRecord(**{**values, **fields})
