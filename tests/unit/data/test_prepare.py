"""prepare(): subword models, encoding, the cache (reuse, invalidation, atomic writes), existing models."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
from helpers.paths import REPO, SHARED

from nmt.data import binarized
from nmt.data import prepare as prepare_mod
from nmt.data.config import SubwordConfig
from nmt.data.errors import DataError
from nmt.data.prepare import load_prepared, prepare
from nmt.lock import FileLock

PEER_MODEL = SHARED / "bench" / "peers" / "spm8k.model"


def count_encodes(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = prepare_mod._encode_split

    def spy(pf, *args, **kwargs):
        calls.append(pf.split)
        return real(pf, *args, **kwargs)

    monkeypatch.setattr(prepare_mod, "_encode_split", spy)
    return calls


def test_own_model_special_ids_and_sequences(toy):
    data = load_prepared(toy)
    v = data.vocab
    assert (v.pad_id, v.unk_id, v.bos_id, v.eos_id) == (0, 1, 2, 3)
    assert v.joint and v.src_size == v.tgt_size == 120
    lines = data.source_text("valid")
    ids = v.encode_src(lines[:3])
    assert [v.decode_src(x + [v.eos_id, 7, 8]) for x in ids] == lines[:3]
    split = data.splits["valid"]
    assert np.array_equal(split.src(0), ids[0]) and len(split) == 40
    assert data.target_text("valid")[5] == v.decode_tgt(split.tgt(5).tolist())


def test_second_run_reuses_cache_and_changes_invalidate(toy, monkeypatch):
    calls = count_encodes(monkeypatch)
    first = prepare(toy, progress=False)
    assert sorted(calls) == ["test", "train", "valid"] and not any(s.cached for s in first.splits.values())
    calls.clear()
    second = prepare(toy, progress=False)
    assert calls == [] and all(s.cached for s in second.splits.values())
    assert second.directory == first.directory

    test_en = Path(toy.root) / "toy" / "test.en"
    st = test_en.stat()
    os.utime(test_en, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touch: only the test split changes
    prepare(toy, progress=False)
    assert calls == ["test"]

    calls.clear()
    train_de = Path(toy.root) / "toy" / "train.de"
    train_de.write_text(train_de.read_text(encoding="utf-8") + "neu\n", encoding="utf-8")
    with (Path(toy.root) / "toy" / "train.en").open("a", encoding="utf-8") as f:
        f.write("new\n")
    third = prepare(toy, progress=False)  # new training text: new subword model, everything re-encoded
    assert sorted(calls) == ["test", "train", "valid"] and third.directory != first.directory
    assert third.splits["train"].sentences == 301

    calls.clear()
    toy.filter.max_len = 5  # filter options are part of the train split's key only
    prepare(toy, progress=False)
    assert calls == ["train"]


def test_crash_mid_write_leaves_no_valid_cache(toy, monkeypatch):
    real_save = np.save
    saved = []

    def crashing_save(path, arr):
        saved.append(path)
        if len(saved) == 3:
            raise KeyboardInterrupt("simulated crash")
        real_save(path, arr)

    monkeypatch.setattr(binarized.np, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        prepare(toy, progress=False)
    spm_dir = next((Path(toy.prepared_dir) / "toy" / "en-de").glob("spm-*"))
    assert binarized.is_complete(spm_dir)  # the model finished before the crash
    assert [p.name for p in spm_dir.iterdir() if p.is_dir()] == []  # no split folder, no temporary left
    monkeypatch.setattr(binarized.np, "save", real_save)
    calls = count_encodes(monkeypatch)
    summary = prepare(toy, progress=False)
    assert sorted(calls) == ["test", "train", "valid"] and summary.splits["train"].sentences == 300


def test_killed_process_leftover_is_never_read(toy, monkeypatch):
    data = load_prepared(toy)
    spm_dir = data.directory
    done = data.splits["valid"].directory
    leftover = spm_dir / f".tmp-{done.name}-999-dead"
    leftover.mkdir()
    (leftover / "src.tokens.npy").write_bytes(b"half")
    for p in done.iterdir():
        p.unlink()
    done.rmdir()
    calls = count_encodes(monkeypatch)
    prepare(toy, progress=False)
    assert calls == ["valid"]


def test_truncated_cached_array_is_named_and_rebuilt(toy, monkeypatch, caplog):
    data = load_prepared(toy)
    tokens = data.splits["valid"].directory / "src.tokens.npy"
    full = tokens.read_bytes()
    tokens.write_bytes(full[: len(full) - 9])  # a crash of the disk, not of prepare: meta.json is there
    with pytest.raises(binarized.CorruptCache, match=f"{tokens}: .*truncated"):
        binarized.EncodedSplit(tokens.parent)
    calls = count_encodes(monkeypatch)
    with caplog.at_level("WARNING"):
        summary = prepare(toy, progress=False)
    assert calls == ["valid"] and not summary.splits["valid"].cached
    assert str(tokens) in caplog.text and "rebuilding" in caplog.text
    assert tokens.read_bytes() == full
    rebuilt = load_prepared(toy)
    assert rebuilt.splits["valid"].src(39).tolist() == rebuilt.vocab.encode_src(rebuilt.source_text("valid")[39:])[0]


def test_separate_models(toy):
    toy.subword = SubwordConfig(vocab_size=100, joint=False, model_type="bpe")
    v = load_prepared(toy).vocab
    assert not v.joint and v.src_model_path != v.tgt_model_path
    assert v.src_size == v.tgt_size == 100 and (v.pad_id, v.bos_id, v.eos_id) == (0, 2, 3)


def test_vocab_too_large_is_a_clear_error(toy):
    toy.subword = SubwordConfig(vocab_size=50000)
    with pytest.raises(DataError, match="data.subword.vocab_size=50000"):
        prepare(toy, progress=False)


def write_model_with_other_ids(tmp_path: Path) -> Path:
    text = tmp_path / "spm.txt"
    text.write_text("".join(f"the dog number {i} runs home\n" for i in range(200)), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(tmp_path / "other"), vocab_size=40,
                                   unk_id=0, bos_id=1, eos_id=2, pad_id=39, minloglevel=2, num_threads=1)
    return tmp_path / "other.model"


def test_existing_model_is_used_as_is(toy, tmp_path):
    model = PEER_MODEL if PEER_MODEL.is_file() else write_model_with_other_ids(tmp_path)
    toy.subword = SubwordConfig(model=str(model))
    data = load_prepared(toy)
    v = data.vocab
    size = spm.SentencePieceProcessor(model_file=str(model)).get_piece_size()
    assert (v.unk_id, v.bos_id, v.eos_id, v.pad_id) == (0, 1, 2, size - 1)
    assert v.src_model_path.read_bytes() == model.read_bytes()
    assert data.splits["train"].src(0).tolist() == v.encode_src([data.source_text("train")[0]])[0]


def test_existing_model_without_pad_is_rejected(toy, tmp_path):
    text = tmp_path / "spm.txt"
    text.write_text("".join(f"the dog number {i} runs home\n" for i in range(200)), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(tmp_path / "nopad"), vocab_size=40,
                                   minloglevel=2, num_threads=1)
    toy.subword = SubwordConfig(model=str(tmp_path / "nopad.model"))
    with pytest.raises(DataError, match="no pad piece"):
        prepare(toy, progress=False)


def test_missing_given_model(toy):
    toy.subword = SubwordConfig(model="/nonexistent/x.model")
    with pytest.raises(DataError, match="data.subword.model: .*not found"):
        prepare(toy, progress=False)


def test_max_train_pairs(toy):
    toy.max_train_pairs = 50
    summary = prepare(toy, progress=False)
    assert summary.splits["train"].sentences == 50 and summary.splits["valid"].sentences == 40


@pytest.mark.parametrize("side", ["both", "given model"])
def test_an_empty_training_split_is_named(toy, tmp_path, side):
    root = Path(toy.root) / "toy"
    for lang in ("en", "de"):
        (root / f"train.{lang}").write_text("\n\n" if side == "both" else "", encoding="utf-8")
    if side == "given model":  # no subword training: the encoded split is found empty
        toy.subword = SubwordConfig(model=str(write_model_with_other_ids(tmp_path)))
    with pytest.raises(DataError) as empty:
        prepare(toy, progress=False)
    assert str(empty.value).startswith(f"the training split (data.splits.train) is empty: {root / 'train.en'} and "
                                       f"{root / 'train.de'}")
    assert "SentencePiece" not in str(empty.value) and "\n" not in str(empty.value)


def test_a_training_split_that_the_filters_empty_is_named(toy):
    toy.filter.max_len = 1
    with pytest.raises(DataError, match=r"training split \(data.splits.train\) is empty: .*data.filter dropped all 300"
                                        r" pairs \(too_long=300\)"):
        prepare(toy, progress=False)


def test_an_empty_validation_split_is_refused(toy):
    root = Path(toy.root) / "toy"
    for lang in ("en", "de"):
        (root / f"valid.{lang}").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=f"the validation split \\(data.splits.valid\\) is empty: {root / 'valid.en'}"):
        prepare(toy, progress=False)


def test_a_prepare_killed_by_sigterm_leaves_a_folder_the_next_run_removes(toy, caplog):
    """SIGTERM's default action skips every clean-up: the temporary corpus stays until a later prepare
    removes it. Folders of live builds (this process's) and young ones without an owner stay."""
    base = Path(toy.prepared_dir) / "toy" / "en-de"
    base.mkdir(parents=True)
    script = ("import os, signal, sys\nfrom pathlib import Path\nfrom nmt.data.binarized import atomic_dir\n"
              "with atomic_dir(Path(sys.argv[1])) as tmp:\n    (tmp / 'train.txt').write_bytes(b'x' * 100_000)\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n")
    killed = subprocess.run([sys.executable, "-c", script, str(base / "spm-0123456789abcdef")],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert killed.returncode == -signal.SIGTERM
    (left,) = base.glob(".tmp-spm-*")
    assert (left / "train.txt").is_file() and (left / binarized.OWNER).is_file()
    dead_pid = int(left.name.split("-")[-2])
    old = base / f".tmp-spm-old-{dead_pid}-deadbeef"  # an older version's folder: no owner file
    young = base / f".tmp-spm-young-{dead_pid}-cafe0123"
    live = base / f".tmp-spm-live-{os.getpid()}-0badf00d"
    for d in (old, young, live):
        d.mkdir()
    FileLock(live / binarized.OWNER).acquire()
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    with caplog.at_level("WARNING"):
        prepare(toy, progress=False)
    assert not left.exists() and not old.exists() and young.is_dir() and live.is_dir()
    assert "removed 2 temporary folder(s) left by an interrupted prepare" in caplog.text
