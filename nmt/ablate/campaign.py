"""A campaign file: several studies run as one resumable job, and the paper's claims to decide on them.

The campaign file (``configs/ablation/repro/campaign.yaml``) lists *families* (one corpus and
direction, or one position regime) that map study kinds (``self``, ``cross``, ...) to study files,
and the *claims* as data: for each, the pairs of settings, the test and the margin. The verdicts
(``nmt.ablate.verdict``) are decided family by family (intersection-union tests within a claim,
Holm across the claims of a family) and written to ``<results_dir>/verdicts.{md,json}``
(``nmt.ablate.verdict_page``). With a ``seed_rule`` each family's seed count is decided by the
campaign itself on its first seeds (here: the family's seed plan, ``nmt.ablate.seeds``), and a
family's verdicts stay pending until all its planned seeds are in. Running it: ``nmt.ablate.command``.

    nmt ablate --config configs/ablation/repro/campaign.yaml --data.root ../shared/data   # run / resume
    nmt ablate --config configs/ablation/repro/campaign.yaml --status     # done, running, left, time
    nmt ablate --config configs/ablation/repro/campaign.yaml --verdicts   # verdicts from the records
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from nmt.ablate.report import collect_records
from nmt.ablate.seeds import SeedDecision, decide_seeds, plan_path, planned_seeds, read_plan, write_plan
from nmt.ablate.study import StudyConfig, load_study
from nmt.ablate.verdict import TESTS, Claim, ClaimPart, claims_in, seeds_done
from nmt.config import ConfigError, field, from_dict, load_yaml

log = logging.getLogger("nmt")


@dataclass
class PartConfig:
    """One pair of a claim: settings ``a`` and ``b`` of the family's study ``study``."""

    study: str = field(help="study kind, a key of each family's studies (e.g. self, cross)")
    a: str = field(help="setting label A")
    b: str = field(help="setting label B")
    test: str = field(help="close | worse | not_worse | better (on A - B, see nmt.ablate.verdict)")
    margin: Optional[float] = field(None, help="BLEU margin (default: the campaign's)")
    metric: str = field("bleu", help="bleu or chrf")
    cheaper: bool = field(False, help="the claim also says A costs less: A's attention FLOPs must be below B's")
    cost_reference: Optional[str] = field(
        None, help="the claim also bounds A's cost by another setting of the study: A's attention FLOPs at most "
        "cost_ratio x this setting's")
    cost_ratio: Optional[float] = field(None, help="the bound of cost_reference (e.g. 1.25: at most 25 % more)")


@dataclass
class ClaimConfig:
    """A claim of the paper and the pairs that test it."""

    id: str = field(help="claim number or short name")
    text: str = field(help="the claim, in the paper's words")
    parts: list[PartConfig] = field(help="the tested pairs (all must be reproduced)")


@dataclass
class FamilyConfig:
    """A replication (corpus, direction, position regime): its studies form one Holm family."""

    name: str = field(help="e.g. 'Multi30k en->de, relative positions'")
    studies: dict[str, str] = field(help="study kind -> study YAML (relative to the campaign file)")


@dataclass
class SeedRuleConfig:
    """The pre-registered seed rule (``nmt.ablate.seeds``): decided once per family on its first seeds."""

    first: list[int] = field(default_factory=lambda: [1, 2, 3], help="the seeds the spread is measured on")
    min_seeds: int = field(4, help="never fewer seeds than this")
    max_seeds: int = field(30, help="refuse to plan more seeds than this")
    power: float = field(0.8, help="every claim's power at Holm's first step must reach this")

    def __post_init__(self) -> None:
        if len(set(self.first)) < 2 or not 2 <= self.min_seeds <= self.max_seeds or not 0 < self.power < 1:
            raise ConfigError("needs two or more distinct first seeds, 2 <= min_seeds <= max_seeds "
                              f"and power in (0, 1); got {self.first}, {self.min_seeds}, {self.max_seeds}, {self.power}")


@dataclass
class CampaignConfig:
    """Families of studies, the claims decided on each, and the pre-registered test settings."""

    name: str = field(help="campaign name")
    families: list[FamilyConfig] = field(help="replications; a claim runs in every family holding its studies")
    claims: list[ClaimConfig] = field(help="the claims as data")
    results_dir: str = field(help="where verdicts.md and verdicts.json are written (committed)")
    alpha: float = field(0.05, help="family-wise error rate (Holm across the claims of a family)")
    margin: float = field(1.0, help="default margin in BLEU, fixed before the runs")
    seed_rule: Optional[SeedRuleConfig] = field(
        None, help="decide each family's seed count on its first seeds (without it: the study files' seeds)")

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or self.margin < 0:
            raise ConfigError(f"alpha must be in (0, 1) and margin >= 0, got {self.alpha}, {self.margin}")
        for c in self.claims:
            for i, p in enumerate(c.parts):
                if p.test not in TESTS:
                    raise ConfigError(f"claims[{c.id}].parts[{i}].test: {p.test!r} is not one of {', '.join(TESTS)}")
                if (p.cost_reference is None) != (p.cost_ratio is None) or (p.cost_ratio or 1.0) <= 0:
                    raise ConfigError(f"claims[{c.id}].parts[{i}]: cost_reference and a positive cost_ratio go together")

    @property
    def rule(self) -> SeedRuleConfig:
        """The seed rule a decision applies: ``seed_rule``, else the default rule (a campaign without one
        keeps its study files' seeds; ``scripts/seed_power.py`` can still show what the rule would say)."""
        return self.seed_rule or SeedRuleConfig()

    def claims_as_data(self) -> list[Claim]:
        return [Claim(c.id, c.text, [ClaimPart(p.study, p.a, p.b, p.test, self.margin if p.margin is None else p.margin,
                                               p.metric, p.cheaper, p.cost_reference, p.cost_ratio)
                                     for p in c.parts]) for c in self.claims]


@dataclass
class Campaign:
    """A loaded campaign: its config and every family's studies (validated, runs buildable)."""

    config: CampaignConfig
    families: dict[str, dict[str, StudyConfig]]  # with each family's planned seeds, once decided
    path: Path  # the campaign file

    def family(self, name: str) -> dict[str, StudyConfig]:
        """Family ``name``'s studies by kind; a ConfigError naming the file and its families if it has none."""
        if name not in self.families:
            raise ConfigError(f"{self.path}: no family {name!r} (families: {', '.join(self.families)})")
        return self.families[name]

    def studies(self) -> list[StudyConfig]:
        """Each study once, in the order the families list them."""
        seen: dict[str, StudyConfig] = {}
        for fam in self.families.values():
            for st in fam.values():
                seen.setdefault(st.output_dir, st)
        return list(seen.values())


def is_campaign_file(path: str | Path) -> bool:
    """Whether a YAML file is a campaign (it has ``families``) rather than a study."""
    data = load_yaml(Path(path))
    return isinstance(data, dict) and "families" in data


def load_campaign(path: str | Path, overrides: list[tuple[str, Any]] | None = None) -> Campaign:
    """Read a campaign and load each of its studies with the command-line ``overrides``."""
    p = Path(path)
    try:
        cfg = from_dict(CampaignConfig, load_yaml(p))
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None
    by_file: dict[Path, StudyConfig] = {}
    families: dict[str, dict[str, StudyConfig]] = {}
    for fam in cfg.families:
        families[fam.name] = {}
        for kind, rel in fam.studies.items():
            f = (p.parent / rel).resolve()
            if f not in by_file:
                if not f.is_file():
                    raise ConfigError(f"{p}: family {fam.name!r}, study {kind}: {f} not found")
                by_file[f] = load_study(f, overrides)
            families[fam.name][kind] = by_file[f]
    for claim in cfg.claims:
        for part in claim.parts:
            for name, fam in families.items():
                st = fam.get(part.study)
                named = [x for x in (part.a, part.b, part.cost_reference) if x is not None]
                missing = [x for x in named if st is not None and x not in {s.label for s in st.settings}]
                if missing:
                    raise ConfigError(f"{p}: claim {claim.id}: family {name!r} study {st.name} has no setting "
                                      f"{', '.join(map(repr, missing))}")
    campaign = Campaign(cfg, families, p)
    for name in families:
        apply_seed_plan(campaign, name)
    return campaign


# ---- seeds -------------------------------------------------------------------------------------

def seed_count(campaign: Campaign, family: str) -> Optional[int]:
    """The seed count decided for a family (None: undecided); ConfigError on an unreadable decision."""
    try:
        return read_plan(campaign.config.results_dir, family)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def apply_seed_plan(campaign: Campaign, family: str) -> bool:
    """Extend the family's studies to its decided seed count, if it has one; whether that added seeds."""
    n = seed_count(campaign, family) if campaign.config.seed_rule is not None else None
    studies = campaign.families[family]
    if n is None or all(len(st.seeds) >= n for st in studies.values()):
        return False
    campaign.families[family] = {kind: replace(st, seeds=planned_seeds(st.seeds, n)) for kind, st in studies.items()}
    return True


def seed_decision(campaign: Campaign, family: str, *, whole: bool = False) -> Optional[SeedDecision]:
    """The seed rule's decision for a family, from its runs of the rule's first seeds (the campaign's
    ``seed_rule``, else the default rule). With ``whole``, None unless every setting its claims
    compare has finished every one of those seeds. ValueError when it cannot be taken
    (``nmt.ablate.seeds.decide_seeds``)."""
    cfg = campaign.config
    rule = cfg.rule
    studies = campaign.families[family]
    claims = cfg.claims_as_data()
    runs_of = {kind: collect_records(replace(st, seeds=list(rule.first))) for kind, st in studies.items()}
    if whole:
        parts = [p for c in claims_in(claims, studies) for p in c.parts]
        if not parts or any(seeds_done(runs_of[p.study], p) < len(set(rule.first)) for p in parts):
            return None  # (no parts: nothing is decided on this family, its study files' seeds stand)
    return decide_seeds(claims, runs_of, rule.first, cfg.alpha, rule.power, rule.min_seeds, rule.max_seeds, cfg.margin)


def decide_seed_plan(campaign: Campaign, family: str) -> Optional[str]:
    """Apply the seed rule to a family whose claims' settings have all finished its first seeds and
    which has no decision yet: keep the decision and extend the family's studies. Returns the
    decision's Markdown, None when there was nothing to decide yet."""
    cfg = campaign.config
    rule = cfg.seed_rule
    if rule is None or seed_count(campaign, family) is not None:
        return None
    try:
        decision = seed_decision(campaign, family, whole=True)
    except ValueError as e:  # e.g. no seed count up to max_seeds reaches the power: a person has to look
        log.error("campaign %s: seed rule for %s: %s; the family keeps its study files' seeds and its verdicts "
                  "stay pending", cfg.name, family, e)
        return None
    if decision is None:
        return None
    text = write_plan(cfg.results_dir, family, decision, rule.first, rule.power)
    apply_seed_plan(campaign, family)
    return text


def seed_plan_status(campaign: Campaign) -> str:
    """For ``--status``: each family's seed count, decided or still to be decided (empty without a
    seed rule)."""
    rule = campaign.config.seed_rule
    if rule is None:
        return ""
    lines = ["| family | seeds | seed rule |", "|---|---|---|"]
    for name, studies in campaign.families.items():
        n = max(len(st.seeds) for st in studies.values())
        if seed_count(campaign, name) is None:
            how = f"to be decided when seeds {', '.join(map(str, rule.first))} of every compared setting are in"
        else:
            how = f"decided ({plan_path(campaign.config.results_dir, name).with_suffix('.md')})"
        lines.append(f"| {name} | {n} | {how} |")
    return "\n".join(lines) + "\n"
