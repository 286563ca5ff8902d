"""Test-time term removal: a term switched off (``FactoredAttention.use_terms``) in every module of
one role, or of one layer of a role, and the split decoded and scored with the normal search."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from nmt.analyze.sites import TERMS, Site
from nmt.inference import Loaded, score_split
from nmt.modules.base import ROLES

log = logging.getLogger("nmt")


@dataclass(frozen=True)
class Removal:
    """Term ``term`` removed from the modules ``sites`` of ``role``, in ``layer`` (None: all layers)."""

    role: str
    layer: int | None
    term: str
    sites: tuple[Site, ...]

    @property
    def label(self) -> str:
        return f"{self.role}-{'all' if self.layer is None else f'layer{self.layer}'}-{self.term}"


@contextlib.contextmanager
def removed(sites: tuple[Site, ...] | list[Site], term: str) -> Iterator[list[str]]:
    """Within the block, ``term`` is not computed by any of ``sites`` that computes it (a module
    left with no term gives uniform weights); yields the names of the modules changed. The active
    terms of each module are restored afterwards."""
    i = TERMS.index(term)
    changed: list[tuple[Site, str]] = []
    try:
        for s in sites:
            mask = s.module.active_mask
            if mask[i] == "1":
                s.module.use_terms(mask[:i] + "0" + mask[i + 1:])
                changed.append((s, mask))
        yield [s.name for s, _ in changed]
    finally:
        for s, mask in changed:
            s.module.use_terms(mask)


def removals(sites: list[Site], per_layer: bool = True) -> list[Removal]:
    """Every (role, term) removal over all layers of the role, then, when ``per_layer`` and the role
    has more than one layer holding the term, every (role, layer, term) removal."""
    plan = []
    for role in ROLES:
        in_role = [s for s in sites if s.role == role]
        for term in TERMS:
            having = [s for s in in_role if term in s.terms]
            if not having:
                continue
            plan.append(Removal(role, None, term, tuple(having)))
            layers = sorted({s.layer for s in having})
            if per_layer and len(layers) > 1:
                plan += [Removal(role, i, term, tuple(s for s in having if s.layer == i)) for i in layers]
    return plan


class FirstSentences:
    """A data module's raw ``sources``/``references`` cut to the first ``n`` sentences (0: all)."""

    def __init__(self, dm: Any, n: int) -> None:
        self.dm, self.n = dm, n

    def sources(self, split: str) -> list[str]:
        lines = self.dm.sources(split)
        return lines[: self.n] if self.n > 0 else lines

    def references(self, split: str) -> list[str]:
        lines = self.dm.references(split)
        return lines[: self.n] if self.n > 0 else lines


def run_ablations(
    loaded: Loaded,
    data: FirstSentences,
    split: str,
    plan: list[Removal],
    overrides: dict[str, Any],
    hyp_dir: Path,
    max_tokens: int = 4000,
) -> list[dict[str, Any]]:
    """Decode and score ``split`` intact, then once per removal of ``plan`` (``nmt.inference.score_split``:
    the search, settings and scoring of ``nmt test``). Hypotheses go to ``hyp_dir/<label>.hyp``.

    Returns one row per run: role, layer ("all" or an int; None for the intact model), term, BLEU,
    chrF and their change against the intact model (d_bleu, d_chrf), and the modules changed."""
    hyp_dir.mkdir(parents=True, exist_ok=True)
    intact = score_split(loaded, data, split, overrides, hyp_dir / "intact.hyp", max_tokens)
    log.info("intact: BLEU %.2f chrF %.2f", intact["bleu"], intact["chrf"])
    rows = [{
        "role": None, "layer": None, "term": None, "bleu": intact["bleu"], "chrf": intact["chrf"],
        "d_bleu": 0.0, "d_chrf": 0.0, "modules": [],
        "bleu_signature": intact["bleu_signature"], "chrf_signature": intact["chrf_signature"],
        "sentences": intact["sentences"],
    }]
    for r in plan:
        with removed(r.sites, r.term) as names:
            res = score_split(loaded, data, split, overrides, hyp_dir / f"{r.label}.hyp", max_tokens)
        rows.append({
            "role": r.role, "layer": "all" if r.layer is None else r.layer, "term": r.term,
            "bleu": res["bleu"], "chrf": res["chrf"],
            "d_bleu": res["bleu"] - intact["bleu"], "d_chrf": res["chrf"] - intact["chrf"], "modules": names,
        })
        log.info("without %s: BLEU %.2f (%+.2f) chrF %.2f (%+.2f)", r.label, res["bleu"], rows[-1]["d_bleu"],
                 res["chrf"], rows[-1]["d_chrf"])
    return rows
