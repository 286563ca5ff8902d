"""Translation with trained checkpoints: loading, token-budget batching of raw lines, test-set scoring."""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm import tqdm

from nmt.config import from_dict, to_dict
from nmt.data.subwords import Vocab
from nmt.decode import DecodeConfig, EnsembleModel, Hypothesis, translate_batch
from nmt.experiment import ExperimentConfig
from nmt.model.packed import pack_linears
from nmt.model.quantize import quantize_linears
from nmt.model.transformer import Transformer
from nmt.train.checkpoint_io import load_checkpoint

log = logging.getLogger("nmt")


@dataclasses.dataclass
class Loaded:
    """A model ready to translate, with its vocabulary and the config it was trained with."""

    model: Transformer
    vocab: Vocab
    cfg: ExperimentConfig
    path: Path


def load_model(path: str | Path, pack: bool = True, *, quantize: str | None = None) -> Loaded:
    """Load a checkpoint (``weights_only``) into an eval-mode Transformer with its subword models.

    ``pack``: run the linear layers on weights pre-packed for oneDNN (``nmt.model.packed``; CPU,
    1.2-2.4x faster GEMMs at decoding shapes, results equal up to float rounding). ``quantize="int8"``: run
    them as dynamic int8 layers instead (``nmt.model.quantize``). Either way the model is then inference-only."""
    ckpt = load_checkpoint(path)
    cfg = ExperimentConfig.from_plain(ckpt["nmt"]["config"])
    v = ckpt["nmt"]["vocab"]
    for key in ("src_model", "tgt_model"):
        if not Path(v[key]).is_file():
            raise FileNotFoundError(f"{path}: subword model {v[key]} (recorded in the checkpoint) is missing")
    vocab = Vocab(v["src_model"], v["tgt_model"])
    model = Transformer(cfg.model, v["src_size"], v["tgt_size"], v["pad_id"])
    state = {k[len("model."):]: t for k, t in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    model.eval()
    if quantize is not None:
        quantize_linears(model, quantize)  # replaces every nn.Linear: nothing is left to pack
    if pack:
        pack_linears(model)
    return Loaded(model, vocab, cfg, Path(path))


def decode_config(base: DecodeConfig, overrides: dict[str, Any]) -> DecodeConfig:
    """The checkpoint's decode settings with command-line overrides, validated."""
    return from_dict(DecodeConfig, {**to_dict(base), **overrides}, "decode")


def _batches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped by length so that n_sentences * longest <= max_tokens (at least one per batch)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, cur, longest = [], [], 0
    for i in order:
        new_longest = max(longest, lengths[i])
        if cur and (len(cur) + 1) * new_longest > max_tokens:
            batches.append(cur)
            cur, new_longest = [], lengths[i]
        cur.append(i)
        longest = new_longest
    if cur:
        batches.append(cur)
    return batches


def translate_lines(
    loaded: Loaded | list[Loaded],
    lines: Sequence[str],
    dcfg: DecodeConfig,
    max_tokens: int = 4000,
    max_input_len: int = 0,
    progress: bool = False,
) -> list[list[Hypothesis]]:
    """Translate raw source lines (input order kept). Empty lines give an empty hypothesis; inputs
    longer than ``max_input_len`` tokens (default: the model's position limit, 1024) are truncated to
    their first ``max_input_len - 1`` pieces plus ``</s>``, with a warning naming the lines."""
    models = loaded if isinstance(loaded, list) else [loaded]
    first = models[0]
    vocab = first.vocab
    limit = max_input_len or first.cfg.model.max_positions
    ids = vocab.encode_src(lines)
    src, truncated = [], []
    for n, piece_ids in enumerate(ids):
        if len(piece_ids) + 1 > limit:
            truncated.append(n + 1)
            piece_ids = piece_ids[: limit - 1]
        src.append(piece_ids + [vocab.eos_id])
    if truncated:
        shown = ", ".join(map(str, truncated[:10])) + (" ..." if len(truncated) > 10 else "")
        log.warning("%d input line(s) longer than %d tokens were truncated: line %s", len(truncated), limit, shown)
    empty = {i for i, line in enumerate(lines) if not line.strip()}
    if empty:
        log.warning("%d empty input line(s): their output lines are empty", len(empty))
    model = first.model if len(models) == 1 else EnsembleModel([m.model for m in models])
    todo = [i for i in range(len(lines)) if i not in empty]
    results: list[list[Hypothesis]] = [[Hypothesis([], 0.0, 0.0, True)] for _ in lines]
    batches = [[todo[j] for j in b] for b in _batches([len(src[i]) for i in todo], max_tokens)]
    bar = tqdm(total=len(todo), unit="sent", disable=not progress, file=sys.stderr)
    for b in batches:
        S = max(len(src[i]) for i in b)
        tokens = torch.full((len(b), S), vocab.pad_id, dtype=torch.long)
        for row, i in enumerate(b):
            tokens[row, : len(src[i])] = torch.tensor(src[i])
        hyps = translate_batch(model, tokens, tokens.eq(vocab.pad_id), dcfg, vocab.bos_id, vocab.eos_id, vocab.pad_id)
        for i, h in zip(b, hyps):
            results[i] = h
        bar.update(len(b))
    bar.close()
    return results


def translate_files(
    checkpoints: list[str],
    input_path: str | None,
    output_path: str | None,
    overrides: dict[str, Any],
    max_tokens: int = 4000,
    max_input_len: int = 0,
    with_scores: bool = False,
    pack: bool = True,
    quantize: str | None = None,
) -> None:
    """``nmt translate``: stdin/file in, detokenised hypotheses out (one per line, or n-best with scores)."""
    models = [load_model(p, pack, quantize=quantize) for p in checkpoints]
    dcfg = decode_config(models[0].cfg.decode, overrides)
    if input_path is not None:
        from nmt.data.text import read_lines

        lines = read_lines(input_path)
    else:
        lines = [line.rstrip("\n") for line in sys.stdin]
    t0 = time.perf_counter()
    results = translate_lines(models, lines, dcfg, max_tokens, max_input_len, progress=input_path is not None)
    vocab = models[0].vocab
    out_lines = []
    for nbest in results:
        if with_scores:
            out_lines.extend(f"{h.score:.4f}\t{vocab.decode_tgt(h.tokens)}" for h in nbest)
        else:
            out_lines.append(vocab.decode_tgt(nbest[0].tokens))
    text = "".join(line + "\n" for line in out_lines)
    if output_path:
        Path(output_path).parent.mkdir(parents=True, exist_ok=True)
        Path(output_path).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    dt = time.perf_counter() - t0
    log.info("translated %d lines in %.1fs (%.1f sentences/s)", len(lines), dt, len(lines) / max(dt, 1e-9))


def test_split(
    checkpoint: str,
    split: str,
    overrides: dict[str, Any],
    output: str | None,
    max_tokens: int = 4000,
    pack: bool = True,
    quantize: str | None = None,
) -> dict[str, Any]:
    """``nmt test``: translate a split of the checkpoint's corpus, score BLEU/chrF with sacrebleu."""
    from nmt.data.datamodule import NMTDataModule

    loaded = load_model(checkpoint, pack, quantize=quantize)
    out = Path(output) if output else Path(checkpoint).with_suffix(f".{split}.hyp")
    return score_split(loaded, NMTDataModule(loaded.cfg.data), split, overrides, out, max_tokens)


def score_split(
    loaded: Loaded, dm: Any, split: str, overrides: dict[str, Any], out: Path, max_tokens: int = 4000
) -> dict[str, Any]:
    """Translate ``split`` of the data module ``dm`` with ``loaded``, write the hypotheses to ``out``
    and score them (BLEU, chrF, signatures, decoding speed)."""
    from nmt.eval.score import score

    dcfg = decode_config(loaded.cfg.decode, overrides)
    sources, refs = dm.sources(split), dm.references(split)
    t0 = time.perf_counter()
    results = translate_lines(loaded, sources, dcfg, max_tokens, progress=True)
    seconds = time.perf_counter() - t0
    hyps = [loaded.vocab.decode_tgt(r[0].tokens) for r in results]
    out.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    bleu, chrf = score(hyps, refs, metrics=("bleu", "chrf"))
    lines = [bleu.text, f"  signature: {bleu.signature}", chrf.text, f"  signature: {chrf.signature}"]
    lines.append(f"{len(hyps)} sentences in {seconds:.1f}s ({len(hyps) / seconds:.1f} sentences/s) -> {out}")
    return {
        "split": split,
        "bleu": bleu.score,
        "chrf": chrf.score,
        "bleu_signature": bleu.signature,
        "chrf_signature": chrf.signature,
        "sentences": len(hyps),
        "decode_seconds": seconds,
        "sentences_per_s": len(hyps) / seconds,
        "hypotheses": str(out),
        "lines": lines,
    }
