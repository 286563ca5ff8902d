"""Command-line overrides are read by the type of the field they set, not by how the text looks."""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any, Literal, Optional, Union

import pytest

from nmt.ablate.study import StudyConfig, parse_study_override
from nmt.cli import build_parser
from nmt.config import ConfigError, _convert, field_type, parse_override, parse_text
from nmt.decode.config import DecodeConfig
from nmt.experiment import ExperimentConfig, load_config
from nmt.model.config import SpecValue

# Every leaf type a config field has, with texts and what they must read as. A field of a new type
# fails ``test_every_field_type_is_covered`` until it gets rows here.
CASES: dict[Any, list[tuple[str, Any]]] = {
    int: [("1000", 1000), ("0110", 110), ("7", 7), ("-3", -3), ("1_000", 1000)],
    float: [("1000", 1000.0), ("0.1", 0.1), ("3e-4", 3e-4), ("1", 1.0)],
    bool: [("true", True), ("false", False), ("1", True), ("0", False), ("off", False)],
    str: [("1000", "1000"), ("0110", "0110"), ("runs/x", "runs/x"), ("true", "true"), ("16-mixed", "16-mixed")],
    Optional[str]: [("null", None), ("wmt14", "wmt14"), ("1000", "1000")],
    Optional[float]: [("null", None), ("30", 30.0), ("1.5", 1.5)],
    Union[int, str]: [("1000", 1000), ("2", 2), ("auto", "auto")],
    SpecValue: [
        ("0110", "0110"), ("1000", "1000"), ("w/o", "w/o"), ("1111:w=8", "1111:w=8"),
        ("dynamic:k=7,glu=false", "dynamic:k=7,glu=false"), ("0010+deformable", "0010+deformable"),
        ("[0110, 1000]", ["0110", "1000"]), ("['0110', w/o]", ["0110", "w/o"]),
    ],
    list[float]: [("[0.9, 0.98]", [0.9, 0.98]), ("[1, 0]", [1.0, 0.0])],
    list[int]: [("[1000]", [1000]), ("[1, 2, 3]", [1, 2, 3])],
    list[list[str]]: [("[[0110, 1000]]", [["0110", "1000"]])],
    list[str]: [("[test_2017_flickr, '2018']", ["test_2017_flickr", "2018"]), ("[]", [])],
    dict[str, str]: [("{train: train, valid: '0110'}", {"train": "train", "valid": "0110"}), ("{test: 1000}", {"test": "1000"})],
    dict[str, Any]: [("{model.d_model: 64}", {"model.d_model": 64})],
}


def _leaves(cls: type, prefix: str = "") -> list[tuple[str, Any]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += _leaves(tp, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, tp))
    return out


FIELDS = _leaves(ExperimentConfig) + _leaves(DecodeConfig, "decode.") + _leaves(StudyConfig, "study.")


def _covered(tp: Any) -> bool:
    """Literals have their own test, lists of dataclasses (study.settings) the study test below."""
    if typing.get_origin(tp) is Literal:
        return True
    if typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
        return True
    return tp in CASES


def test_every_field_type_is_covered():
    missing = {key: tp for key, tp in FIELDS if not _covered(tp)}
    assert not missing, f"add override test rows for these field types: {missing}"


@pytest.mark.parametrize("tp,text,expected", [(tp, t, e) for tp, rows in CASES.items() for t, e in rows])
def test_text_is_read_by_the_field_type(tp, text, expected):
    value = parse_text(text, tp)
    assert value == expected and type(value) is type(expected)
    _convert(value, tp, "key")  # and the config accepts it


@pytest.mark.parametrize("key,tp", [(k, tp) for k, tp in FIELDS if typing.get_origin(tp) is Literal])
def test_literal_fields_read_each_choice(key, tp):
    for choice in typing.get_args(tp):
        assert parse_text(str(choice), tp) == choice


def test_fields_are_found_through_sections_and_mappings():
    assert field_type(ExperimentConfig, "train.max_steps") is int
    assert field_type(ExperimentConfig, "data.subword.vocab_size") is int
    assert field_type(ExperimentConfig, "data.splits.test") is str
    assert field_type(ExperimentConfig, "model.nosuch") is None
    assert field_type(ExperimentConfig, "model.d_model.x") is None


@pytest.mark.parametrize("key,text,expected", [
    ("train.max_steps", "1000", 1000),
    ("data.subword.vocab_size", "1000", 1000),
    ("data.batch.max_tokens", "1000", 1000),
    ("train.max_time_minutes", "1000", 1000.0),
    ("decode.beam", "1000", 1000),
    ("model.encoder_self", "0110", "0110"),
    ("model.decoder_self", "1000", "1000"),
    ("model.cross", "[1000, 0110]", ["1000", "0110"]),
    ("train.devices", "1000", 1000),
])
def test_overrides_of_zero_one_digits_load(key, text, expected):
    cfg = load_config(None, [(key, parse_override(ExperimentConfig, key, text)), ("model.decoder_layers", 2)])
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    assert value == expected


def test_a_single_value_for_a_list_field_is_a_list_of_one_and_a_scalar_for_a_section_is_refused():
    assert parse_override(ExperimentConfig, "model.plugins", "my_mech.py") == ["my_mech.py"]
    assert parse_override(ExperimentConfig, "model.plugins", "[a.py, b.py]") == ["a.py", "b.py"]
    with pytest.raises(ConfigError, match=r"data\.batch"):  # used to recurse without end
        load_config(None, [("data.batch", parse_override(ExperimentConfig, "data.batch", "5"))])


def test_a_value_that_does_not_fit_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"train\.max_steps: expected an integer, got 'abc'"):
        load_config(None, [("train.max_steps", parse_override(ExperimentConfig, "train.max_steps", "abc"))])
    with pytest.raises(ConfigError, match=r"unknown config key 'train\.max_stpes'"):
        load_config(None, [("train.max_stpes", parse_override(ExperimentConfig, "train.max_stpes", "1000"))])


def test_decode_options_and_study_overrides_are_typed():
    args = build_parser().parse_args(["translate", "--checkpoint", "x.ckpt", "--beam", "1000", "--alpha", "1"])
    assert (args.beam, args.alpha) == (1000, 1.0)
    assert parse_study_override("train.max_steps", "1000") == 1000
    assert parse_study_override("model.encoder_self", "0110") == "0110"
    assert parse_study_override("study.seeds", "[1000]") == [1000]
    assert parse_study_override("study.test_max_tokens", "1000") == 1000
    settings = parse_study_override("study.settings", "[{label: a, spec: 0110, overrides: {model.d_model: 64}}]")
    assert settings == [{"label": "a", "spec": "0110", "overrides": {"model.d_model": 64}}]


@pytest.mark.parametrize("key, value, message", [
    ("max_steps", -5, "train.max_steps must be -1 (no limit) or >= 1, got -5"),
    ("max_steps", 0, "train.max_steps must be -1 (no limit) or >= 1, got 0"),
    ("max_epochs", -3, "train.max_epochs must be -1 (no limit) or >= 1, got -3"),
    ("max_time_minutes", -1.0, "train.max_time_minutes must be >= 0 (0 or null: no limit), got -1.0"),
    ("devices", 0, "train.devices must be a number of devices >= 1, -1 (all), 'auto' or a list of device indices"),
    ("devices", "0", "train.devices must be a number of devices >= 1"),
    ("devices", "two", "train.devices must be a number of devices >= 1"),
    ("precision", "fp8", "train.precision: 'fp8' is not one of 32-true, 32, bf16-mixed"),
    ("accelerator", "gpus", "train.accelerator: 'gpus' is not one of auto, cpu, gpu, cuda, mps, tpu"),
    ("strategy", " ", "train.strategy must be a Lightning strategy name"),
    ("num_nodes", 0, "train.num_nodes must be >= 1, got 0"),
    ("log_every_steps", 0, "train.log_every_steps must be >= 1, got 0"),
    ("val_decode_beam", 0, "train.val_decode_beam must be >= 1, got 0"),
    ("val_max_sentences", -1, "train.val_max_sentences must be >= 0, got -1"),
    ("patience", -1, "train.patience must be >= 0, got -1"),
    ("heatmap_sentences", -2, "train.heatmap_sentences must be >= 0, got -2"),
    ("num_threads", -4, "train.num_threads must be >= 0, got -4"),
    ("gradient_clip_val", -1.0, "train.gradient_clip_val must be >= 0 (0: off), got -1.0"),
])
def test_every_train_option_is_checked_when_the_config_loads(key, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [(f"train.{key}", value)])


@pytest.mark.parametrize("key, value", [
    ("devices", "0,1"), ("devices", "[0]"), ("devices", -1), ("devices", "auto"), ("devices", 2),
    ("precision", "bf16-mixed"), ("accelerator", "gpu"), ("strategy", "ddp"), ("max_time_minutes", 0.5),
])
def test_train_options_that_can_work_somewhere_load(key, value):
    """Hardware is checked when training starts (nmt.train.fit): a GPU config loads on a CPU machine."""
    assert getattr(load_config(None, [(f"train.{key}", value)]).train, key) == value


def test_an_override_error_names_the_command_line_not_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  max_steps: 10\n", encoding="utf-8")
    with pytest.raises(ConfigError) as bad_override:
        load_config(path, [("train.seed", 3), ("train.max_steps", -5)])
    assert str(bad_override.value) == (f"--train.max_steps on the command line (config {path}): "
                                       "train.max_steps must be -1 (no limit) or >= 1, got -5")
    with pytest.raises(ConfigError, match=r"^--trian\.max_steps on the command line .*unknown config key 'trian'"):
        load_config(path, [("trian.max_steps", 3)])
    with pytest.raises(ConfigError, match=r"^--decode\.max_len on the command line: decode\.min_len \(50\)"):
        load_config(None, [("decode.min_len", 50), ("decode.max_len", 5)])
    path.write_text("train:\n  max_steps: -5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as bad_file:
        load_config(path, [("train.seed", 3)])
    assert str(bad_file.value).startswith(f"{path}: train.max_steps must be")


def test_a_min_len_above_max_len_is_refused():
    with pytest.raises(ConfigError, match=re.escape("decode.min_len (50) must be <= decode.max_len (5)")):
        DecodeConfig(min_len=50, max_len=5)
    assert DecodeConfig(min_len=32, max_len=32).min_len == 32
