"""``nmt analyze``: term statistics, test-time term removal and per-term heatmaps of a checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from nmt.analyze.ablation import FirstSentences, removals, run_ablations
from nmt.analyze.collect import split_batches, term_maps, term_statistics
from nmt.analyze.report import summary, write_report
from nmt.analyze.sites import attention_sites
from nmt.config import to_dict
from nmt.data.batch import PairDataset
from nmt.inference import Loaded, decode_config, load_model
from nmt.train.heatmaps import heatmap_figure, token_labels

log = logging.getLogger("nmt")


def analyze(
    checkpoint: str | Path,
    split: str = "valid",
    output: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    max_sentences: int = 500,
    heatmap_sentences: int = 2,
    ablation: bool = True,
    per_layer: bool = True,
    max_tokens: int = 4000,
    pack: bool | None = None,
) -> dict[str, Any]:
    """Analyze the factored-attention terms of ``checkpoint`` on the first ``max_sentences`` sentences
    of ``split`` (0: all) and write the report to ``output`` (default: ``<checkpoint>.analyze-<split>/``).

    Returns the report's content (what analysis.json holds)."""
    from nmt.data.datamodule import NMTDataModule

    if max_sentences < 0 or heatmap_sentences < 0:
        raise ValueError("--max_sentences and --heatmap_sentences must be >= 0")
    overrides = dict(overrides or {})
    loaded = load_model(checkpoint, pack)
    decode = to_dict(decode_config(loaded.cfg.decode, overrides))  # bad settings fail before any work
    sites = attention_sites(loaded.model)
    if not sites:
        raise ValueError(f"{checkpoint}: the model has no factored attention (E1-E4): nothing to analyze")
    out = Path(output) if output else Path(checkpoint).with_suffix(f".analyze-{split}")
    dm = NMTDataModule(loaded.cfg.data)
    n = len(dm.references(split)) if max_sentences == 0 else min(max_sentences, len(dm.references(split)))
    log.info("term statistics over %d sentences of %s", n, split)
    stats = term_statistics(loaded.model, split_batches(dm, split, n, max_tokens))
    contributions = {s.name: {"role": s.role, "layer": s.layer, "mask": s.module.mask, **stats[s.name]} for s in sites}
    rows: list[dict[str, Any]] = []
    if ablation:
        plan = removals(sites, per_layer)
        log.info("test-time removal: %d decodings of %d sentences", len(plan) + 1, n)
        rows = run_ablations(loaded, FirstSentences(dm, n), split, plan, overrides, out / "hypotheses", max_tokens)
    result = {
        "checkpoint": str(checkpoint),
        "split": split,
        "sentences": n,
        "decode": decode,
        "contributions": contributions,
        "ablation": rows,
        "summary": summary(contributions, rows),
    }
    paths = write_report(result, out)
    if heatmap_sentences:
        paths += write_heatmaps(loaded, dm, split, min(heatmap_sentences, n), out)
    log.info("wrote %d files to %s", len(paths), out)
    return result


def write_heatmaps(loaded: Loaded, dm: Any, split: str, n: int, out: Path) -> list[Path]:
    """Per-term heatmaps (one panel per term, softmax of the term alone, plus "all": the model's
    weights) of the first ``n`` sentences of ``split``, per module: PNG files under ``out/heatmaps``
    and TensorBoard images under ``out/tensorboard``."""
    import matplotlib.pyplot as plt
    from torch.utils.tensorboard import SummaryWriter

    v = dm.vocab
    batch = PairDataset(dm.data.splits[split], v.pad_id, v.bos_id, v.eos_id).collate(list(range(n)))
    maps = term_maps(loaded.model, batch)
    (out / "heatmaps").mkdir(parents=True, exist_ok=True)
    paths = []
    with SummaryWriter(str(out / "tensorboard")) as writer:
        for name, sentences in maps.items():
            role = name.split("/")[0]
            for s, panels in enumerate(sentences):
                rows, cols = token_labels(batch, s, role, v)
                fig = heatmap_figure(panels, f"{name} sentence {s}", rows, cols)
                path = out / "heatmaps" / f"{name.replace('/', '_')}_sent{s}.png"
                fig.savefig(path, dpi=100)
                writer.add_figure(f"terms/{name}/sent{s}", fig)
                plt.close(fig)
                paths.append(path)
    return paths

