"""The Transformer built from per-layer specs: wiring, validation, incremental decoding, learning."""

from __future__ import annotations

import pytest
import torch
from helpers.model_toys import MIXED, PAD, V, batch, seeded, tiny

from nmt.config import ConfigError, from_dict
from nmt.decode import DecodeConfig, translate_batch
from nmt.model.config import ModelConfig
from nmt.model.transformer import Transformer


@pytest.mark.parametrize("specs", MIXED, ids=lambda s: "|".join(str(v) for v in s.values()))
def test_incremental_decoding_equals_teacher_forcing(specs):
    model = seeded(**specs).eval()
    src, smask, tgt = batch()
    with torch.no_grad():
        full = model.logits(model(src, smask, tgt))  # (B, T, V)
        state = model.init_state(model.encode(src, smask), smask)
        steps = []
        for t in range(tgt.size(1)):
            logits, state = model.step(tgt[:, t], state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("specs", MIXED, ids=lambda s: "|".join(str(v) for v in s.values()))
def test_merged_projections_translate_the_same(specs):
    plain, merged = seeded(**specs).eval(), seeded(**specs).eval()
    n = merged.fuse_projections()
    factored = [m for role in ("encoder", "decoder") for m in merged.mixers()[role] if m is not None]
    assert n == sum(len(m._fused) - 1 for m in factored if getattr(m, "qkv_proj", None) is not None)
    assert merged.num_parameters() == plain.num_parameters()
    src, smask, tgt = batch()
    cfg = DecodeConfig(beam=3, nbest=2, max_len_a=0.0, max_len_b=6)
    with torch.inference_mode():
        torch.testing.assert_close(merged.logits(merged(src, smask, tgt)), plain.logits(plain(src, smask, tgt)))
        out = [translate_batch(m, src, smask, cfg, 1, 2, PAD) for m in (plain, merged)]
    assert [[h.tokens for h in nb] for nb in out[1]] == [[h.tokens for h in nb] for nb in out[0]]


def test_reorder_state_selects_rows():
    model = seeded(decoder_self="1111", cross="0110").eval()
    src, smask, tgt = batch()
    with torch.no_grad():
        state = model.init_state(model.encode(src, smask), smask)
        _, state = model.step(tgt[:, 0], state)
        idx = torch.tensor([2, 2, 0])
        picked = model.reorder_state(state, idx, idx)
        a, _ = model.step(tgt[idx, 1], picked)
        full = model.logits(model(src[idx], smask[idx], tgt[idx, :2]))[:, 1]
    torch.testing.assert_close(a, full, atol=1e-5, rtol=1e-4)


def test_wo_removes_self_attention_sublayer():
    model = Transformer(tiny(encoder_self="w/o", decoder_self=["w/o", "1000"]), V, V, PAD)
    assert all(layer.self_mixer is None for layer in model.encoder)
    assert model.decoder[0].self_mixer is None and model.decoder[1].self_mixer is not None
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith("encoder.0.self") for n in names)


def test_spec_errors_name_the_layer():
    with pytest.raises(ConfigError, match=r"model\.encoder_self\[1\].*0000"):
        tiny(encoder_self=["1000", "0000"])
    with pytest.raises(ConfigError, match=r"model\.decoder_self\[0\].*'10'"):
        tiny(decoder_self=["10", "1000"])
    with pytest.raises(ConfigError, match=r"model\.cross: 3 specs given for 2 layers"):
        tiny(cross=["1000"] * 3)
    with pytest.raises(ConfigError, match=r"model\.cross\[0\]"):
        tiny(cross="w/o")


@pytest.mark.parametrize("changes,message", [
    ({"encoder_self": "1111:nosuch=1"}, r"model\.encoder_self\[0\] = '1111:nosuch=1': 1111: unknown option\(s\) nosuch"),
    ({"encoder_self": ["1000", "convolution"]}, r"model\.encoder_self\[1\] = 'convolution': unknown mechanism"),
    ({"encoder_self": ["1000", "deformable:k=-1"]},
     r"model\.encoder_self\[1\] = 'deformable:k=-1': deformable: option k=-1 must be >= 1"),
    # role- and layer-dependent rules are checked with the config too
    ({"encoder_self": "dynamic:k=4"},
     r"model\.encoder_self\[0\] = 'dynamic:k=4': dynamic: option k=4 must be odd in the encoder"),
    ({"decoder_self": ["1000", "1000:offset=aligned"]}, r"model\.decoder_self\[1\].*cross-attention only"),
    ({"cross": ["1000", "dynamic"]}, r"model\.cross\[1\] = 'dynamic': dynamic: .*no cross-attention role"),
    ({"cross": "0010+deformable:heads=3"},
     r"model\.cross\[0\].*deformable: option heads=3 must be a positive divisor of d_model=16"),
    ({"encoder_self": "salient:k=2,frac=0.5"}, r"model\.encoder_self\[0\].*salient: give option k or frac, not both"),
])
def test_mechanism_option_errors_name_key_and_layer_when_the_config_is_made(changes, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**changes)


def test_layer_dependent_defaults_are_checked_per_layer():
    # the default widths 3, 7, 15 are odd: fine in the encoder; k=4 is refused there but fine causally
    encoder = Transformer(tiny(encoder_self="dynamic", encoder_layers=3), V, V, PAD).mixers()["encoder"]
    assert [m.kernel_size for m in encoder] == [3, 7, 15]
    assert Transformer(tiny(decoder_self="dynamic:k=4"), V, V, PAD).decoder[1].self_mixer.kernel_size == 4


def test_yaml_config_validation():
    cfg = from_dict(ModelConfig, {"d_model": 16, "n_heads": 2, "encoder_self": "0110"}, "model")
    assert cfg.encoder_self == "0110"
    with pytest.raises(ConfigError, match=r"unknown config key 'model\.encoder_slef'.*encoder_self"):
        from_dict(ModelConfig, {"encoder_slef": "0110"}, "model")
    with pytest.raises(ConfigError, match=r"model\.encoder_self.*quote"):
        from_dict(ModelConfig, {"encoder_self": 110}, "model")  # unquoted 0110 in YAML
    with pytest.raises(ConfigError, match="divisible"):
        from_dict(ModelConfig, {"d_model": 10, "n_heads": 4}, "model")


def test_absolute_positions_auto():
    assert tiny(encoder_self="1000").uses_absolute_positions("encoder")
    assert not tiny(encoder_self="0110").uses_absolute_positions("encoder")
    assert tiny(encoder_self=["0110", "0010"]).uses_absolute_positions("encoder")
    assert not tiny(decoder_self="dynamic").uses_absolute_positions("decoder")
    assert tiny(encoder_self="0110", absolute_positions="on").uses_absolute_positions("encoder")
    m = Transformer(tiny(encoder_self="0110", decoder_self="1000"), V, V, PAD)
    assert m.src_embed.positions is None and m.tgt_embed.positions is not None


def test_tied_and_shared_embeddings():
    m = Transformer(tiny(), V, V, PAD)
    assert m.output.weight is m.tgt_embed.table.weight is m.src_embed.table.weight
    m2 = Transformer(tiny(share_embeddings=False, tie_embeddings=False), V, V + 5, PAD)
    assert m2.src_embed.table.weight.shape[0] == V and m2.output.weight.shape[0] == V + 5
    with pytest.raises(ValueError, match="joint vocabulary"):
        Transformer(tiny(), V, V + 1, PAD)


def test_post_norm_variant_runs_and_matches_incremental():
    model = seeded(norm="post", decoder_self="0110").eval()
    src, smask, tgt = batch()
    with torch.no_grad():
        full = model.logits(model(src, smask, tgt))
        state = model.init_state(model.encode(src, smask), smask)
        last = None
        for t in range(tgt.size(1)):
            last, state = model.step(tgt[:, t], state)
    torch.testing.assert_close(last, full[:, -1], atol=1e-5, rtol=1e-4)


def test_flops_breakdown_sums_to_total():
    m = Transformer(tiny(encoder_self="0110", decoder_self="dynamic:k=3", cross="deformable"), V, V, PAD)
    f = m.flops(7, 5)
    assert f["total"] == sum(v for k, v in f.items() if k != "total")
    assert all(v > 0 for v in f.values())
    assert m.flops(14, 5)["encoder_self"] > f["encoder_self"]


@pytest.mark.parametrize("specs", MIXED[1:4] + MIXED[5:6], ids=["factors+conv", "deformable", "salient", "deform_conv+joint"])
def test_mixed_spec_model_learns(specs):
    """A model built from a mixed spec trains a few steps with falling loss (copy task)."""
    model = seeded(**specs)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, V, (16, 6), generator=g)
    smask = torch.zeros_like(src, dtype=torch.bool)
    tgt_in = torch.cat([torch.full((16, 1), 2), src[:, :-1]], 1)
    losses = []
    for _ in range(30):
        logits = model.logits(model(src, smask, tgt_in))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), src.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


@pytest.mark.parametrize("specs", MIXED, ids=lambda s: "|".join(str(v) for v in s.values()))
def test_beam_search_scores_match_teacher_forcing(specs):
    """Beam search over the real model (incremental states, beam reordering that keeps source caches,
    shrinking batch): every n-best log-probability equals the teacher-forced one."""
    from nmt.decode import DecodeConfig, sequence_logprobs, translate_batch

    model = seeded(**specs).eval()
    src, smask, _ = batch(B=4, S=7)
    cfg = DecodeConfig(beam=4, nbest=4, alpha=0.6, max_len_a=1.0, max_len_b=3)
    nbest = translate_batch(model, src, smask, cfg, bos=2, eos=3, pad=PAD)
    for i, hyps in enumerate(nbest):
        ref = sequence_logprobs(
            model, src[i:i + 1].expand(len(hyps), -1), smask[i:i + 1].expand(len(hyps), -1),
            [h.tokens for h in hyps], bos=2, eos=3, append_eos=[h.finished for h in hyps],
        )
        assert [h.logprob for h in hyps] == pytest.approx(ref.tolist(), abs=1e-4)


class OneSourceRowPerHypothesis:
    """The Transformer with its source side copied for every row (``sources`` ignored): the
    reference for beam search reading each sentence's memory once for all its hypotheses."""

    def __init__(self, model: Transformer) -> None:
        self.model = model

    def __getattr__(self, name):
        return getattr(self.model, name)

    def reorder_state(self, state, index, sources):
        return self.model.reorder_state(state, index, index)


@pytest.mark.parametrize("specs", MIXED, ids=lambda s: "|".join(str(v) for v in s.values()))
def test_beam_search_reads_each_source_once_per_sentence(specs):
    model = seeded(**specs).eval()
    src, smask, _ = batch()
    cfg = DecodeConfig(beam=3, nbest=3, max_len_a=0.0, max_len_b=6, alpha=0.0)
    folded = translate_batch(model, src, smask, cfg, bos=2, eos=3, pad=PAD)
    copied = translate_batch(OneSourceRowPerHypothesis(model), src, smask, cfg, bos=2, eos=3, pad=PAD)
    assert [[h.tokens for h in n] for n in folded] == [[h.tokens for h in n] for n in copied]
    for a, b in zip(folded, copied):
        torch.testing.assert_close(torch.tensor([h.score for h in a]), torch.tensor([h.score for h in b]))


def test_step_refuses_rows_that_do_not_split_over_the_sources():
    model = Transformer(tiny(), V, V, PAD).eval()
    src, smask, _ = batch()
    with torch.no_grad():
        state = model.init_state(model.encode(src, smask), smask)
        with pytest.raises(ValueError, match="do not split into equal groups over 3 source sentences"):
            model.step(torch.full((4,), 2), state)


@pytest.mark.parametrize("specs", MIXED, ids=lambda s: "|".join(str(v) for v in s.values()))
def test_encoder_output_does_not_depend_on_padding(specs):
    """The FFN sublayers skip padding positions: real positions get what they get unpadded."""
    model = seeded(**specs).eval()
    src, smask, _ = batch()
    with torch.no_grad():
        padded = model.encode(src, smask)
        assert torch.isfinite(padded).all()
        for i in range(src.size(0)):
            n = int((~smask[i]).sum())
            alone = model.encode(src[i : i + 1, :n], smask[i : i + 1, :n])
            torch.testing.assert_close(padded[i : i + 1, :n], alone, atol=1e-5, rtol=1e-4)


def test_gradients_reach_the_encoder_through_the_real_position_ffn():
    model = seeded().train()
    src, smask, tgt = batch()
    rows = []
    model.encoder[0].ffn.register_forward_hook(lambda m, args, out: rows.append(args[0].shape))
    model.logits(model(src, smask, tgt)).sum().backward()
    assert rows == [torch.Size([int((~smask).sum()), 16])]  # real positions only, gathered into one matrix
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.encoder.parameters())
    assert model.encoder[0].ffn.fc1.weight.grad.abs().sum() > 0
