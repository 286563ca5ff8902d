"""The study config: strict validation with errors naming the key, and how run configs are built."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.ablate_toys import BASE_YAML
from helpers.paths import REPO

from nmt.ablate.study import load_study
from nmt.cli import main
from nmt.config import ConfigError

STUDY = {
    "name": "t",
    "base": "base.yaml",
    "vary": "self",
    "reference": "1111",
    "seeds": [1, 2],
    "output_dir": "OUT",
    "data": {"root": "elsewhere", "subword": {"vocab_size": 50}},
    "overrides": {"model.cross": "1111", "train.max_steps": 5},
    "settings": [
        {"label": "wo", "spec": "w/o", "overrides": {"model.absolute_positions": "on"}},
        {"label": "1111", "spec": "1111"},
        {"label": "lightweight-k7", "spec": "lightweight:k=7", "decoder_spec": "lightweight:k=4"},
    ],
}


def _write(tmp_path: Path, study: dict | str) -> Path:
    (tmp_path / "base.yaml").write_text(BASE_YAML.format(root="raw", prepared="prepared"), encoding="utf-8")
    path = tmp_path / "study.yaml"
    path.write_text(study if isinstance(study, str) else yaml.safe_dump(study), encoding="utf-8")
    return path


def _with(**changes) -> dict:
    return {**STUDY, **changes}


def test_run_configs_layer_base_study_setting_and_imposed_keys(tmp_path: Path) -> None:
    study = load_study(_write(tmp_path, STUDY), [("train.max_steps", 7), ("study.seeds", [3])])
    assert study.seeds == [3] and Path(study.base) == tmp_path / "base.yaml"  # relative to the study file
    cfg = study.experiment("lightweight-k7", 3)
    m = cfg.model
    assert (m.encoder_self, m.decoder_self, m.cross) == ("lightweight:k=7", "lightweight:k=4", "1111")
    assert m.d_model == 16  # from the base
    assert cfg.data.root == "elsewhere" and cfg.data.subword.vocab_size == 50 and cfg.data.corpus == "toy"
    assert cfg.train.max_steps == 7 and cfg.train.seed == 3 and cfg.data.batch.seed == 3  # seed sets batch order too
    assert Path(cfg.train.output_dir) == Path("OUT") / "lightweight-k7" / "seed3"
    wo = study.experiment("wo", 3).model
    assert (wo.encoder_self, wo.decoder_self, wo.absolute_positions) == ("w/o", "w/o", "on")


def test_cross_study_sets_only_cross(tmp_path: Path) -> None:
    settings = [{"label": "aligned", "spec": "1111:offset=aligned"}, {"label": "1000", "spec": "1000"}]
    study = load_study(_write(tmp_path, _with(vary="cross", reference="1000", settings=settings, overrides={})))
    m = study.experiment("aligned", 1).model
    assert (m.encoder_self, m.decoder_self, m.cross) == ("1000", "1000", "1111:offset=aligned")


@pytest.mark.parametrize("changes, message", [
    ({"colour": 1}, "unknown config key 'colour'"),
    ({"vary": "both"}, "vary: 'both' is not one of"),
    ({"reference": "1000"}, "reference: '1000' is not a setting label"),
    ({"seeds": []}, "seeds: give at least one seed"),
    ({"seeds": [1, 1]}, "seeds: [1, 1] has duplicates"),
    ({"settings": [{"label": "1111", "spec": "1111", "beam": 4}]}, "unknown config key 'settings[0].beam'"),
    ({"settings": [{"label": "1111", "spec": 1111}]}, "settings[0].spec: expected a string, got the number 1111"),
    ({"settings": [{"label": "1111", "spec": "1111"}, {"label": "1111", "spec": "1000"}]},
     "settings[0].label: '1111' is used by more than one setting"),
    ({"settings": [{"label": "1111", "spec": "1111"}, {"label": "w/o", "spec": "w/o"}]},
     "settings[1].label: 'w/o' is not a valid label"),
    ({"settings": [{"label": "1111", "spec": "1111:zz=3"}]}, "model.encoder_self[0] = '1111:zz=3': 1111: unknown option(s) zz"),
    ({"settings": [{"label": "1111", "spec": "1111", "overrides": {"model.encoder_self": "1000"}}]},
     "settings[0].overrides.model.encoder_self: set by the study itself"),
    ({"overrides": {"train.seed": 3}}, "overrides.train.seed: set by the study itself"),
    ({"overrides": {"data.batch.seed": 3}}, "overrides.data.batch.seed: set by the study itself"),
    ({"data": {"batch": {"seed": 3}}}, "data.batch.seed: set by the study itself"),
    ({"base": "missing.yaml"}, "base: experiment config"),
    ({"compare": [["1111", "zz"]]}, "compare[0]: 'zz' is not a setting label"),
    ({"compare": [["1111", "1111"]]}, "compare[0]: expected two different setting labels"),
    ({"analyze": ["1111", "0111"]}, "analyze[1]: '0111' is not a setting label"),
    ({"vary": "cross", "overrides": {}, "settings": [{"label": "1111", "spec": "1111", "decoder_spec": "1000"}]},
     "settings[0].decoder_spec: only valid with vary: self"),
    ({"vary": "cross", "overrides": {}, "settings": [{"label": "1111", "spec": "w/o"}]},
     "model.cross[0]: 'w/o' is only for self-attention"),
    ({"vary": "cross", "overrides": {}, "settings": [{"label": "1111", "spec": "dynamic:k=3"}]}, "setting '1111': "),
])
def test_bad_studies_name_the_key(tmp_path: Path, changes: dict, message: str) -> None:
    path = _write(tmp_path, _with(**changes))
    with pytest.raises(ConfigError) as e:
        load_study(path)
    assert message in str(e.value) and str(path) in str(e.value)


def test_misspelt_setting_override_suggests_the_key(tmp_path: Path) -> None:
    settings = [{"label": "1111", "spec": "1111", "overrides": {"model.d_modle": 8}}]
    with pytest.raises(ConfigError, match=r"unknown config key 'model.d_modle' \(did you mean 'd_model'\?\)"):
        load_study(_write(tmp_path, _with(settings=settings)))


def test_bad_command_line_override(tmp_path: Path) -> None:
    path = _write(tmp_path, STUDY)
    with pytest.raises(ConfigError, match="override --colour.x: expected --study.KEY"):
        load_study(path, [("colour.x", 1)])
    with pytest.raises(ConfigError, match="override --study.colour"):
        load_study(path, [("study.colour", 1)])
    assert load_study(path, [("study.analyze", ["1111"]), ("study.blind_sets", ["x"])]).analyze == ["1111"]


def test_cli_reports_bad_study_in_one_line(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, _with(vary="encoder"))
    assert main(["ablate", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "vary: 'encoder' is not one of" in err and len(err.splitlines()) == 1
    assert main(["ablate"]) == 2
    assert "give --config FILE" in capsys.readouterr().err


def test_cli_refuses_a_bad_setting_option_before_any_run(tmp_path: Path, capsys) -> None:
    settings = [{"label": "1111", "spec": "1111"}, {"label": "dyn", "spec": "dynamic:k=4"}]  # even k in the encoder
    path = _write(tmp_path, _with(settings=settings, output_dir=str(tmp_path / "OUT")))
    assert main(["ablate", "--config", str(path), "--train.max_steps", "1000"]) == 2
    err = capsys.readouterr().err
    assert "setting 'dyn'" in err and "model.encoder_self[0] = 'dynamic:k=4': dynamic: option k=4 must be odd" in err
    assert not (tmp_path / "OUT").exists()


SHIPPED = sorted((REPO / "configs" / "ablation").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_studies_are_valid(path: Path) -> None:
    study = load_study(path)  # builds every setting's model once: specs and options are checked
    assert study.name == path.stem and study.seeds == [1, 2]
    assert Path(study.output_dir) == Path("runs/ablation") / path.stem
    for s in study.settings:  # equal updates, every setting order-aware through absolute positions
        cfg = study.experiment(s.label, 2)
        assert cfg.train.max_steps > 0 and cfg.train.max_time_minutes is None
        assert cfg.model.uses_absolute_positions("encoder") or s.label.endswith("-noabs")


def test_shipped_studies_cover_the_issue() -> None:
    assert [p.stem for p in SHIPPED] == ["beyond", "convolution", "cross_attention", "deformable", "salient",
                                         "self_attention"]
    self_study = load_study(SHIPPED[-1])
    on = [s.label for s in self_study.settings if not s.label.endswith("-noabs")]
    assert on == ["wo", "0001", "0010", "0011", "0100", "0110", "0111", "1000", "1111"]
    for label in on:
        cfg = self_study.experiment(label, 1)
        assert cfg.model.uses_absolute_positions("encoder") and cfg.model.cross == "1111"
    for label in ("0011-noabs", "0110-noabs", "1000-noabs", "1111-noabs"):
        assert not self_study.experiment(label, 1).model.uses_absolute_positions("decoder")
    cross = load_study(SHIPPED[2])
    assert [s.spec for s in cross.settings] == ["1000", "0100", "0010", "0001", "0011", "0111", "1111"]
