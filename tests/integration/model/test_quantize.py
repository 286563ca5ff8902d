"""Int8 decoding: every linear layer of every mechanism quantized, close to float32, same translations
of a trained model on most sentences, also as an ensemble and through the command line."""

from __future__ import annotations

import pytest
import torch
from helpers.model_toys import MIXED, batch, seeded
from torch import nn

from nmt import inference, runtime
from nmt.cli import main
from nmt.decode import DecodeConfig, translate_batch
from nmt.model import quantize
from nmt.model.layers import FeedForward
from nmt.model.quantize import full_range_activations, quantize_linears, quantized_linear_type, set_engine


@pytest.mark.parametrize("specs", MIXED, ids=lambda s: "|".join(str(v) for v in s.values()))
def test_every_linear_becomes_int8_and_the_logits_stay_close(specs):
    plain, q = seeded(**specs).eval(), seeded(**specs).eval()
    n_linear = sum(type(m) is nn.Linear for m in plain.modules())
    assert quantize_linears(q) == n_linear > 0
    assert not any(type(m) is nn.Linear for m in q.modules())
    assert sum(isinstance(m, quantized_linear_type()) for m in q.modules()) == n_linear
    src, smask, tgt = batch()
    with torch.inference_mode():
        a, b = plain.logits(plain(src, smask, tgt)), q.logits(q(src, smask, tgt))
        assert not torch.equal(a, b)  # int8 arithmetic happened
        assert (a - b).abs().max() < 0.03 * a.abs().max()  # ... and stays within a few % of the logit scale
        hyps = translate_batch(q, src, smask, DecodeConfig(beam=2, max_len=8), 1, 2, 0)
    assert len(hyps) == src.size(0) and all(h[0].tokens for h in hyps)


ENGINES_HERE = [e for e in ("x86", "onednn") if e in torch.backends.quantized.supported_engines]


@pytest.mark.parametrize("engine", ENGINES_HERE)
def test_the_int8_layer_computes_exactly_what_pytorchs_dynamic_linear_computes(engine):
    torch.manual_seed(0)
    ours = nn.Sequential(nn.Linear(48, 40), nn.Linear(40, 24, bias=False)).eval()
    quantize_linears(ours, engine=engine)
    x = torch.randn(5, 3, 48)
    with torch.inference_mode():
        for layer in ours:
            assert type(layer) is quantized_linear_type()
            assert layer.reduce_range is not full_range_activations(engine)
            public = torch.ops.quantized.linear_dynamic(x, layer._packed_params._packed_params, layer.reduce_range)
            assert torch.equal(layer(x), public)
            if layer.reduce_range:  # the layer's own forward always quantizes to 7 bits
                assert torch.equal(public, torch.ao.nn.quantized.dynamic.Linear.forward(layer, x))
            x = public


def test_the_engine_and_activation_range_follow_the_cpu_and_the_onednn_cap(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512_vnni amx_tile amx_int8\nbugs\t: none\n", encoding="utf-8")
    amx = runtime.cpu_flags.__wrapped__(str(info))
    assert {"avx512_vnni", "amx_int8"} <= amx and "none" not in amx
    assert runtime.cpu_flags.__wrapped__(str(tmp_path / "missing")) == frozenset()
    plain = frozenset({"avx2", "avx512_vnni"})
    assert quantize.has_amx_int8(amx) and not quantize.has_amx_int8(plain)
    assert quantize.default_engine(plain, {}) == torch.backends.quantized.engine  # PyTorch's own choice kept
    if "onednn" in torch.backends.quantized.supported_engines:
        assert quantize.default_engine(amx, {}) == "onednn"
        assert quantize.default_engine(amx, {"ONEDNN_MAX_CPU_ISA": "avx2"}) == torch.backends.quantized.engine
    assert full_range_activations("onednn", amx, {})
    assert not full_range_activations("onednn", plain, {}) and not full_range_activations("x86", amx, {})
    # oneDNN capped below AMX by the environment (either name; ONEDNN_ wins) accumulates in 16 bits again
    for env, uses_amx in [
        ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),
        ({"DNNL_MAX_CPU_ISA": "avx512_core_vnni"}, False),
        ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX", "DNNL_MAX_CPU_ISA": "AVX2"}, True),
        ({"ONEDNN_MAX_CPU_ISA": "avx10_1_512_amx_fp16"}, True),
        ({"ONEDNN_MAX_CPU_ISA": "ALL"}, True),
    ]:
        assert runtime.onednn_max_isa(env) == next(iter(env.values())).upper()
        assert quantize.onednn_uses_amx(amx, env) is uses_amx and not quantize.onednn_uses_amx(plain, env)
        assert full_range_activations("onednn", amx, env) is uses_amx
    for cap in (None, "AVX2"):  # what quantize_linears applies, under the process's own environment
        for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
            monkeypatch.delenv(name, raising=False)
        if cap:
            monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        for flags in (amx, plain):
            monkeypatch.setattr(quantize, "cpu_flags", lambda flags=flags: flags)
            for engine in ENGINES_HERE:
                layer = nn.Sequential(nn.Linear(8, 8)).eval()
                quantize_linears(layer, engine=engine)
                assert layer[0].reduce_range is not (engine == "onednn" and flags is amx and cap is None)
                assert torch.backends.quantized.engine == engine
            quantize_linears(nn.Sequential(nn.Linear(8, 8)).eval())
            assert torch.backends.quantized.engine == quantize.default_engine(flags)


@pytest.mark.parametrize("engine", [*ENGINES_HERE, None])
def test_int8_sums_do_not_saturate_on_this_cpu(engine):
    """Large positive activations times large weights: a kernel that adds pairs of 8-bit products in
    16 bits saturates there (255 * 127 * 2 > 32767) unless activations are 7-bit; the layer
    quantize_linears builds for this CPU, oneDNN cap and engine must give the float result."""
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Linear(256, 16, bias=False)).eval()
    with torch.no_grad():
        layer[0].weight.uniform_(0.9, 1.0)
    x = torch.rand(4, 256) * 0.1 + 0.9
    exact = layer(x)
    quantize_linears(layer, engine=engine)
    with torch.inference_mode():
        got = layer(x)
    assert ((got - exact).abs() / exact.abs()).max() < 0.02, (torch.backends.quantized.engine, layer[0].reduce_range)


@pytest.mark.parametrize("specs", MIXED[:2], ids=lambda s: "|".join(str(v) for v in s.values()))
def test_merged_projections_are_bit_identical_in_int8(specs):
    plain, merged = seeded(**specs).eval(), seeded(**specs).eval()
    assert merged.fuse_projections() > 0
    quantize_linears(plain), quantize_linears(merged)
    src, smask, tgt = batch()
    with torch.inference_mode():  # the same activation scale and per-channel weight scales: the same integers
        assert torch.equal(merged.logits(merged(src, smask, tgt)), plain.logits(plain(src, smask, tgt)))


@pytest.mark.parametrize("engine", ENGINES_HERE)
def test_relu_feed_forward_blocks_apply_their_relu_in_the_int8_kernel(engine):
    fused, separate = seeded().eval(), seeded().eval()
    quantize_linears(fused, engine=engine)
    ffns = [m for m in fused.modules() if isinstance(m, FeedForward)]
    assert ffns and all(f.fc1.relu and type(f.act) is nn.Identity and not f.fc2.relu for f in ffns)
    quantize_linears(separate, engine=engine)  # the reference: the same conversion, the ReLU left separate
    for f in (m for m in separate.modules() if isinstance(m, FeedForward)):
        f.fc1.relu, f.act = False, nn.ReLU()  # before any call, so no kernel has prepared for the fused form
    assert quantize.fuse_relus(fused) == 0  # nothing left to fuse
    src, smask, tgt = batch()
    with torch.inference_mode():  # the same integers, ReLU applied to the same floats
        assert torch.equal(fused.logits(fused(src, smask, tgt)), separate.logits(separate(src, smask, tgt)))
    gelu = nn.Sequential(FeedForward(8, 16, "gelu", 0.0)).eval()
    quantize_linears(gelu, engine=engine)
    assert not gelu[0].fc1.relu and type(gelu[0].act) is nn.GELU


def test_loading_for_inference_merges_the_self_attention_projections_with_packing_or_int8(trained_tiny):
    from nmt.model.packed import default_pack

    ckpt = trained_tiny / "checkpoints" / "last.ckpt"
    plain = inference.load_model(ckpt, pack=False).model
    packs = default_pack()[0]  # this CPU's default: merged and packed, or plain and separate
    for loaded, merged in ((inference.load_model(ckpt).model, packs),
                           (inference.load_model(ckpt, pack=True).model, True),
                           (inference.load_model(ckpt, pack=False, quantize="int8").model, True)):
        assert loaded.num_parameters() == plain.num_parameters()
        for layer in [*loaded.encoder, *loaded.decoder]:
            assert (layer.self_mixer.qkv_proj is not None) == merged and (layer.self_mixer.q_proj is None) == merged
    assert all(layer.self_mixer.qkv_proj is None for layer in plain.encoder)


def test_weights_have_one_scale_per_output_channel():
    model = seeded().eval()
    quantize_linears(model)
    w = model.output.weight()  # the (tied) output projection, now its own int8 copy
    assert w.dtype == torch.qint8 and w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
    assert w.q_per_channel_scales().shape == (model.output.out_features,)
    assert not w.q_per_channel_zero_points().any()  # symmetric: zero point 0
    assert model.tgt_embed.table.weight.dtype == torch.float32  # embeddings stay float


def test_bad_requests_are_clear_errors():
    with pytest.raises(ValueError, match="quantize must be one of int8"):
        quantize_linears(seeded().eval(), "int4")
    with pytest.raises(ValueError, match="eval"):
        quantize_linears(seeded())
    with pytest.raises(ValueError, match="not available"):
        set_engine("tpu")


def _agreement(a: list, b: list) -> float:
    return sum(x[0].tokens == y[0].tokens for x, y in zip(a, b)) / len(a)


def test_int8_and_float32_agree_on_most_sentences_of_a_trained_model(trained_tiny, reverse_root):
    ckpts = sorted((trained_tiny / "checkpoints").glob("step*.ckpt"))[-2:]
    lines = (reverse_root / "copy" / "test.src").read_text(encoding="utf-8").splitlines()
    refs = (reverse_root / "copy" / "test.tgt").read_text(encoding="utf-8").splitlines()
    dcfg = DecodeConfig(beam=4)
    fp32 = inference.load_model(ckpts[-1])
    int8 = inference.load_model(ckpts[-1], quantize="int8")
    assert any(isinstance(m, quantized_linear_type()) for m in int8.model.modules())
    a, b = inference.translate_lines(fp32, lines, dcfg), inference.translate_lines(int8, lines, dcfg)
    correct = sum(fp32.vocab.decode_tgt(h[0].tokens) == r for h, r in zip(a, refs)) / len(refs)
    assert correct >= 0.5, f"the float32 model solves only {correct:.0%}: agreement would say little"
    assert _agreement(a, b) >= 0.9
    ens32 = [inference.load_model(c) for c in ckpts]
    ens8 = [inference.load_model(c, quantize="int8") for c in ckpts]
    assert _agreement(inference.translate_lines(ens32, lines, dcfg), inference.translate_lines(ens8, lines, dcfg)) >= 0.9


def test_cli_translates_in_int8(trained_tiny, reverse_root, tmp_path):
    src = reverse_root / "copy" / "test.src"
    out8, out32 = tmp_path / "int8.txt", tmp_path / "fp32.txt"
    ckpt = str(trained_tiny / "checkpoints" / "last.ckpt")
    assert main(["translate", "--checkpoint", ckpt, "-i", str(src), "-o", str(out8), "--quantize", "int8"]) == 0
    assert main(["translate", "--checkpoint", ckpt, "-i", str(src), "-o", str(out32)]) == 0
    a, b = out8.read_text(encoding="utf-8").splitlines(), out32.read_text(encoding="utf-8").splitlines()
    assert len(a) == len(b) == 100 and sum(x == y for x, y in zip(a, b)) >= 90
