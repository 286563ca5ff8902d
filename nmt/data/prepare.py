"""``nmt prepare``: corpus -> SentencePiece model(s) -> filtered, binarized splits, all cached.

Cache layout (under ``data.prepared_dir``)::

    <corpus>/<src>-<tgt>/spm-<K1>/            subword model(s) + meta.json
    <corpus>/<src>-<tgt>/spm-<K1>/<split>-<K2>/  encoded split (see binarized.py)

K1 hashes the subword options and the training files; K2 hashes the split's files, the subword
model bytes and (train only) the filter options. Files are identified by resolved path + size +
mtime (no content hash: touching a file invalidates its cache). A complete folder is reused as is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nmt.data import binarized, filters, subwords
from nmt.data.binarized import EncodedSplit, atomic_dir
from nmt.data.config import DataConfig
from nmt.data.errors import DataError
from nmt.data.sources import HFLoader, split_files
from nmt.data.subwords import Vocab
from nmt.data.text import ParallelFiles, fingerprint, read_lines, read_parallel

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
ENCODE_CHUNK = 20_000


@dataclass
class SplitSummary:
    """What ended up in one prepared split."""

    sentences: int
    src_tokens: int  # with </s>
    tgt_tokens: int  # with </s>
    input_pairs: int
    filtered: dict[str, int] = field(default_factory=dict)
    cached: bool = False


@dataclass
class PrepareSummary:
    """Result of ``prepare``: per-split counts, vocabulary, where it lives and how long it took."""

    directory: Path
    vocab: str
    splits: dict[str, SplitSummary]
    seconds: float

    def format(self) -> str:
        """Human-readable table."""
        rows = [f"prepared data: {self.directory} ({self.seconds:.1f} s)", f"vocab: {self.vocab}",
                f"{'split':<6} {'sentences':>10} {'src tokens':>11} {'tgt tokens':>11}  {'cache':<6} filtered"]
        for name, s in self.splits.items():
            dropped = ", ".join(f"{k}={v}" for k, v in s.filtered.items()) or "-"
            if s.filtered:
                dropped += f" (of {s.input_pairs})"
            rows.append(f"{name:<6} {s.sentences:>10} {s.src_tokens:>11} {s.tgt_tokens:>11}  "
                        f"{'reused' if s.cached else 'new':<6} {dropped}")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.format()


@dataclass
class PreparedData:
    """Everything later stages need: the vocabulary, the encoded splits and their text files."""

    directory: Path
    vocab: Vocab
    splits: dict[str, EncodedSplit]
    files: dict[str, ParallelFiles]

    def target_text(self, split: str) -> list[str]:
        """Raw target lines of the sentences kept in ``split``, in prepared order (the references)."""
        return _select(read_lines(self.files[split].tgt), self.splits[split].line)

    def source_text(self, split: str) -> list[str]:
        """Raw source lines of the sentences kept in ``split``, in prepared order."""
        return _select(read_lines(self.files[split].src), self.splits[split].line)


def _select(lines: list[str], line: np.ndarray) -> list[str]:
    return [lines[i] for i in line.tolist()]


def _key(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def prepare(cfg: DataConfig, progress: bool = True, hf_loader: HFLoader | None = None) -> PrepareSummary:
    """Prepare (or reuse) the subword model(s) and binarized splits of ``cfg``; prints the summary if ``progress``."""
    _, summary = run(cfg, progress, hf_loader)
    if progress:
        print(summary.format(), flush=True)
    else:
        log.info("%s", summary.format())
    return summary


def load_prepared(cfg: DataConfig, hf_loader: HFLoader | None = None) -> PreparedData:
    """The prepared data of ``cfg``, preparing whatever is not cached yet (quietly)."""
    return run(cfg, False, hf_loader)[0]


def run(cfg: DataConfig, progress: bool = False, hf_loader: HFLoader | None = None
        ) -> tuple[PreparedData, PrepareSummary]:
    """Prepare or reuse everything; returns the data and its summary."""
    t0 = time.perf_counter()
    filters.check_filter_config(cfg.filter)
    files = split_files(cfg, hf_loader, progress)
    for pf in files.values():
        pf.check()
    base = Path(cfg.prepared_dir) / cfg.corpus / f"{cfg.src_lang}-{cfg.tgt_lang}"
    for folder in [base, *sorted(base.glob("spm-*"))]:
        binarized.remove_stale_temp_dirs(folder)  # what a killed prepare left
    vocab, spm_dir = _subword_models(cfg, files["train"], base, progress)
    model_ids = [_md5(vocab.src_model_path)] + ([] if vocab.joint else [_md5(vocab.tgt_model_path)])
    splits: dict[str, EncodedSplit] = {}
    summaries: dict[str, SplitSummary] = {}
    for name, pf in files.items():
        is_train = name == "train"
        key = _key({"v": FORMAT_VERSION, "src": fingerprint(pf.src), "tgt": fingerprint(pf.tgt), "models": model_ids,
                    "filter": dataclasses.asdict(cfg.filter) if is_train else None,
                    "limit": cfg.max_train_pairs if is_train else 0})
        directory = spm_dir / f"{name}-{key}"
        cached = binarized.is_complete(directory)
        if not cached:
            _encode_split(pf, directory, vocab, cfg, is_train, progress)
        try:
            splits[name] = EncodedSplit(directory)
        except binarized.CorruptCache as e:
            if not cached:
                raise
            log.warning("rebuilding the cached split '%s': %s", name, e)
            shutil.rmtree(directory)
            cached = False
            _encode_split(pf, directory, vocab, cfg, is_train, progress)
            splits[name] = EncodedSplit(directory)
        summaries[name] = SplitSummary(cached=cached, **splits[name].meta["summary"])
        _check_not_empty(name, pf, summaries[name])
    vocab_desc = (f"{'joint' if vocab.joint else 'separate'} {vocab.src_model_path.parent.name}: "
                  f"src {vocab.src_size} / tgt {vocab.tgt_size} pieces, pad={vocab.pad_id} unk={vocab.unk_id} "
                  f"bos={vocab.bos_id} eos={vocab.eos_id}")
    summary = PrepareSummary(spm_dir, vocab_desc, summaries, time.perf_counter() - t0)
    return PreparedData(spm_dir, vocab, splits, files), summary


def _check_not_empty(name: str, pf: ParallelFiles, summary: SplitSummary) -> None:
    """DataError naming the files when the training or validation split holds no sentence pair."""
    if summary.sentences or name not in ("train", "valid"):
        return
    if name == "valid":
        raise DataError(f"the validation split (data.splits.valid) is empty: {pf.src} and {pf.tgt} have no lines;"
                        " validation BLEU, the choice of checkpoints and early stopping need at least one pair")
    dropped = ", ".join(f"{k}={v}" for k, v in summary.filtered.items() if v)
    why = f"data.filter dropped all {summary.input_pairs} pairs ({dropped})" if summary.input_pairs else "they have no lines"
    raise DataError(f"the training split (data.splits.train) is empty: {pf.src} and {pf.tgt}: {why}")


def _subword_models(cfg: DataConfig, train: ParallelFiles, base: Path, progress: bool) -> tuple[Vocab, Path]:
    """Train (or reuse, or copy the given) SentencePiece model(s); returns the vocab and its folder."""
    sw = cfg.subword
    if sw.model:
        given = Path(sw.model)
        if not given.is_file():
            raise DataError(f"data.subword.model: SentencePiece model not found: {given}")
        key = _key({"v": FORMAT_VERSION, "model": _md5(given)})
    else:
        key = _key({"v": FORMAT_VERSION, "subword": dataclasses.asdict(sw), "limit": cfg.max_train_pairs,
                    "src": fingerprint(train.src), "tgt": fingerprint(train.tgt)})
    directory = base / f"spm-{key}"
    if not binarized.is_complete(directory):
        with atomic_dir(directory) as tmp:
            if sw.model:
                subwords.copy_model(Path(sw.model), tmp / "spm.model")
            else:
                _train_models(cfg, train, tmp, progress)
            binarized.write_meta(tmp, {"subword": dataclasses.asdict(sw), "train": str(train.src),
                                       "joint": sw.joint or bool(sw.model)})
    meta = binarized.read_meta(directory)
    if meta["joint"]:
        return Vocab(directory / "spm.model"), directory
    return Vocab(directory / "spm.src.model", directory / "spm.tgt.model"), directory


def _train_models(cfg: DataConfig, train: ParallelFiles, out: Path, progress: bool) -> None:
    src, tgt = read_parallel(train, cfg.max_train_pairs)
    sides = {"": src + tgt} if cfg.subword.joint else {".src": src, ".tgt": tgt}
    for suffix, lines in sides.items():
        if not any(line.strip() for line in lines):
            files = f"{train.src} and {train.tgt}" if not suffix else (train.src if suffix == ".src" else train.tgt)
            raise DataError(f"the training split (data.splits.train) is empty: {files} have no non-empty lines to"
                            " learn the subword model from")
        text = out / f"train{suffix}.txt"
        text.write_text("".join(line + "\n" for line in lines if line.strip()), encoding="utf-8")
        if progress:
            print(f"training SentencePiece {cfg.subword.model_type} ({cfg.subword.vocab_size}) on"
                  f" {len(lines)} lines ...", flush=True)
        subwords.train_model(text, out / f"spm{suffix}", cfg.subword)
        text.unlink()
        (out / f"spm{suffix}.vocab").unlink(missing_ok=True)


def _encode(encode, lines: list[str], bar: tqdm) -> list[list[int]]:
    out: list[list[int]] = []
    threads = max(1, min(os.cpu_count() or 1, 8))
    for i in range(0, len(lines), ENCODE_CHUNK):
        chunk = lines[i:i + ENCODE_CHUNK]
        out.extend(encode(chunk, num_threads=threads))
        bar.update(len(chunk))
    return out


def _encode_split(pf: ParallelFiles, directory: Path, vocab: Vocab, cfg: DataConfig, is_train: bool,
                  progress: bool) -> None:
    src, tgt = read_parallel(pf, cfg.max_train_pairs if is_train else 0)
    bar = tqdm(total=2 * len(src), desc=f"encode {pf.split}", unit="sent", disable=not progress)
    src_ids = _encode(vocab.encode_src, src, bar)
    tgt_ids = _encode(vocab.encode_tgt, tgt, bar)
    bar.close()
    src_len = np.fromiter(map(len, src_ids), dtype=np.int64, count=len(src_ids))
    tgt_len = np.fromiter(map(len, tgt_ids), dtype=np.int64, count=len(tgt_ids))
    if is_train:
        keep, counts = filters.filter_pairs(src_len, tgt_len, filters.blank_mask(src, tgt), cfg.filter)
    else:
        keep, counts = np.ones(len(src), dtype=bool), {}
    line = np.flatnonzero(keep)
    kept_src = [src_ids[i] for i in line.tolist()]
    kept_tgt = [tgt_ids[i] for i in line.tolist()]
    summary = {"sentences": len(line), "input_pairs": len(src), "filtered": counts,
               "src_tokens": int(src_len[keep].sum()) + len(line), "tgt_tokens": int(tgt_len[keep].sum()) + len(line)}
    with atomic_dir(directory) as tmp:
        binarized.write_split(tmp, kept_src, kept_tgt, line)
        binarized.write_meta(tmp, {"split": pf.split, "src": str(pf.src), "tgt": str(pf.tgt), "summary": summary})
