"""The Python API (``nmt.Translator``): it translates as ``nmt translate`` does, returns n-best lists
with scores, scores with sacrebleu, loads none of the training/study dependencies, and the example
script in ``examples/`` runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.paths import REPO

from nmt import Translator
from nmt.cli import main
from nmt.config import ConfigError

HEAVY = ("lightning", "pytorch_lightning", "datasets", "tensorboard", "matplotlib")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _copy_test(reverse_root: Path, n: int) -> list[str]:
    """The first ``n`` sources of the copy task's test split (each its own reference)."""
    return (reverse_root / "copy" / "test.src").read_text(encoding="utf-8").split("\n")[:n]


@pytest.fixture(scope="module")
def ckpt(trained_tiny) -> Path:
    return trained_tiny / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def translator(ckpt) -> Translator:
    return Translator(ckpt)


def test_translates_as_nmt_translate_does_and_scores(translator, ckpt, reverse_root, tmp_path):
    lines = _copy_test(reverse_root, 60)
    hyps = translator.translate(lines)
    inp, out = tmp_path / "in.txt", tmp_path / "out.txt"
    inp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    assert main(["translate", "--checkpoint", str(ckpt), "-i", str(inp), "-o", str(out)]) == 0
    assert hyps == out.read_text(encoding="utf-8").split("\n")[:-1]  # same defaults: the checkpoint's settings
    scores = translator.score(hyps, lines)  # the copy task: the sources are the references
    assert scores["bleu"] > 80 and scores["chrf"] > 80, scores
    assert scores["bleu_signature"].startswith("nrefs:1") and scores["chrf_signature"].startswith("nrefs:1")
    assert set(Translator.score(hyps, [lines], metrics=["bleu", "ter"])) == {"bleu", "bleu_signature", "ter", "ter_signature"}


def test_batches_keep_input_order_whatever_the_budget(ckpt, translator, reverse_root):
    lines = _copy_test(reverse_root, 20)
    small = Translator(ckpt, max_tokens=12)  # about one sentence a batch
    assert small.translate(lines, beam=1) == translator.translate(lines, beam=1)


def test_nbest_lists_with_scores_and_empty_sentences(translator, reverse_root):
    lines = [*_copy_test(reverse_root, 3), ""]
    best = translator.translate(lines, beam=3)
    nbest = translator.translate(lines, beam=3, nbest=3)
    assert len(nbest) == 4 and all(len(n) == 3 for n in nbest)
    assert all(isinstance(text, str) and isinstance(score, float) for n in nbest for text, score in n)
    assert [n[0][0] for n in nbest] == best and best[-1] == ""
    for n in nbest[:3]:
        assert [s for _, s in n] == sorted((s for _, s in n), reverse=True)
    assert translator.translate([]) == []


def test_bad_arguments_are_clear_errors(translator, ckpt):
    with pytest.raises(TypeError, match="list of sentences"):
        translator.translate("a b c")
    with pytest.raises(TypeError, match="sentence 1 is a int"):
        translator.translate(["a b", 3])
    with pytest.raises(ConfigError, match="nbest"):
        translator.translate(["a b"], beam=2, nbest=3)
    with pytest.raises(ConfigError, match="bogus"):
        translator.translate(["a b"], bogus=1)
    with pytest.raises(ValueError, match="CPU only"):
        Translator(ckpt, quantize="int8", device="cuda")
    with pytest.raises(ValueError, match="no checkpoint"):
        Translator([])


def test_int8_and_ensembles(ckpt, translator, reverse_root):
    lines = _copy_test(reverse_root, 20)
    int8 = Translator(ckpt, quantize="int8").translate(lines, beam=2)
    float32 = translator.translate(lines, beam=2)
    assert sum(a == b for a, b in zip(int8, float32)) >= 15
    assert Translator([ckpt, ckpt]).translate(lines[:5], beam=2) == translator.translate(lines[:5], beam=2)


def test_using_the_api_loads_no_training_or_study_dependency(ckpt):
    code = ("import sys; from nmt import Translator; t = Translator(sys.argv[1]); h = t.translate(['a b c', 'd e']);"
            "t.score(h, ['a b c', 'd e']); print(len(h));"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}))")
    r = subprocess.run([sys.executable, "-c", code, str(ckpt)], capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["2", "[]"], r.stdout


def test_importing_nmt_alone_loads_nothing_heavy():
    code = "import sys, nmt; print(nmt.__version__, 'torch' in sys.modules, 'nmt.translator' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    version, torch_loaded, translator_loaded = r.stdout.split()
    assert (torch_loaded, translator_loaded) == ("False", "False") and version[0].isdigit()


def test_the_example_script_translates_and_scores(ckpt, reverse_root, tmp_path):
    lines = _copy_test(reverse_root, 8)
    ref = tmp_path / "ref.txt"
    ref.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    script = str(REPO / "examples" / "translate.py")
    r = subprocess.run([sys.executable, script, str(ckpt), *lines, "--ref", str(ref)], capture_output=True, text=True,
                       env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout.split("\n")[:-1]
    assert len(out) == len(lines) and sum(a == b for a, b in zip(out, lines)) >= 6, out
    assert "BLEU " in r.stderr and "chrF " in r.stderr
    r = subprocess.run([sys.executable, script, str(ckpt), "--beam", "2", "--nbest", "2"], input=lines[0] + "\n",
                       capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [row.split("\t") for row in r.stdout.split("\n")[:-1]]
    assert [row[0] for row in rows] == ["0", "0"] and all(len(row) == 3 for row in rows)
