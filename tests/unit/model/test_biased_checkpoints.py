"""Checkpoints trained when factor masks still had query/key biases load as the biased layer."""

import warnings
from pathlib import Path

import pytest

from nmt.checkpoint import upgrade_biased_masks
from nmt.config import from_dict, to_dict
from nmt.model.config import ModelConfig
from nmt.model.transformer import Transformer

SMALL = {"d_model": 16, "n_heads": 2, "d_ff": 32, "encoder_layers": 2, "decoder_layers": 2}


def model(**specs) -> Transformer:
    return Transformer(from_dict(ModelConfig, {**SMALL, **specs}), 30, 30, 0)


def test_plain_masks_with_biases_become_proj_bias_and_load_strictly():
    # the weights of an old "1000" model: the standard biased layer everywhere but one salient layer
    old = model(encoder_self="1000:proj_bias=1", decoder_self=["salient", "0010+1000:proj_bias=1"],
                cross="1100:proj_bias=1")
    config = {"model": to_dict(from_dict(ModelConfig, {**SMALL, "decoder_self": ["salient", "0010+1000"],
                                                       "cross": "1100"}))}
    with pytest.warns(UserWarning, match=r"old\.ckpt.*model\.cross\[0\].*proj_bias=1"):
        new = upgrade_biased_masks(config, old.state_dict(), Path("old.ckpt"))
    assert new["model"]["encoder_self"] == ["1000:proj_bias=1"] * 2
    assert new["model"]["decoder_self"] == ["salient", "0010+1000:proj_bias=1"]  # salient keeps its own biases
    assert new["model"]["cross"] == ["1100:proj_bias=1"] * 2
    rebuilt = model(**{k: new["model"][k] for k in ("encoder_self", "decoder_self", "cross")})
    rebuilt.load_state_dict(old.state_dict(), strict=True)


def test_bias_free_checkpoints_are_unchanged():
    config = {"model": to_dict(from_dict(ModelConfig, SMALL))}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert upgrade_biased_masks(config, model().state_dict(), Path("new.ckpt")) is config
    assert not any(name.endswith("q_proj.bias") for name in model().state_dict())
