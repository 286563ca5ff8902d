"""oneDNN-packed linear layers: the same outputs, parameter counts and translations, inference only."""

from __future__ import annotations

import pytest
import torch
from helpers.model_toys import MIXED, batch, seeded
from torch import nn

from nmt.decode import DecodeConfig, translate_batch
from nmt.model import packed
from nmt.model.packed import PackedLinear, pack_linears

needs_onednn = pytest.mark.skipif(not packed.packing_available(), reason="no oneDNN packed linear in this build")


def linears(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if type(m) is nn.Linear]


@needs_onednn
@pytest.mark.parametrize("specs", MIXED, ids=lambda s: "|".join(str(v) for v in s.values()))
def test_packed_model_computes_the_same(specs):
    plain, fast = seeded(**specs).eval(), seeded(**specs).eval()
    n = pack_linears(fast)
    assert n == len(linears(plain)) > 0 and linears(fast) == []
    assert fast.num_parameters() == plain.num_parameters()
    src, smask, tgt = batch()
    with torch.inference_mode():
        torch.testing.assert_close(fast.logits(fast(src, smask, tgt)), plain.logits(plain(src, smask, tgt)))
        states = [m.init_state(m.encode(src, smask), smask) for m in (plain, fast)]
        for t in range(tgt.size(1)):
            (a, states[0]), (b, states[1]) = plain.step(tgt[:, t], states[0]), fast.step(tgt[:, t], states[1])
            torch.testing.assert_close(b, a)


@needs_onednn
def test_packed_model_translates_the_same():
    plain, fast = seeded().eval(), seeded().eval()
    pack_linears(fast)
    src, smask, _ = batch(B=4, S=9, seed=3)
    cfg = DecodeConfig(beam=4, nbest=2, max_len_a=0.0, max_len_b=8)
    with torch.inference_mode():
        out = [translate_batch(m, src, smask, cfg, 1, 2, 0) for m in (plain, fast)]
    assert [[h.tokens for h in nb] for nb in out[1]] == [[h.tokens for h in nb] for nb in out[0]]


@needs_onednn
def test_tied_output_weight_is_counted_once_and_untied_layers_fully():
    model = seeded().eval()
    pack_linears(model)
    assert isinstance(model.output, PackedLinear) and model.output.tied
    assert not model.decoder[0].ffn.fc1.tied
    assert model.output.parameter_count() == 0  # no bias; the weight is the embedding table's
    untied = seeded(tie_embeddings=False).eval()
    before = untied.num_parameters()
    pack_linears(untied)
    assert not untied.output.tied and untied.num_parameters() == before


@needs_onednn
def test_packed_layers_refuse_training_and_gradients():
    model = seeded()
    with pytest.raises(ValueError, match="eval"):
        pack_linears(model)
    model.eval()
    pack_linears(model)
    x = torch.randn(2, 3, model.cfg.d_model, requires_grad=True)
    with pytest.raises(RuntimeError, match="inference-only"):
        model.decoder[0].ffn(x)


def test_without_onednn_the_model_is_left_as_it_is(monkeypatch):
    monkeypatch.setattr(packed, "packing_available", lambda: False)
    model = seeded().eval()
    names = linears(model)
    assert pack_linears(model) == 0 and linears(model) == names


def test_packing_is_the_default_only_where_onednn_has_avx512() -> None:
    from nmt.model.packed import default_pack, packing_available

    avx512, avx2 = frozenset({"avx2", "avx512f", "avx512_vnni"}), frozenset({"avx2", "fma"})
    pack, why = default_pack(avx512, env={})
    assert pack == packing_available() and why
    assert default_pack(avx2, env={}) == (False, default_pack(avx2, env={})[1])
    assert not default_pack(avx512, env={"ONEDNN_MAX_CPU_ISA": "avx2"})[0]  # capped by the environment
    assert not default_pack(avx512, env={"DNNL_MAX_CPU_ISA": "AVX2_VNNI"})[0]  # ... also under its older name
    assert "AVX-512" in default_pack(avx2, env={})[1] or not packing_available()
    assert default_pack(avx512, env={"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"})[0] == packing_available()


def test_inference_follows_the_cpu_default_and_logs_it(monkeypatch, caplog) -> None:
    import logging

    from helpers.model_toys import seeded

    from nmt import runtime
    from nmt.inference import prepare_for_inference
    from nmt.model.packed import PackedLinear, packing_available

    caplog.set_level(logging.INFO, logger="nmt")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    for flags, packs in ((frozenset({"avx2"}), False), (frozenset({"avx2", "avx512f"}), packing_available())):
        monkeypatch.setattr(runtime, "cpu_flags", lambda flags=flags: flags)
        caplog.clear()
        model = seeded().eval()
        done = prepare_for_inference(model)
        # merged with packing only: on plain weights the merged projections decoded slower
        assert done == ({"merged": done["merged"], "int8": 0, "packed": done["packed"]} if packs
                        else {"merged": 0, "int8": 0, "packed": 0})
        assert (done["packed"] > 0 and done["merged"] > 0) == packs
        assert any(isinstance(m, PackedLinear) for m in model.modules()) == packs
        assert "linear layers:" in caplog.text
    model = seeded().eval()
    assert prepare_for_inference(model, pack=False) == {"merged": 0, "int8": 0, "packed": 0}  # --no_pack
