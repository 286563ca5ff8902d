"""Corpus scores with sacrebleu (BLEU, chrF, chrF++, TER) and their reproducibility signatures.

References come as one string per sentence (a single reference) or as sacrebleu *reference
streams*: a list of streams, each with one string per sentence (``refs[k][i]`` is the k-th
reference of sentence i). Scores are sacrebleu's defaults (BLEU: 13a tokenisation, exponential
smoothing, mixed case) unless ``tokenize`` / ``lowercase`` say otherwise; the signature records
every choice, so always report it with the score.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric

from nmt import io as nmt_io

METRIC_NAMES = ("bleu", "chrf", "chrf++", "ter")


class ScoreError(ValueError):
    """Bad scoring input: mismatched line counts, unknown metric or test set, unreachable data."""


@dataclass(frozen=True)
class BleuLengths:
    """BLEU's length statistics: output and (closest) reference length in the metric's tokens, and
    the brevity penalty they give."""

    hyp_len: int
    ref_len: int
    bp: float

    @property
    def ratio(self) -> float:
        """Output / reference length (sacrebleu's "ratio"); 0 for an empty reference."""
        return self.hyp_len / self.ref_len if self.ref_len else 0.0


@dataclass
class MetricResult:
    """One corpus-level score: ``name`` as sacrebleu spells it (BLEU, chrF2, chrF2++, TER)."""

    name: str
    score: float
    signature: str
    text: str  # sacrebleu's full line, e.g. "BLEU = 27.31 58.9/33.1/20.8/13.4 (BP = 1.000 ...)"
    lengths: BleuLengths | None = None  # BLEU only


def make_metric(name: str, *, tokenize: str | None = None, lowercase: bool = False) -> Metric:
    """A sacrebleu metric object from its name (bleu, chrf, chrf++, ter)."""
    key = name.lower()
    if key == "bleu":
        return BLEU(tokenize=tokenize, lowercase=lowercase)
    if key == "chrf":
        return CHRF(lowercase=lowercase)
    if key == "chrf++":
        return CHRF(word_order=2, lowercase=lowercase)
    if key == "ter":
        return TER(case_sensitive=not lowercase)
    raise ScoreError(f"unknown metric {name!r}; choose from {', '.join(METRIC_NAMES)}")


def reference_streams(hyps: Sequence[str], refs: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
    """``refs`` as a list of reference streams, each checked to have one line per hypothesis."""
    if len(refs) == 0:
        raise ScoreError("no references given")
    streams = [list(refs)] if isinstance(refs[0], str) else [list(s) for s in refs]
    for k, stream in enumerate(streams):
        if any(not isinstance(r, str) for r in stream):
            raise ScoreError(f"reference stream {k} must hold strings (one per sentence)")
        if len(stream) != len(hyps):
            raise ScoreError(f"{len(hyps)} hypotheses but reference stream {k} has {len(stream)} lines")
    return streams


def score(
    hyps: Sequence[str],
    refs: Sequence[str] | Sequence[Sequence[str]],
    metrics: Sequence[str] = ("bleu", "chrf", "ter"),
    *,
    tokenize: str | None = None,
    lowercase: bool = False,
) -> list[MetricResult]:
    """Corpus scores of detokenised hypotheses against references, one result per metric."""
    if len(hyps) == 0:
        raise ScoreError("no hypotheses to score (empty input)")
    streams = reference_streams(hyps, refs)
    results = []
    for name in metrics:
        metric = make_metric(name, tokenize=tokenize, lowercase=lowercase)
        s = metric.corpus_score(list(hyps), streams)
        lengths = BleuLengths(int(s.sys_len), int(s.ref_len), float(s.bp)) if isinstance(metric, BLEU) else None
        results.append(MetricResult(s.name, float(s.score), str(metric.get_signature()), str(s), lengths))
    return results


def read_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file by ``nmt.io``'s rule (only ``\\n`` ends a line, as ``nmt prepare``
    reads corpora); a missing file or invalid UTF-8 is a ScoreError naming the file (and line)."""
    try:
        return nmt_io.read_lines(path)
    except FileNotFoundError:
        raise ScoreError(f"file not found: {path}") from None
    except nmt_io.TextError as e:
        raise ScoreError(str(e)) from None


def score_files(
    hyp_path: str | Path,
    ref_paths: str | Path | Sequence[str | Path],
    metrics: Sequence[str] = ("bleu", "chrf", "ter"),
    **kwargs: object,
) -> list[MetricResult]:
    """Score a hypothesis file (one detokenised sentence per line) against reference file(s)."""
    paths = [ref_paths] if isinstance(ref_paths, (str, Path)) else list(ref_paths)
    hyps = read_lines(hyp_path)
    if not hyps:
        raise ScoreError(f"{hyp_path} is empty: nothing to score")
    streams = []
    for path in paths:
        stream = read_lines(path)
        if len(stream) != len(hyps):
            raise ScoreError(
                f"line counts differ: {hyp_path} has {len(hyps)} lines, {path} has {len(stream)}"
            )
        streams.append(stream)
    return score(hyps, streams, metrics, **kwargs)  # type: ignore[arg-type]


def testset_refs(testset: str, langpair: str) -> list[list[str]]:
    """Reference streams of a sacrebleu test set (e.g. ``wmt14``, ``en-de``), downloaded and cached
    by sacrebleu (``$SACREBLEU``, default ``~/.sacrebleu``)."""
    from sacrebleu.dataset import DATASETS

    if testset not in DATASETS:
        close = difflib.get_close_matches(testset, list(DATASETS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ScoreError(f"unknown sacrebleu test set {testset!r}{hint}")
    pairs = list(DATASETS[testset].langpairs)
    if langpair not in pairs:
        raise ScoreError(
            f"sacrebleu test set {testset} has no language pair {langpair!r}; it has {', '.join(pairs)}"
        )
    try:
        paths = DATASETS[testset].get_reference_files(langpair)
        return [read_lines(p) for p in paths]
    except (Exception, SystemExit) as e:  # noqa: BLE001 (any download failure; sacrebleu may sys.exit)
        reason = " ".join(str(e).split()) or type(e).__name__
        raise ScoreError(
            f"cannot get references of sacrebleu test set {testset} {langpair} "
            f"(not cached and not downloadable?): {reason}"
        ) from None


def format_results(results: Sequence[MetricResult], *, as_json: bool = False) -> str:
    """What ``nmt score`` prints: per metric, sacrebleu's score line and its signature (or JSON)."""
    if as_json:
        return json.dumps([asdict(r) for r in results], indent=1, ensure_ascii=False)
    lines = []
    for r in results:
        lines.append(r.text)
        lines.append(f"  signature: {r.signature}")
    return "\n".join(lines)
