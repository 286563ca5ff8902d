"""What ``nmt translate`` refuses before it reads or writes a line, and how it ends when its reader
goes away: an output that is the input (also through links), closed standard streams, ensembles of
different vocabularies, a closed pipe downstream."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.checkpoints import random_checkpoint
from helpers.paths import REPO
from helpers.synthetic import tiny_experiment

from nmt.cli import main

TEXT = "a b c\nd e f g\n"


@pytest.fixture
def ckpt(make_experiment, tmp_path) -> Path:
    """A checkpoint of a randomly initialised tiny model over the reverse corpus's subword model."""
    return random_checkpoint(make_experiment("run"), tmp_path / "model.ckpt")


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(ckpt, source, tmp_path, monkeypatch, capsys):
    (tmp_path / "sym.txt").symlink_to(source)
    os.link(source, tmp_path / "hard.txt")
    for out in (source, tmp_path / "sym.txt", tmp_path / "hard.txt", tmp_path / "." / "in.txt"):
        assert main(["translate", "--checkpoint", str(ckpt), "-i", str(source), "-o", str(out), "--beam", "1"]) == 2
        err = _one_line(capsys.readouterr().err)
        assert f"the output {out} is the input {source}" in err
        assert source.read_text(encoding="utf-8") == TEXT
    with source.open(encoding="utf-8") as stdin:  # nmt translate < in.txt -o in.txt
        monkeypatch.setattr(sys, "stdin", stdin)
        assert main(["translate", "--checkpoint", str(ckpt), "-o", str(tmp_path / "hard.txt"), "--beam", "1"]) == 2
    assert "is the file on standard input" in _one_line(capsys.readouterr().err)
    assert source.read_text(encoding="utf-8") == TEXT
    other = tmp_path / "out.txt"  # the control: another file is written
    assert main(["translate", "--checkpoint", str(ckpt), "-i", str(source), "-o", str(other), "--beam", "1"]) == 0
    assert len(other.read_text(encoding="utf-8").splitlines()) == 2


def test_closed_standard_streams_are_one_line_with_exit_2(ckpt, source, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", None)  # what Python makes of a closed descriptor 0 (`nmt translate <&-`)
    assert main(["translate", "--checkpoint", str(ckpt)]) == 2
    assert "standard input is closed: give --input FILE" in _one_line(capsys.readouterr().err)
    monkeypatch.undo()
    with monkeypatch.context() as m:
        m.setattr(sys, "stdout", None)  # `nmt translate >&-`
        code = main(["translate", "--checkpoint", str(ckpt), "-i", str(source)])
    assert code == 2
    assert "standard output is closed: give --output FILE" in _one_line(capsys.readouterr().err)


def test_a_closed_stdin_descriptor_is_one_line(ckpt):
    cmd = f"{sys.executable} -m nmt.cli translate --checkpoint {ckpt} --beam 1 <&-"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "error: nmt translate: standard input is closed" in r.stderr


def test_a_reader_that_goes_away_ends_translation_quietly(ckpt):
    """``nmt translate ... | head -1``: the first line arrives, then the pipe closes; no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nmt.cli", "translate", "--checkpoint", str(ckpt), "--beam", "1", "--chunk_lines", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        proc.stdin.write(b"a b c\n" * 300)
        proc.stdin.close()
        assert proc.stdout.readline().endswith(b"\n")
        proc.stdout.close()  # head -1 exits
        err = proc.stderr.read().decode()
        proc.wait(timeout=300)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode in (0, 141), err
    assert "Traceback" not in err and "Broken pipe" not in err and "Exception ignored" not in err, err


@pytest.mark.parametrize("vocab_size, difference", [
    (24, "different source and target subword models of the same size"),
    (28, "src_size 24 vs 28; tgt_size 24 vs 28"),
])
def test_an_ensemble_of_different_vocabularies_is_refused_naming_the_members(
    ckpt, source, shifted_root, tmp_path, capsys, vocab_size, difference
):
    cfg = tiny_experiment(shifted_root, tmp_path / "other", data={"subword": {"vocab_size": vocab_size, "model_type": "bpe"}})
    other = random_checkpoint(cfg, tmp_path / "other.ckpt")
    out = tmp_path / "out.txt"
    assert main(["translate", "--checkpoint", str(ckpt), str(other), "-i", str(source), "-o", str(out)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"cannot ensemble {ckpt} and {other}: their vocabularies differ ({difference}" in err
    assert not out.exists()


def test_an_ensemble_of_one_vocabulary_translates(ckpt, source, make_experiment, tmp_path):
    """The control of the test above: another model over the same subword model ensembles."""
    twin = random_checkpoint(make_experiment("run"), tmp_path / "twin.ckpt", seed=1)
    out = tmp_path / "out.txt"
    assert main(["translate", "--checkpoint", str(ckpt), str(twin), "-i", str(source), "-o", str(out), "--beam", "2"]) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2
