"""Tables, p-values, plot and measurements of a study, on fake run records."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest

from nmt.ablate.measure import corpus_flops, corpus_flops_per_batch, token_lengths
from nmt.ablate.plot import plot_study
from nmt.ablate.results import (
    RunRecord,
    load_record,
    results_json,
    rows_csv,
    rows_markdown,
    save_json_atomic,
    summarise,
)
from nmt.ablate.significance import setting_p_value
from nmt.config import ConfigError, to_dict
from nmt.io import read_lines
from nmt.model.config import ModelConfig
from nmt.model.transformer import Transformer

PNG = b"\x89PNG\r\n\x1a\n"


def record(label: str, seed: int, bleu: float, attn: int = 2_000_000_000, tok_s: float | None = 1000.0) -> RunRecord:
    return RunRecord(
        label=label, seed=seed, spec=label, decoder_spec=None, vary="self", absolute_positions="yes",
        bleu=bleu, chrf=bleu + 20, bleu_signature="nrefs:1|tok:13a", chrf_signature="nrefs:1|nc:6",
        test_sentences=3, flops={"encoder_self": attn // 2, "decoder_self": attn // 2, "total": 5 * attn},
        attention_flops=attn, params=1_500_000, train_steps=10, train_tokens_per_s=tok_s,
        decode_sentences_per_s=50.0, hypotheses="test.hyp", checkpoint="checkpoints/last.ckpt",
    )


RECORDS = [record("1111", 1, 30.0), record("1111", 2, 32.0), record("0100", 1, 28.0, attn=1_000_000_000),
           record("0100", 2, 29.0, attn=1_000_000_000, tok_s=None), record("1000", 1, 25.0, tok_s=None)]


def test_summarise_means_spread_and_order() -> None:
    rows = summarise(RECORDS, ["0100", "w/o", "1111", "1000"], "1111", {"0100": 0.0004, "1000": 0.2, "1111": 0.5})
    assert [r.label for r in rows] == ["0100", "1111", "1000"]  # order kept, labels without records dropped
    r0100, r1111, r1000 = rows
    assert r1111.bleu_mean == pytest.approx(31.0) and r1111.bleu_std == pytest.approx(2 ** 0.5)  # sample std
    assert r1111.chrf_mean == pytest.approx(51.0) and r1111.seeds == [1, 2]
    assert r1111.reference and r1111.p_value is None  # the reference has no p-value against itself
    assert r0100.attention_gflops == pytest.approx(1.0) and r0100.total_gflops == pytest.approx(5.0)
    assert r0100.train_tokens_per_s == pytest.approx(1000.0)  # seeds without a measure are left out
    assert r1000.bleu_std == 0.0 and r1000.train_tokens_per_s is None and r1000.p_value == 0.2


def test_csv_markdown_and_json() -> None:
    rows = summarise(RECORDS, ["1111", "0100", "1000"], "1111", {"0100": 0.0004, "1000": 0.2})
    table = list(csv.DictReader(io.StringIO(rows_csv(rows))))
    assert [t["label"] for t in table] == ["1111", "0100", "1000"]
    assert table[0]["seeds"] == "1 2" and table[0]["p_value"] == "" and float(table[1]["p_value"]) == 0.0004
    assert table[2]["train_tokens_per_s"] == "" and float(table[2]["train_steps"]) == 10
    md = rows_markdown(rows, "self study", ["Not finished: w/o (seed 1)."])
    lines = md.splitlines()
    assert lines[0] == "## self study" and lines[-1] == "Not finished: w/o (seed 1)."
    ref = next(line for line in lines if "**1111**" in line)
    assert "31.00 ± 1.41" in ref and "| ref |" in ref and "| 51.00 | 2 | 10 | 1.50 | – | – | 10 | 1,000 | 50.0 |" in ref
    assert "| <0.001 |" in next(line for line in lines if line.startswith("| 0100 |"))
    assert "| – | 50.0 | 0.200 |" in next(line for line in lines if line.startswith("| 1000 |"))
    data = results_json({"name": "s"}, rows, RECORDS)
    assert json.loads(json.dumps(data))["runs"][0]["total_flops"] == 10_000_000_000
    assert data["settings"][0]["label"] == "1111"


def test_record_round_trip_and_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "r" / "result.json"
    save_json_atomic(path, to_dict(RECORDS[0]))
    assert load_record(path) == RECORDS[0] and not list(path.parent.glob("*.tmp"))
    path.write_text(json.dumps({**to_dict(RECORDS[0]), "bleu": "high"}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"result.json: not a valid run result: bleu: expected a number"):
        load_record(path)


REFS = ["a man rides a red bike down the street", "two dogs play in the green grass",
        "a woman sits on a bench near the water", "the child throws a small ball"]


def _noisy(lines: list[str], p: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(w if rng.random() > p else "xx" for w in line.split()) for line in lines]


def _hyp(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_setting_p_value_pairs_common_seeds(tmp_path: Path) -> None:
    refs = REFS * 10
    system = {1: _hyp(tmp_path / "s1", _noisy(refs, 0.05, 1)), 2: _hyp(tmp_path / "s2", _noisy(refs, 0.05, 2)),
              3: _hyp(tmp_path / "s3", ["short"] * 7)}  # seed 3 has no reference run: ignored
    base = {1: _hyp(tmp_path / "b1", _noisy(refs, 0.6, 3)), 2: _hyp(tmp_path / "b2", _noisy(refs, 0.6, 4))}
    p = setting_p_value(system, base, refs, 200)
    assert p is not None and p < 0.01
    assert setting_p_value({3: system[3]}, base, refs, 200) is None  # no common seed
    assert setting_p_value(system, base, refs, 0) is None  # bootstrap off
    assert setting_p_value({**system, 1: tmp_path / "gone"}, base, refs, 200) is None
    assert setting_p_value(system, {**base, 2: _hyp(tmp_path / "b3", ["x"] * 5)}, refs, 200) is None
    close = {1: _hyp(tmp_path / "c1", _noisy(refs, 0.06, 5)), 2: _hyp(tmp_path / "c2", _noisy(refs, 0.06, 6))}
    p_close = setting_p_value(close, {k: system[k] for k in (1, 2)}, refs, 200)
    assert p_close is not None and p_close > 0.05


def test_read_lines_splits_only_on_newline(tmp_path: Path) -> None:
    path = tmp_path / "h"
    path.write_text("a\u2028b\n\nc\r\n", encoding="utf-8", newline="")
    assert read_lines(path) == ["a\u2028b", "", "c"]


def test_plot_writes_png(tmp_path: Path) -> None:
    rows = summarise(RECORDS, ["1111", "0100", "1000"], "1111", {})
    assert plot_study(rows, tmp_path / "p" / "study.png", "t", "GFLOPs").read_bytes()[:8] == PNG
    assert plot_study([], tmp_path / "empty.png", "t", "GFLOPs").read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == ["empty.png", "study.png"]


class FakeVocab:
    """Whitespace 'subwords': one token per word."""

    def encode_src(self, lines: list[str]) -> list[list[int]]:
        return [[5] * len(line.split()) for line in lines]

    encode_tgt = encode_src


def test_corpus_flops_sums_model_flops_over_real_lengths() -> None:
    cfg = ModelConfig(d_model=16, n_heads=2, d_ff=32, encoder_layers=1, decoder_layers=2,
                      encoder_self="0110", decoder_self="1111", cross="1000")
    model = Transformer(cfg, 20, 20, 0)
    sources, refs = ["a b c", "a b c", "d e", "f"], ["x y", "x y", "z z z z", "w"]
    lengths = token_lengths(FakeVocab(), sources, refs)
    flops = corpus_flops(model, lengths)
    pairs = [(4, 3), (4, 3), (3, 5), (2, 2)]  # +1 each side
    expected = [model.flops(s, t) for s, t in pairs]
    tables = [model.shared_flops(s, t) for s, t in pairs]  # charged once per sentence
    assert tables[0]["encoder_self"] > 0 and tables[0]["decoder_self"] > 0 and tables[0]["cross"] == 0
    parts = ["encoder_self", "decoder_self", "cross", "ffn", "output"]
    assert flops == {**{k: sum(e[k] for e in expected) + sum(t.get(k, 0) for t in tables) for k in parts},
                     "total": sum(e["total"] for e in expected) + sum(sum(t.values()) for t in tables)}
    assert flops["total"] == sum(v for k, v in flops.items() if k != "total")
    with pytest.raises(ValueError, match="4 sources but 3 references"):
        token_lengths(FakeVocab(), sources, refs[:3])
    # once per batch: one batch of all four at its longest lengths, or one batch per sentence
    one = corpus_flops_per_batch(model, lengths, max_tokens=1000)
    shared = model.shared_flops(4, 5)
    assert one == {**{k: sum(e[k] for e in expected) + shared.get(k, 0) for k in parts},
                   "total": sum(e["total"] for e in expected) + sum(shared.values())}
    assert corpus_flops_per_batch(model, lengths, max_tokens=1) == flops
    assert one["total"] < flops["total"]


def test_comparisons_give_the_seed_level_interval() -> None:
    from nmt.ablate.results import compare_runs, comparisons_markdown

    records = [record("A", 1, 30.0), record("A", 2, 31.0), record("A", 3, 30.5),
               record("B", 1, 29.0), record("B", 2, 29.5), record("B", 3, 30.0)]
    c = compare_runs(records, "A", "B", 0.2)
    assert c is not None and c.seeds == [1, 2, 3]
    half = 4.302652730 * 0.5 / 3 ** 0.5  # diffs 1.0, 1.5, 0.5: mean 1.0, sd 0.5
    assert (c.diff_ci_low, c.diff_ci_high) == pytest.approx((1.0 - half, 1.0 + half))
    assert f"| A | B | 1 2 3 | 30.50 | 29.50 | +1.00 | [{1 - half:+.2f}, {1 + half:+.2f}] | 0.200 |" in \
        "\n".join(comparisons_markdown([c]))
    one = compare_runs(records[:1] + records[3:4], "A", "B", None)
    assert one is not None and one.diff_ci_low is None and "| +1.00 | – | – |" in "\n".join(comparisons_markdown([one]))


def test_sublayer_time_is_measured_per_varied_part_and_reported() -> None:
    from nmt.ablate.measure import sublayer_ms
    from nmt.config import from_dict as build
    from nmt.model.config import ModelConfig
    from nmt.model.transformer import Transformer

    small = {"d_model": 16, "n_heads": 2, "d_ff": 32, "encoder_layers": 1, "decoder_layers": 1}
    model = Transformer(build(ModelConfig, {**small, "encoder_self": "1111"}), 20, 20, 0)
    both = sublayer_ms(model, ("encoder_self", "cross"), lengths=(5, 9), batch=2, repeats=2)
    assert set(both) == {"5", "9"} and all(v > 0 for v in both.values())
    without = Transformer(build(ModelConfig, {**small, "encoder_self": "w/o", "decoder_self": "w/o"}), 20, 20, 0)
    assert sublayer_ms(without, ("encoder_self", "decoder_self"), lengths=(5,), batch=2) == {"5": 0.0}
