"""The typed study config of ``nmt ablate`` (``configs/ablation/*.yaml``) and the runs it defines.

A study varies one kind of attention (``vary``) over a list of settings, each trained with every
seed on the same data. Every run is a normal experiment: the base config, then the study's
``data`` and ``overrides``, then the setting's own ``overrides``, then what the study imposes
(the setting's spec on the varied keys, ``train.seed``, ``train.output_dir``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from nmt.config import ConfigError, field, from_dict, load_yaml, parse_override, set_dotted
from nmt.experiment import ExperimentConfig, load_config

Vary = Literal["encoder_self", "decoder_self", "self", "cross"]

# The model keys each ``vary`` kind sets from a setting's spec, and the FLOPs parts it is charged.
VARIED_KEYS: dict[str, tuple[str, ...]] = {
    "encoder_self": ("model.encoder_self",),
    "decoder_self": ("model.decoder_self",),
    "self": ("model.encoder_self", "model.decoder_self"),
    "cross": ("model.cross",),
}
VARIED_FLOPS: dict[str, tuple[str, ...]] = {
    "encoder_self": ("encoder_self",),
    "decoder_self": ("decoder_self",),
    "self": ("encoder_self", "decoder_self"),
    "cross": ("cross",),
}
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=,-]*$")
IMPOSED = ("train.seed", "data.batch.seed", "train.output_dir")


@dataclass
class Setting:
    """One point of the study: a mechanism spec for the varied attention, plus optional overrides."""

    label: str = field(help="name of the setting: its directory, table row and plot label ([A-Za-z0-9._+=,-])")
    spec: str = field(help="mechanism spec put on every varied key, e.g. '0110', 'dynamic:k=7', 'w/o'")
    decoder_spec: Optional[str] = field(
        None, help="vary=self only: a different spec for the decoder (e.g. a causal window of other width)")
    overrides: dict[str, Any] = field(
        default_factory=dict, help="dotted experiment keys for this setting only, e.g. model.absolute_positions")


@dataclass
class StudyConfig:
    """An ablation study: settings x seeds of one base experiment, and where the results go."""

    name: str = field(help="study name (table and plot titles)")
    base: str = field(help="base experiment YAML; a relative path is relative to the study file")
    vary: Vary = field(help="attention varied: encoder_self, decoder_self, self (both) or cross")
    settings: list[Setting] = field(help="the settings compared (label, spec, optional overrides)")
    reference: str = field(help="label of the reference setting (bootstrap baseline, highlighted in the plot)")
    output_dir: str = field(help="study directory: <output_dir>/<label>/seed<k>/ per run, results.* at the top")
    seeds: list[int] = field(default_factory=lambda: [1], help="training seeds; every setting runs each one")
    data: dict[str, Any] = field(default_factory=dict, help="data section overrides (nested, merged into the base)")
    overrides: dict[str, Any] = field(
        default_factory=dict, help="dotted experiment keys for every run (model size, train.max_steps, ...)")
    split: str = field("test", help="split translated and scored at the end of each run")
    test_max_tokens: int = field(4000, help="source tokens per decoding batch when testing")
    bootstrap_samples: int = field(1000, help="paired bootstrap resamples against the reference (0: no p-values)")
    compare: list[list[str]] = field(
        default_factory=list, help="extra pairs of setting labels [A, B] to test against each other (A vs B)")
    test_checkpoint: str = field(
        "last", help="checkpoint tested: last, best (highest validation BLEU) or best:N (average of the N best)")
    blind_sets: list[str] = field(
        default_factory=list, help="blind test sets each run also translates with its test checkpoint and beam: "
        "<data.root>/<blind_dir>/<name>.<src_lang> (sources only; hypotheses committed beside the test's)")
    blind_dir: str = field("blind/multi30k", help="folder of the blind test sources, relative to data.root")
    records_dir: Optional[str] = field(
        None, help="committed results folder: each finished run's record and hypotheses "
        "(<label>/seed<k>.json, .hyp) and the study's results.*; a run recorded there is finished")
    analyze: list[str] = field(
        default_factory=list, help="setting labels whose finished runs are analysed (nmt analyze of the tested "
        "checkpoint on the split, term removal per role): <run>/analyze/, and <label>/seed<k>.analyze/ in records_dir")

    def __post_init__(self) -> None:
        if not self.settings:
            raise ConfigError("settings: give at least one setting")
        labels = [s.label for s in self.settings]
        for i, s in enumerate(self.settings):
            if not LABEL_RE.match(s.label):
                raise ConfigError(f"settings[{i}].label: {s.label!r} is not a valid label "
                                  "(letters, digits and . _ + = , - ; e.g. 'wo' for w/o)")
            if labels.count(s.label) > 1:
                raise ConfigError(f"settings[{i}].label: {s.label!r} is used by more than one setting")
            if s.decoder_spec is not None and self.vary != "self":
                raise ConfigError(f"settings[{i}].decoder_spec: only valid with vary: self (this study varies {self.vary})")
            self._check_not_imposed(s.overrides, f"settings[{i}].overrides.")
        self._check_not_imposed(self.overrides, "overrides.")
        self._check_not_imposed(dict(_flatten(self.data, "data")), "")
        if self.reference not in labels:
            raise ConfigError(f"reference: {self.reference!r} is not a setting label ({', '.join(labels)})")
        for i, pair in enumerate(self.compare):
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ConfigError(f"compare[{i}]: expected two different setting labels [A, B], got {pair}")
            unknown = [x for x in pair if x not in labels]
            if unknown:
                raise ConfigError(f"compare[{i}]: {', '.join(map(repr, unknown))} is not a setting label ({', '.join(labels)})")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds: {self.seeds} has duplicates")
        if self.test_max_tokens < 1:
            raise ConfigError(f"test_max_tokens must be positive, got {self.test_max_tokens}")
        for i, name in enumerate(self.blind_sets):
            if not LABEL_RE.match(name):
                raise ConfigError(f"blind_sets[{i}]: {name!r} is not a valid set name (letters, digits and . _ + = , -)")
        for i, label in enumerate(self.analyze):
            if label not in labels:
                raise ConfigError(f"analyze[{i}]: {label!r} is not a setting label ({', '.join(labels)})")
        if self.bootstrap_samples < 0:
            raise ConfigError(f"bootstrap_samples must be >= 0, got {self.bootstrap_samples}")
        self.best_n()  # validates test_checkpoint

    def best_n(self) -> int:
        """How many best checkpoints ``test_checkpoint`` averages (0: it tests last.ckpt)."""
        rule = self.test_checkpoint
        if rule == "last":
            return 0
        if rule == "best":
            return 1
        head, _, n = rule.partition(":")
        if head == "best" and n.isdigit() and int(n) >= 1:
            return int(n)
        raise ConfigError(f"test_checkpoint: expected last, best or best:N (N >= 1), got {rule!r}")

    @property
    def results_dir(self) -> Path:
        """Where results.* and the references go: ``records_dir`` if set, else ``output_dir``."""
        return Path(self.records_dir or self.output_dir)

    def _check_not_imposed(self, keys: dict[str, Any], where: str) -> None:
        """Dotted experiment ``keys`` must not set what the study sets for every run."""
        for key in keys:
            if key in VARIED_KEYS[self.vary] or key in IMPOSED:
                raise ConfigError(f"{where}{key}: set by the study itself (spec, seed or output_dir)")

    def varied_flops(self, flops: dict[str, int]) -> int:
        """FLOPs of the attention this study varies, from a run's per-part FLOPs."""
        return sum(flops[part] for part in VARIED_FLOPS[self.vary])

    def setting(self, label: str) -> Setting:
        """The setting called ``label``."""
        for s in self.settings:
            if s.label == label:
                return s
        raise ConfigError(f"no setting {label!r} in study {self.name} ({', '.join(s.label for s in self.settings)})")

    def run_dir(self, label: str, seed: int) -> Path:
        """Directory of one run: ``<output_dir>/<label>/seed<k>``."""
        return Path(self.output_dir) / label / f"seed{seed}"

    def run_overrides(self, setting: Setting, seed: int) -> list[tuple[str, Any]]:
        """(dotted key, value) overrides that turn the base config into this run's config, in order."""
        out = _flatten(self.data, "data")
        out += list(self.overrides.items())
        out += list(setting.overrides.items())
        keys = VARIED_KEYS[self.vary]
        for key in keys:
            spec = setting.decoder_spec if key == "model.decoder_self" and setting.decoder_spec else setting.spec
            out.append((key, spec))
        # the seed varies initialisation, dropout and batch order alike
        out += [("train.seed", seed), ("data.batch.seed", seed), ("train.output_dir", str(self.run_dir(setting.label, seed)))]
        return out

    def experiment(self, label: str, seed: int) -> ExperimentConfig:
        """The validated experiment config of one run; errors name the study, setting and key."""
        setting = self.setting(label)
        try:
            return load_config(self.base, self.run_overrides(setting, seed))
        except ConfigError as e:
            raise ConfigError(f"study {self.name}, setting {label!r}: {e}") from None


def _flatten(data: dict[str, Any], prefix: str) -> list[tuple[str, Any]]:
    """Nested mapping -> [(dotted key, leaf value)]; mappings are merged key by key into the base."""
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        dotted = f"{prefix}.{key}"
        if isinstance(value, dict) and value:
            out += _flatten(value, dotted)
        else:
            out.append((dotted, value))
    return out


STUDY_KEYS = {"name", "base", "vary", "settings", "reference", "output_dir", "seeds", "data", "overrides",
              "split", "test_max_tokens", "bootstrap_samples", "compare", "test_checkpoint", "records_dir",
              "blind_sets", "blind_dir", "analyze"}
EXPERIMENT_SECTIONS = {"model", "optim", "train", "decode"}


def parse_study_override(key: str, text: str) -> Any:
    """A command-line value of ``load_study``'s overrides, read by the type of the key it sets:
    ``study.KEY`` a study field, anything else an experiment field (``data.*``, ``model.*``, ...)."""
    head, _, rest = key.partition(".")
    if head == "study":
        return parse_override(StudyConfig, rest, text)
    return parse_override(ExperimentConfig, key, text)


def load_study(path: str | Path, overrides: list[tuple[str, Any]] | None = None) -> StudyConfig:
    """Read and validate a study YAML and every run config it defines.

    ``overrides`` are command-line ``--key value`` pairs: ``--study.KEY`` changes a study key
    (``--study.seeds [1]``, ``--study.output_dir DIR``), ``--data.KEY`` the study's data section,
    and experiment keys (``--train.max_steps 100``, ``--model.d_model 128``) join the study's
    ``overrides`` for every run.
    """
    p = Path(path)
    data = load_yaml(p)
    for key, value in overrides or []:
        head, _, rest = key.partition(".")
        if head in EXPERIMENT_SECTIONS:
            ov = data.setdefault("overrides", {})
            if not isinstance(ov, dict):
                raise ConfigError(f"{p}: overrides: expected a mapping of dotted keys")
            ov[key] = value
        elif head == "data":
            set_dotted(data, key, value)
        elif head == "study" and rest.split(".")[0] in STUDY_KEYS:
            set_dotted(data, rest, value)
        else:
            raise ConfigError(f"override --{key}: expected --study.KEY (KEY one of {', '.join(sorted(STUDY_KEYS))}), "
                              f"--data.KEY or an experiment key ({', '.join(sorted(EXPERIMENT_SECTIONS))}.KEY)")
    try:
        study = from_dict(StudyConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None
    base = Path(study.base).expanduser()
    if not base.is_absolute():
        base = p.parent / base
    if not base.is_file():
        raise ConfigError(f"{p}: base: experiment config {base} not found (relative paths start at the study file)")
    study.base = str(base)
    for s in study.settings:  # every spec, typed option and override is checked before anything trains
        try:
            cfg = study.experiment(s.label, study.seeds[0])
            if study.best_n() > cfg.train.save_top_k:
                raise ConfigError(f"study {study.name}, setting {s.label!r}: test_checkpoint {study.test_checkpoint} "
                                  f"needs train.save_top_k >= {study.best_n()}, got {cfg.train.save_top_k}")
        except ConfigError as e:
            raise ConfigError(f"{p}: {e}") from None
    return study
