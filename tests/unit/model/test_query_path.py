"""No free query bias on the path into an attention query, at model level.

A LayerNorm's bias beta reaches the queries (pre-norm: the sublayer's own norm; post-norm: the norm
that wrote the residual stream), where U beta is exactly a query bias: it adds E3 (from E1) and E4
(from E2) to a mask that names neither. So in a whole model, under every mask without E3 and E4
("1000", "0100", "1100"), a position whose residual state is zero (the input of the norm in front
of the query) has no query content left and must attend uniformly over its allowed keys: in
encoder self-, decoder self- and cross-attention, pre- and post-norm. The same model with biased
LayerNorms (``model.norm_bias: true``) is shown to fail this, so the test can fail.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nmt.model.config import ModelConfig
from nmt.model.transformer import Transformer

V, PAD = 30, 0
B, S, T = 2, 7, 6
Q = 3  # the position whose residual state is zeroed
MASKS = ["1000", "0100", "1100"]
ROLES = ["encoder", "decoder", "cross"]
SPEC_KEY = {"encoder": "encoder_self", "decoder": "decoder_self", "cross": "cross"}


def build(mask: str, role: str, norm: str, norm_bias: bool) -> Transformer:
    """Float64, eval mode, every parameter random at unit scale; ``role`` has ``mask``, the rest 1111."""
    specs = {"encoder_self": "1111", "decoder_self": "1111", "cross": "1111", SPEC_KEY[role]: mask}
    cfg = ModelConfig(d_model=16, n_heads=2, d_ff=32, encoder_layers=2, decoder_layers=2, dropout=0.0,
                      norm=norm, norm_bias=norm_bias, absolute_positions="on", **specs)
    torch.manual_seed(0)
    model = Transformer(cfg, V, V, PAD).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
    return model


def query_norm(model: Transformer, role: str, norm: str) -> nn.LayerNorm:
    """The LayerNorm whose output is the query input of ``role``'s attention in layer 1."""
    if norm == "pre":
        layer = model.encoder[1] if role == "encoder" else model.decoder[1]
        return (layer.cross_res if role == "cross" else layer.self_res).norm
    if role == "encoder":
        return model.encoder[0].ffn_res.norm
    if role == "decoder":
        return model.decoder[0].ffn_res.norm
    return model.decoder[1].self_res.norm


def weights_at_zeroed_position(model: Transformer, role: str, norm: str) -> torch.Tensor:
    """Attention weights (B, H, S_keys) of position Q in layer 1 of ``role`` with Q's residual state zero."""
    mixer = model.encoder[1].self_mixer if role == "encoder" else (
        model.decoder[1].self_mixer if role == "decoder" else model.decoder[1].cross_mixer)
    mixer.record_weights = True

    def zero_q(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = args[0].clone()
        x[:, Q] = 0.0
        return (x,)

    handle = query_norm(model, role, norm).register_forward_pre_hook(zero_q)
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, V, (B, S), generator=g)
    tgt = torch.randint(4, V, (B, T), generator=g)
    try:
        with torch.no_grad():
            memory = model.encode(src, torch.zeros(B, S, dtype=torch.bool))
            if role != "encoder":
                model.decode(tgt, memory, torch.zeros(B, S, dtype=torch.bool))
    finally:
        handle.remove()
    assert mixer.last_weights is not None
    return mixer.last_weights[:, :, Q].double()  # (B, H, keys)


def allowed_keys(role: str) -> int:
    return Q + 1 if role == "decoder" else S


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("mask", MASKS)
def test_zero_residual_state_attends_uniformly(mask: str, role: str, norm: str) -> None:
    w = weights_at_zeroed_position(build(mask, role, norm, norm_bias=False), role, norm)
    n = allowed_keys(role)
    torch.testing.assert_close(w[..., :n], torch.full_like(w[..., :n], 1.0 / n), rtol=0, atol=1e-9)
    assert float(w[..., n:].abs().sum()) == 0.0  # masked (future) keys get nothing


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("role", ROLES)
def test_biased_norm_is_a_query_bias(role: str, norm: str) -> None:
    """With beta in the LayerNorms the same position does not attend uniformly: beta leaks E3."""
    w = weights_at_zeroed_position(build("1000", role, norm, norm_bias=True), role, norm)
    n = allowed_keys(role)
    assert float((w[..., :n] - 1.0 / n).abs().max()) > 1e-3


def test_every_layernorm_is_bias_free_by_default() -> None:
    model = build("1111", "encoder", "pre", norm_bias=False)
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and all(m.bias is None for m in norms)
