"""Translation with trained checkpoints: loading, token-budget batching of raw lines, streaming
translation of files and pipes, test-set scoring. Imports no Lightning (``nmt.checkpoint`` reads
the weights)."""

from __future__ import annotations

import dataclasses
import gc
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Sequence

import numpy as np
from tqdm import tqdm

from nmt import io as nmt_io
from nmt.checkpoint import VOCAB_KEYS, Checkpoint, CheckpointError, check_same_vocabulary
from nmt.config import from_dict, to_dict
from nmt.data.batch import pad_rows
from nmt.data.batching import chunk_by_budget
from nmt.data.subwords import Vocab
from nmt.decode import DecodeConfig, EnsembleModel, Hypothesis, translate_batch
from nmt.experiment import ExperimentConfig
from nmt.model.packed import default_pack, pack_linears
from nmt.model.quantize import quantize_linears
from nmt.model.transformer import Transformer
from nmt.runtime import release_free_memory

log = logging.getLogger("nmt")

CHUNK_LINES = 1000  # default most input lines translated (and written) together when streaming


@dataclasses.dataclass
class Loaded:
    """A model ready to translate, with its vocabulary and the config it was trained with."""

    model: Transformer
    vocab: Vocab
    cfg: ExperimentConfig
    path: Path


def load_model(path: str | Path, pack: bool | None = None, *, quantize: str | None = None) -> Loaded:
    """Load a checkpoint (``nmt.checkpoint``, ``weights_only``) into an eval-mode Transformer with its
    subword models. A file that is not a valid checkpoint is a CheckpointError naming it.

    ``pack``: run the linear layers on weights pre-packed for oneDNN (``nmt.model.packed``; CPU,
    1.2-2.4x faster GEMMs at decoding shapes on AVX-512 CPUs, results equal up to float rounding;
    None: where the CPU has AVX-512, ``default_pack``). ``quantize="int8"``: run
    them as dynamic int8 layers instead (``nmt.model.quantize``). Either way the self-attention
    projections are first merged (``Transformer.fuse_projections``); without packing or int8 the
    weights stay plain and separate (``prepare_for_inference``)."""
    ckpt = Checkpoint.load(path)
    cfg = ExperimentConfig.from_plain(ckpt.config)
    vocab = ckpt.load_vocab()
    v = ckpt.vocab
    model = Transformer(cfg.model, v["src_size"], v["tgt_size"], v["pad_id"])
    try:
        model.load_state_dict(ckpt.state_dict)
    except RuntimeError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: its weights do not fit the model of its config ({reason})") from None
    del ckpt  # its copy of the weights: freed before the conversions below allocate theirs
    prepare_for_inference(model.eval(), pack, quantize)
    return Loaded(model, vocab, cfg, Path(path))


def prepare_for_inference(
    model: Transformer, pack: bool | None = None, quantize: str | None = None, *, merge: bool = True,
    engine: str | None = None
) -> dict[str, int]:
    """Make an eval-mode ``model`` inference-only and fast, in place: merge the projections that read
    the same input (``merge``, ``Transformer.fuse_projections``), run the linear layers in int8
    (``quantize``, on ``engine``) or on oneDNN-packed weights (``pack``), and hand the replaced float
    weights back to the kernel. ``pack`` None: merge and pack where the CPU's default says so
    (``default_pack``, logged), else nothing. Nothing changes with ``pack=False`` and no
    ``quantize`` (the plain, separate weights): merged projections on plain weights decoded beam 5
    at 0.80x the separate ones (docs/benchmarks.md, "Linear layers by CPU"), so merging goes only
    with packing or int8. Returns how many layers were merged away, converted to int8 and packed."""
    done = {"merged": 0, "int8": 0, "packed": 0}
    if pack is None and quantize is None:
        pack, why = default_pack()
        log.info("linear layers: %s", why)
    if not pack and quantize is None:
        return done  # --no_pack, or the CPU's default: the plain, separate weights
    if merge:
        done["merged"] = model.fuse_projections()
    if quantize is not None:
        done["int8"] = quantize_linears(model, quantize, engine)  # every nn.Linear: nothing is left to pack
    if pack:
        done["packed"] = pack_linears(model)
    gc.collect()  # the replaced float layers are kept alive by reference cycles until the collector runs
    release_free_memory()
    return done


def check_ensemble(models: Sequence[Loaded]) -> None:
    """CheckpointError naming two members unless all share the first one's vocabulary (special ids,
    sizes and subword models): an ensemble feeds every member the first one's token ids."""
    if len(models) < 2:
        return
    check_same_vocabulary([(m.path, {k: getattr(m.vocab, k) for k in VOCAB_KEYS},
                            {"src": m.vocab.src_sp.serialized_model_proto(),
                             "tgt": m.vocab.tgt_sp.serialized_model_proto()}) for m in models], "ensemble")


def decode_config(base: DecodeConfig, overrides: dict[str, Any]) -> DecodeConfig:
    """The checkpoint's decode settings with command-line overrides, validated."""
    return from_dict(DecodeConfig, {**to_dict(base), **overrides}, "decode")


def translate_lines(
    loaded: Loaded | list[Loaded],
    lines: Sequence[str],
    dcfg: DecodeConfig,
    max_tokens: int = 4000,
    max_input_len: int = 0,
    progress: bool = False,
    first_line: int = 1,
) -> list[list[Hypothesis]]:
    """Translate raw source lines (input order kept): per line, ``dcfg.nbest`` hypotheses (an empty
    line gives empty ones). Inputs longer than ``max_input_len`` tokens (default: the model's
    position limit, 1024) are truncated to their first ``max_input_len - 1`` pieces plus ``</s>``,
    with a warning naming the lines (numbered from ``first_line``)."""
    models = loaded if isinstance(loaded, list) else [loaded]
    check_ensemble(models)
    first = models[0]
    vocab = first.vocab
    limit = max_input_len or first.cfg.model.max_positions
    ids = vocab.encode_src(lines)
    src, truncated = [], []
    for n, piece_ids in enumerate(ids):
        if len(piece_ids) + 1 > limit:
            truncated.append(first_line + n)
            piece_ids = piece_ids[: limit - 1]
        src.append(piece_ids + [vocab.eos_id])
    if truncated:
        shown = ", ".join(map(str, truncated[:10])) + (" ..." if len(truncated) > 10 else "")
        log.warning("%d input line(s) longer than %d tokens were truncated: line %s", len(truncated), limit, shown)
    empty = [i for i, line in enumerate(lines) if not line.strip()]
    if empty:
        log.warning("%d empty input line(s): their output lines are empty", len(empty))
    model = first.model if len(models) == 1 else EnsembleModel([m.model for m in models])
    device = next(first.model.parameters()).device  # the CPU unless moved (nmt.Translator(device=...))
    todo = np.array(sorted(set(range(len(lines))) - set(empty)), dtype=np.int64)
    results: list[list[Hypothesis]] = [[Hypothesis([], 0.0, 0.0, True)] * dcfg.nbest for _ in lines]
    lengths = np.array([len(s) for s in src], dtype=np.int64)
    order = todo[np.argsort(lengths[todo], kind="stable")]
    bar = tqdm(total=len(todo), unit="sent", disable=not progress, file=sys.stderr)
    for batch in chunk_by_budget(order, lengths, None, max_tokens, oversize_alone=True):
        b = batch.tolist()
        tokens, mask = pad_rows([src[i] for i in b], vocab.pad_id)  # (B, S)
        hyps = translate_batch(model, tokens.to(device), mask.to(device), dcfg, vocab.bos_id, vocab.eos_id, vocab.pad_id)
        for i, h in zip(b, hyps):
            results[i] = h
        bar.update(len(b))
    bar.close()
    return results


class _ReadFailed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def chunks(lines: Iterable[str], max_lines: int) -> Iterator[list[str]]:
    """Consecutive pieces of ``lines`` in order: each waits for one line, then takes the lines that
    have already arrived (at most ``max_lines``), so a pipe's lines are not held back waiting for
    more input. An error while reading is raised after the lines before it were yielded."""
    if max_lines < 1:
        raise ValueError(f"chunk size must be >= 1 line, got {max_lines}")
    q: queue.Queue[Any] = queue.Queue(maxsize=2 * max_lines)
    done = object()

    def read() -> None:
        try:
            for line in lines:
                q.put(line)
            q.put(done)
        except BaseException as e:  # noqa: BLE001 (handed to the consumer, raised there in order)
            q.put(_ReadFailed(e))

    threading.Thread(target=read, name="nmt-input", daemon=True).start()
    while True:
        item, chunk = q.get(), []
        while item is not done and not isinstance(item, _ReadFailed):
            chunk.append(item)
            if len(chunk) >= max_lines:
                break
            try:
                item = q.get_nowait()
            except queue.Empty:
                break
        if chunk:
            yield chunk
        if item is done:
            return
        if isinstance(item, _ReadFailed):
            raise item.error


def format_nbest(index: int, nbest: list[Hypothesis], vocab: Vocab, with_scores: bool) -> list[str]:
    """Output lines of input ``index`` (0-based): its best hypothesis, or with ``with_scores`` every
    hypothesis as ``H-<index>\\t<score>\\t<text>`` (fairseq's layout, so n-best lists regroup by id)."""
    if not with_scores:
        return [vocab.decode_tgt(nbest[0].tokens)]
    return [f"H-{index}\t{h.score:.4f}\t{vocab.decode_tgt(h.tokens)}" for h in nbest]


def translate_stream(
    models: list[Loaded],
    lines: Iterable[str],
    write: Callable[[str], Any],
    dcfg: DecodeConfig,
    max_tokens: int = 4000,
    max_input_len: int = 0,
    with_scores: bool = False,
    chunk_lines: int = CHUNK_LINES,
    progress: bool = False,
) -> int:
    """Translate ``lines`` chunk by chunk (``chunks``), calling ``write`` with each chunk's output
    text in input order as soon as it is done; returns the number of input lines."""
    n = 0
    bar = tqdm(unit="sent", disable=not progress, file=sys.stderr)
    for chunk in chunks(lines, chunk_lines):
        results = translate_lines(models, chunk, dcfg, max_tokens, max_input_len, first_line=n + 1)
        out = [line for k, nbest in enumerate(results) for line in format_nbest(n + k, nbest, models[0].vocab, with_scores)]
        write(nmt_io.lines_text(out))
        n += len(chunk)
        bar.update(len(chunk))
    bar.close()
    return n


def _fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's stand-in), or closed
        return None


def check_streams(input_path: str | None, output_path: str | None) -> None:
    """ValueError (one line) when ``nmt translate`` cannot read its input or write its output: stdin
    or stdout closed, or an output file that is the input (the same file, also through a symbolic or
    hard link, or the file on stdin), which opening the output would empty before it is read."""
    if input_path is None and (sys.stdin is None or sys.stdin.closed):
        raise ValueError("nmt translate: standard input is closed: give --input FILE, or pipe the text in")
    if not output_path and (sys.stdout is None or sys.stdout.closed):
        raise ValueError("nmt translate: standard output is closed: give --output FILE")
    if not output_path:
        return
    source = input_path if input_path is not None else _fileno(sys.stdin)
    if source is not None and nmt_io.same_file(source, output_path):
        what = f"the input {input_path}" if input_path is not None else "the file on standard input"
        raise ValueError(f"nmt translate: the output {output_path} is {what}: writing it would destroy the"
                         " input before it is read; give another --output")


def translate_files(
    checkpoints: list[str],
    input_path: str | None,
    output_path: str | None,
    overrides: dict[str, Any],
    max_tokens: int = 4000,
    max_input_len: int = 0,
    with_scores: bool = False,
    pack: bool | None = None,
    chunk_lines: int = CHUNK_LINES,
    quantize: str | None = None,
) -> None:
    """``nmt translate``: stdin/file in, detokenised hypotheses out (one per line, or with
    ``with_scores`` ``nbest`` lines per input carrying its index). Works as a pipe: output is
    written and flushed chunk by chunk in input order, so an error late in the input keeps the
    output of the lines before it. Refused before anything is read or written: an output that is the
    input file (also through links), a closed stdin or stdout, an ensemble of different vocabularies."""
    check_streams(input_path, output_path)
    models = [load_model(p, pack, quantize=quantize) for p in checkpoints]
    check_ensemble(models)
    dcfg = decode_config(models[0].cfg.decode, overrides)
    if input_path is not None:
        if not Path(input_path).is_file():
            raise FileNotFoundError(f"missing file: {input_path}")
        source: IO[bytes] = open(input_path, "rb")  # noqa: SIM115 (closed below)
        name = str(input_path)
    else:
        source, name = sys.stdin.buffer, "<stdin>"
    out: IO[str] = sys.stdout
    if output_path:
        Path(output_path).parent.mkdir(parents=True, exist_ok=True)
        out = open(output_path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 (closed below)

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    t0 = time.perf_counter()
    try:
        n = translate_stream(models, nmt_io.iter_lines(source, name), write, dcfg, max_tokens, max_input_len,
                             with_scores, chunk_lines, progress=input_path is not None)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
        if out is not sys.stdout:
            out.close()
    dt = time.perf_counter() - t0
    log.info("translated %d lines in %.1fs (%.1f sentences/s)", n, dt, n / max(dt, 1e-9))


def test_split(
    checkpoint: str,
    split: str,
    overrides: dict[str, Any],
    output: str | None,
    max_tokens: int = 4000,
    pack: bool | None = None,
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
    and score them (BLEU with its length statistics, chrF, signatures, decoding speed)."""
    from nmt.eval.score import score

    dcfg = decode_config(loaded.cfg.decode, overrides)
    sources, refs = dm.sources(split), dm.references(split)
    t0 = time.perf_counter()
    results = translate_lines(loaded, sources, dcfg, max_tokens, progress=True)
    seconds = time.perf_counter() - t0
    hyps = [loaded.vocab.decode_tgt(r[0].tokens) for r in results]
    nmt_io.atomic_write_text(out, nmt_io.lines_text(hyps))
    bleu, chrf = score(hyps, refs, metrics=("bleu", "chrf"))
    assert bleu.lengths is not None
    lines = [bleu.text, f"  signature: {bleu.signature}", chrf.text, f"  signature: {chrf.signature}"]
    lines.append(f"{len(hyps)} sentences in {seconds:.1f}s ({len(hyps) / seconds:.1f} sentences/s) -> {out}")
    return {
        "split": split,
        "bleu": bleu.score,
        "chrf": chrf.score,
        "bp": bleu.lengths.bp,
        "length_ratio": bleu.lengths.ratio,
        "hyp_len": bleu.lengths.hyp_len,
        "ref_len": bleu.lengths.ref_len,
        "bleu_signature": bleu.signature,
        "chrf_signature": chrf.signature,
        "sentences": len(hyps),
        "decode_seconds": seconds,
        "sentences_per_s": len(hyps) / seconds,
        "hypotheses": str(out),
        "lines": lines,
    }
