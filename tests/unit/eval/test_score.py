"""sacrebleu scoring helpers: agreement with sacrebleu, signatures, file handling, errors."""

from __future__ import annotations

import importlib
import json
import urllib.error

import pytest
import sacrebleu

from nmt.eval.score import ScoreError, format_results, score, score_files

score_mod = importlib.import_module("nmt.eval.score")  # testset_refs via the module: pytest would collect it

REFS = ["the cat sat on the mat .", "a quick brown fox jumps over the dog", "hello world"]
HYPS = ["the cat sat on a mat .", "the quick brown fox jumped over the dog", "hello world"]
REFS2 = ["a cat sat on the mat .", "a fast brown fox jumps over the dog", "hello , world"]


def test_scores_match_sacrebleu():
    results = {r.name: r for r in score(HYPS, REFS, ("bleu", "chrf", "chrf++", "ter"))}
    assert results["BLEU"].score == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)
    assert results["chrF2"].score == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score)
    assert results["chrF2++"].score == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS], word_order=2).score)
    assert results["TER"].score == pytest.approx(sacrebleu.corpus_ter(HYPS, [REFS]).score)
    assert results["BLEU"].signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert "nc:6" in results["chrF2"].signature and "tok:tercom" in results["TER"].signature
    assert 0 < results["BLEU"].score < 100


def test_known_bleu_value():
    """Perfect output scores 100; one 4-word hypothesis with 3/4, 1/3, 0/2, 0/1 matches gives
    sacrebleu's exponentially smoothed value."""
    assert score(REFS, REFS, ("bleu",))[0].score == pytest.approx(100.0)
    bleu = score(["the cat sat down"], ["the cat ran down"], ("bleu",))[0]
    # precisions 3/4, 1/3, smoothed 1/(2*2), 1/(4*1); brevity penalty 1
    import math

    expected = 100 * math.exp((math.log(3 / 4) + math.log(1 / 3) + math.log(1 / 4) + math.log(1 / 4)) / 4)
    assert bleu.score == pytest.approx(expected, rel=1e-6)


def test_multiple_references_and_options():
    multi = score(HYPS, [REFS, REFS2], ("bleu",))[0]
    assert multi.score == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS, REFS2]).score)
    assert multi.signature.startswith("nrefs:2|")
    lower = score([h.upper() for h in HYPS], REFS, ("bleu",), lowercase=True)[0]
    assert "case:lc" in lower.signature
    assert lower.score == pytest.approx(score(HYPS, REFS, ("bleu",))[0].score)
    assert "tok:none" in score(HYPS, REFS, ("bleu",), tokenize="none")[0].signature


def test_errors():
    with pytest.raises(ScoreError, match="unknown metric 'meteor'"):
        score(HYPS, REFS, ("meteor",))
    with pytest.raises(ScoreError, match="3 hypotheses but reference stream 1 has 2"):
        score(HYPS, [REFS, REFS2[:2]])


def test_score_files(tmp_path):
    hyp, ref, ref2, short = (tmp_path / n for n in ("hyp.txt", "ref.txt", "ref2.txt", "short.txt"))
    hyp.write_text("\n".join(HYPS) + "\n", encoding="utf-8")
    ref.write_text("\n".join(REFS), encoding="utf-8")  # no final newline: same lines
    ref2.write_text("\n".join(REFS2) + "\n", encoding="utf-8")
    short.write_text("\n".join(REFS[:2]) + "\n", encoding="utf-8")
    from_files = score_files(hyp, [ref, ref2])
    assert [r.score for r in from_files] == pytest.approx([r.score for r in score(HYPS, [REFS, REFS2])])
    assert score_files(str(hyp), str(ref), ("bleu",))[0].score == pytest.approx(
        score(HYPS, REFS, ("bleu",))[0].score
    )
    with pytest.raises(ScoreError, match=r"hyp.txt has 3 lines, .*short.txt has 2"):
        score_files(hyp, [ref, short])
    with pytest.raises(ScoreError, match="file not found: .*missing.txt"):
        score_files(hyp, tmp_path / "missing.txt")


def test_format_results():
    results = score(HYPS, REFS)
    text = format_results(results)
    lines = text.splitlines()
    assert lines[0].startswith("BLEU = ") and lines[1].startswith("  signature: nrefs:1|")
    assert lines[2].startswith("chrF2 = ") and lines[4].startswith("TER = ")
    data = json.loads(format_results(results, as_json=True))
    assert [d["name"] for d in data] == ["BLEU", "chrF2", "TER"]
    assert data[0]["signature"] == results[0].signature
    assert data[0]["lengths"] == {"hyp_len": results[0].lengths.hyp_len, "ref_len": results[0].lengths.ref_len,
                                  "bp": results[0].lengths.bp} and data[1]["lengths"] is None


def test_bleu_lengths_are_sacrebleus():
    """Output and reference length and brevity penalty as sacrebleu's BLEU computes them, with
    several reference streams (closest reference length) and a short output (BP < 1)."""
    hyps = ["the cat sat", "a dog"]
    refs = [["the cat sat on the mat", "a dog barked"], ["the cat sat down", "a dog"]]
    bleu = score(hyps, refs, ("bleu", "chrf", "ter"))
    expected = sacrebleu.BLEU().corpus_score(hyps, refs)
    lengths = bleu[0].lengths
    assert (lengths.hyp_len, lengths.ref_len, lengths.bp) == (expected.sys_len, expected.ref_len, expected.bp)
    assert lengths.hyp_len == 5 and lengths.ref_len == 6 and lengths.bp < 1  # closest references: 4 and 2
    assert lengths.ratio == pytest.approx(5 / 6)
    assert bleu[1].lengths is None and bleu[2].lengths is None


def test_testset_refs_errors(monkeypatch):
    with pytest.raises(ScoreError, match="unknown sacrebleu test set 'wmt141'.*wmt14"):
        score_mod.testset_refs("wmt141", "en-de")
    with pytest.raises(ScoreError, match="no language pair 'en-xx'"):
        score_mod.testset_refs("wmt14", "en-xx")
    from sacrebleu.dataset import DATASETS

    def offline(langpair):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(DATASETS["wmt14"], "get_reference_files", offline)
    with pytest.raises(ScoreError) as err:
        score_mod.testset_refs("wmt14", "en-de")
    assert "wmt14 en-de" in str(err.value) and "\n" not in str(err.value)


def test_testset_refs_reads_cached_files(monkeypatch, tmp_path):
    from sacrebleu.dataset import DATASETS

    path = tmp_path / "newstest2014.de"
    path.write_text("Hallo Welt\nZweite Zeile\n", encoding="utf-8")
    monkeypatch.setattr(DATASETS["wmt14"], "get_reference_files", lambda langpair: [str(path)])
    assert score_mod.testset_refs("wmt14", "en-de") == [["Hallo Welt", "Zweite Zeile"]]


def test_empty_files_are_a_clear_error(tmp_path, capsys):
    from nmt.cli import main

    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_bytes(b"")
    ref.write_bytes(b"")
    with pytest.raises(ScoreError, match="hyp.txt is empty"):
        score_files(hyp, ref)
    assert main(["score", "--hyp", str(hyp), "--ref", str(ref)]) == 2
    assert "hyp.txt is empty" in capsys.readouterr().err


def test_invalid_utf8_names_file_and_line(tmp_path):
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("a\nb\n", encoding="utf-8")
    ref.write_bytes(b"a\nb \xe4\n")
    with pytest.raises(ScoreError, match=f"{ref}: line 2: byte 0xe4 .* is not valid UTF-8"):
        score_files(hyp, ref)


def test_lines_split_as_prepare_splits_them(tmp_path):
    """A lone carriage return or U+2028 stays inside its line; a CRLF ending reads like LF."""
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_bytes("the cat\rsat\nhello\u2028world\r\n".encode())
    ref.write_bytes(b"the cat sat\nhello world\n")
    [bleu] = score_files(hyp, ref, ("bleu",))
    expected = score(["the cat\rsat", "hello\u2028world"], ["the cat sat", "hello world"], ("bleu",))[0]
    assert bleu.score == pytest.approx(expected.score)
