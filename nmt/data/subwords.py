"""SentencePiece subword models (trained here or given by path) behind one ``Vocab`` object.

Models trained here use fixed special ids: ``<pad>``=0, ``<unk>``=1, ``<s>``=2, ``</s>``=3. A model
given by path is used as is and its ids are read from it (it must define pad, bos and eos).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import sentencepiece as spm

from nmt.data.config import SubwordConfig
from nmt.data.errors import DataError

log = logging.getLogger(__name__)

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
TRAIN_THREADS = 2


class Vocab:
    """Source and target SentencePiece models (the same object when joint) and their special ids."""

    def __init__(self, src_model: str | Path, tgt_model: str | Path | None = None, *,
                 src_proto: bytes | None = None, tgt_proto: bytes | None = None):
        """Models from files, or from their serialized bytes (``*_proto``; the paths then only name them)."""
        self.src_model_path = Path(src_model)
        self.tgt_model_path = Path(tgt_model) if tgt_model else self.src_model_path
        self.joint = self.tgt_model_path == self.src_model_path
        self.src_sp = _load(self.src_model_path, src_proto)
        self.tgt_sp = self.src_sp if self.joint else _load(self.tgt_model_path, tgt_proto)
        ids = [(sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) for sp in (self.src_sp, self.tgt_sp)]
        if ids[0] != ids[1]:
            raise DataError(f"{self.src_model_path} and {self.tgt_model_path} have different special ids"
                            f" (pad, unk, bos, eos) {ids[0]} vs {ids[1]}")
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = ids[0]
        for name, i in (("pad", self.pad_id), ("bos", self.bos_id), ("eos", self.eos_id)):
            if i < 0:
                raise DataError(f"{self.src_model_path}: the SentencePiece model has no {name} piece"
                                f" ({name}_id=-1); retrain it with {name}_id set, or let nmt prepare train one")

    @property
    def src_size(self) -> int:
        """Number of source pieces (embedding rows)."""
        return self.src_sp.get_piece_size()

    @property
    def tgt_size(self) -> int:
        """Number of target pieces (output classes)."""
        return self.tgt_sp.get_piece_size()

    def encode_src(self, lines: Sequence[str], num_threads: int = TRAIN_THREADS) -> list[list[int]]:
        """Piece ids of source lines (no ``</s>``)."""
        return self.src_sp.encode(list(lines), num_threads=num_threads)

    def encode_tgt(self, lines: Sequence[str], num_threads: int = TRAIN_THREADS) -> list[list[int]]:
        """Piece ids of target lines (no ``<s>``/``</s>``)."""
        return self.tgt_sp.encode(list(lines), num_threads=num_threads)

    def decode_tgt(self, ids: Sequence[int]) -> str:
        """Detokenised target text; stops at the first ``</s>``, drops ``<pad>`` and ``<s>``."""
        return _decode(self.tgt_sp, ids, self)

    def decode_src(self, ids: Sequence[int]) -> str:
        """Detokenised source text; stops at the first ``</s>``, drops ``<pad>`` and ``<s>``."""
        return _decode(self.src_sp, ids, self)

    def __repr__(self) -> str:
        models = str(self.src_model_path) if self.joint else f"{self.src_model_path}, {self.tgt_model_path}"
        return (f"Vocab({models}; src_size={self.src_size}, tgt_size={self.tgt_size}, pad={self.pad_id},"
                f" unk={self.unk_id}, bos={self.bos_id}, eos={self.eos_id})")


def _load(path: Path, proto: bytes | None = None) -> spm.SentencePieceProcessor:
    if proto is None and not path.is_file():
        raise DataError(f"SentencePiece model not found: {path}")
    try:
        if proto is not None:
            return spm.SentencePieceProcessor(model_proto=proto)
        return spm.SentencePieceProcessor(model_file=str(path))
    except (RuntimeError, OSError) as e:
        raise DataError(f"{path}: not a SentencePiece model ({e})") from None


def _decode(sp: spm.SentencePieceProcessor, ids: Sequence[int], v: Vocab) -> str:
    out = []
    for i in ids:
        i = int(i)
        if i == v.eos_id:
            break
        if i not in (v.pad_id, v.bos_id):
            out.append(i)
    return sp.decode(out)


def train_model(text_file: Path, model_prefix: Path, cfg: SubwordConfig) -> Path:
    """Train one SentencePiece model on ``text_file`` (one sentence per line); returns ``<prefix>.model``."""
    if cfg.vocab_size < 8:
        raise DataError(f"data.subword.vocab_size must be at least 8, got {cfg.vocab_size}")
    if not 0 < cfg.character_coverage <= 1:
        raise DataError(f"data.subword.character_coverage must be in (0, 1], got {cfg.character_coverage}")
    options = {
        "input": str(text_file), "model_prefix": str(model_prefix), "model_type": cfg.model_type,
        "vocab_size": cfg.vocab_size, "character_coverage": cfg.character_coverage,
        "pad_id": PAD_ID, "unk_id": UNK_ID, "bos_id": BOS_ID, "eos_id": EOS_ID,
        "num_threads": TRAIN_THREADS, "minloglevel": 2,
    }
    if cfg.input_sentence_size > 0:
        options.update({"input_sentence_size": cfg.input_sentence_size, "shuffle_input_sentence": True})
    try:
        spm.SentencePieceTrainer.train(**options)
    except RuntimeError as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        if "Vocabulary size" in msg or "vocab_size" in msg:
            raise DataError(f"data.subword.vocab_size={cfg.vocab_size} does not fit the training text: {msg}") from None
        raise DataError(f"SentencePiece training on {text_file} failed: {msg}") from None
    return Path(f"{model_prefix}.model")


_TRAINER_SPEC = 2  # ModelProto field: how the model was trained (input file, prefix, threads), not what it does


def model_identity(proto: bytes) -> bytes:
    """The serialized SentencePiece model without its trainer spec: two models tokenize alike exactly
    when these bytes are equal (pieces, scores, types, normalizer). The trainer spec is left out
    because it names the training input's path, which differs between two preparations of the same
    data. Bytes that are not a model come back unchanged."""
    out, i, n = bytearray(), 0, len(proto)
    try:
        while i < n:
            start = i
            key, i = _varint(proto, i)
            wire = key & 7
            if wire == 0:
                _, i = _varint(proto, i)
            elif wire == 1:
                i += 8
            elif wire == 2:
                size, i = _varint(proto, i)
                i += size
            elif wire == 5:
                i += 4
            else:
                return proto
            if i > n:
                return proto
            if key >> 3 != _TRAINER_SPEC:
                out += proto[start:i]
    except IndexError:
        return proto
    return bytes(out)


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        b = data[i]
        value |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return value, i
        shift += 7


def copy_model(src: Path, dst: Path) -> Path:
    """Copy an existing model next to the prepared data (so the prepared folder is self-contained)."""
    _load(src)
    shutil.copyfile(src, dst)
    return dst
