"""``nmt translate`` and checkpoint loading: no Lightning, n-best alignment, bad input (invalid
UTF-8, corrupt checkpoints) as one clear line with exit 2, and streaming through a pipe."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from helpers.checkpoints import random_checkpoint
from helpers.paths import REPO

from nmt.checkpoint import Checkpoint, CheckpointError
from nmt.cli import main
from nmt.model.transformer import Transformer


@pytest.fixture
def ckpt(make_experiment, tmp_path) -> Path:
    """A checkpoint of a randomly initialised tiny model over the reverse corpus's subword model."""
    return random_checkpoint(make_experiment("run"), tmp_path / "model.ckpt")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_loading_and_averaging_checkpoints_import_no_lightning(ckpt):
    code = ("import sys, nmt.inference as inf, nmt.train.average as avg; inf.load_model(sys.argv[1]);"
            "avg.average_checkpoints([sys.argv[1], sys.argv[1]]);"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning'));"
            "print(len(bad), bad[:5]); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code, str(ckpt)], capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_checkpoint_round_trip_and_lightning_layout(ckpt, tmp_path):
    from nmt.experiment import ExperimentConfig

    c = Checkpoint.load(ckpt)
    raw = torch.load(ckpt, weights_only=True)
    assert all(k.startswith("model.") for k in raw["state_dict"]) and raw["nmt"]["format"] == 1
    model = Transformer(ExperimentConfig.from_plain(c.config).model, c.vocab["src_size"], c.vocab["tgt_size"], 0)
    assert c.state_dict.keys() == model.state_dict().keys()  # the prefix is gone
    c.save(tmp_path / "again.ckpt")
    again = Checkpoint.load(tmp_path / "again.ckpt")
    assert all(torch.equal(again.state_dict[k], t) for k, t in c.state_dict.items()) and again.subword == c.subword
    raw["nmt"]["format"] = 99
    torch.save(raw, tmp_path / "future.ckpt")
    with pytest.raises(CheckpointError, match="future.ckpt: checkpoint format 99 is newer"):
        Checkpoint.load(tmp_path / "future.ckpt")


def test_checkpoint_carries_its_subword_models(ckpt, tmp_path):
    """Translation works when the subword model files recorded at training time are gone."""
    c = Checkpoint.load(ckpt)
    c.vocab = {**c.vocab, "src_model": str(tmp_path / "gone.model"), "tgt_model": str(tmp_path / "gone.model")}
    c.save(tmp_path / "moved.ckpt")
    inp = tmp_path / "in.txt"
    inp.write_text("a b c\n", encoding="utf-8")
    for name, out in (("model.ckpt", tmp_path / "a.txt"), ("moved.ckpt", tmp_path / "b.txt")):
        path = ckpt if name == "model.ckpt" else tmp_path / name
        assert main(["translate", "--checkpoint", str(path), "-i", str(inp), "-o", str(out), "--beam", "1"]) == 0
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == (tmp_path / "b.txt").read_text(encoding="utf-8")


def test_nbest_gives_nbest_lines_per_input_with_its_index(ckpt, tmp_path):
    inp, out = tmp_path / "in.txt", tmp_path / "out.txt"
    inp.write_text("a b c\n\nd e f g\n", encoding="utf-8")
    args = ["translate", "--checkpoint", str(ckpt), "-i", str(inp), "-o", str(out), "--beam", "3", "--nbest", "3"]
    assert main([*args, "--scores"]) == 0
    rows = [line.split("\t") for line in out.read_text(encoding="utf-8").split("\n")[:-1]]
    assert [r[0] for r in rows] == ["H-0"] * 3 + ["H-1"] * 3 + ["H-2"] * 3
    assert all(len(r) == 3 for r in rows) and [r[2] for r in rows[3:6]] == ["", "", ""]
    scores = [float(r[1]) for r in rows[:3]]
    assert scores == sorted(scores, reverse=True)
    assert main(args) == 0  # without --scores: the best hypothesis, one line per input
    assert out.read_text(encoding="utf-8").split("\n")[:-1] == [rows[0][2], "", rows[6][2]]


@pytest.mark.parametrize("via", ["stdin", "input"])
def test_invalid_utf8_is_one_line_with_exit_2_and_keeps_earlier_output(ckpt, tmp_path, monkeypatch, capsys, via):
    data = b"a b c\nd \xff e\nf g\n"
    inp = tmp_path / "bad.txt"
    inp.write_bytes(data)
    name = "<stdin>" if via == "stdin" else str(inp)
    args = ["translate", "--checkpoint", str(ckpt), "--beam", "1"]
    if via == "stdin":
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    else:
        args += ["-i", str(inp)]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert f"error: {name}: line 2: byte 0xff at byte offset 8 (column 3) is not valid UTF-8" in captured.err
    assert "Traceback" not in captured.err
    assert len(captured.out.split("\n")[:-1]) == 1  # the line before the bad one was translated and written


def test_corrupt_or_foreign_checkpoint_is_one_line_with_exit_2(ckpt, tmp_path, capsys):
    truncated, text = tmp_path / "truncated.ckpt", tmp_path / "text.ckpt"
    data = ckpt.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text.write_text("not a checkpoint\n", encoding="utf-8")
    inp = tmp_path / "in.txt"
    inp.write_text("a b\n", encoding="utf-8")
    for bad in (truncated, text):
        for cmd in (["translate", "--checkpoint", str(bad), "-i", str(inp)],
                    ["average", "--checkpoints", str(ckpt), str(bad), "-o", str(tmp_path / "avg.ckpt")]):
            assert main(cmd) == 2, cmd
            err = capsys.readouterr().err
            assert f"{bad} is not a valid checkpoint" in err and err.count("\n") == 1, err
            assert "weights_only" not in err


def test_stdin_pipe_gets_each_chunk_before_eof(ckpt):
    """One line in, its translation out, while the pipe stays open (as fairseq-interactive)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nmt.cli", "translate", "--checkpoint", str(ckpt), "--beam", "2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        proc.stdin.write(b"a b c\n")
        proc.stdin.flush()
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=240)  # model loading included; the pipe is still open
        assert got and got[0].endswith(b"\n"), "no output line before EOF"
        rest, err = proc.communicate(b"d e\n", timeout=240)
        assert proc.returncode == 0, err.decode()
        assert len(rest.split(b"\n")[:-1]) == 1
    finally:
        proc.kill()
        proc.wait()


def test_chunks_keep_order_and_size_and_raise_after_what_was_read():
    from nmt.inference import chunks

    parts = list(chunks((str(i) for i in range(25)), 10))
    assert all(1 <= len(c) <= 10 for c in parts) and sum(parts, []) == [str(i) for i in range(25)]

    def failing():
        yield from ("a", "b")
        raise ValueError("bad line 3")

    got = []
    with pytest.raises(ValueError, match="bad line 3"):
        for c in chunks(failing(), 10):
            got += c
    assert got == ["a", "b"]
