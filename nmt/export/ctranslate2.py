"""``nmt export --format ctranslate2``: a checkpoint as a CTranslate2 model directory.

The model is written through CTranslate2's own specification API (``ctranslate2.specs.TransformerSpec``,
``ModelSpec.save``), with the SentencePiece models and a small JSON record beside it. Only what maps
*exactly* is exported; anything else is refused with an error naming the layer and the mechanism.

What maps (per attention sublayer, H heads, d_head = d / H, scale = d_head^-1/2):

- E1 ("1000"): CTranslate2's multi-head attention, q/k/v/out projections as they are (a q or k
  projection without bias gets a zero bias).
- E3: E1 + E3 = (q + u) . k, so u is a query bias: b_q + u (u flattened over heads). E3 without E1
  ("0010"): every query is u, i.e. a query projection with zero weight and bias u.
- E4, in self-attention: scale * v_m . V^R_m R_{k-q} depends on the head and the offset only, which is
  CTranslate2's T5 relative attention bias (one (buckets, H) table per layer) when every offset the
  model can see (|k - q| < model.max_positions) has a bucket of its own: T5's buckets are exact
  below buckets/4 (encoder, both directions) and buckets/2 (decoder, keys at or before the query),
  so the table has 4 P (encoder) or 2 P (decoder) rows for P = max_positions. Layers of the same
  stack without E4 get a zero table.

What is refused: E2 (q . V^R R_{k-q} is a different table per head, while CTranslate2's Shaw relative
position keys are one (2K + 1, d_head) table shared by the heads), E4 in cross-attention (no bias there),
windows (``w=``), aligned cross offsets, removed sublayers, non-attention mechanisms (convolutions,
deformable, salient), and a stack that needs absolute positions and the E4 bias at once (the spec
drops absolute positions when the relative bias is on).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nmt.modules.factored_attention import FactoredAttention
from nmt.modules.positions import sinusoidal_table
from nmt.modules.registry import lookup

QUANTIZATIONS = ("int8", "int8_float32", "int16", "float16")


class ExportError(ValueError):
    """The checkpoint holds something CTranslate2's Transformer spec cannot represent exactly."""


def _np(t: Tensor) -> Any:
    return t.detach().to(torch.float32).contiguous().numpy()


def check_exportable(model: nn.Module) -> dict[str, bool]:
    """Raise ``ExportError`` naming the first layer that cannot be exported exactly; return, per stack,
    whether it needs the relative attention bias (E4)."""
    cfg = model.cfg
    if cfg.activation not in ("relu", "gelu"):
        raise ExportError(f"model.activation={cfg.activation!r}: CTranslate2 export supports relu and gelu")
    for role, specs in cfg.layer_specs().items():  # what each mechanism declares (nmt.modules.options.register)
        for i, spec in enumerate(specs):
            for t in spec.terms:
                if not lookup(t).ctranslate2:
                    raise ExportError(f"{role} layer {i}: mechanism {t.name!r} ({spec}) is not one CTranslate2 can run")
    uses_bias = {"encoder": False, "decoder": False}
    for role, mixers in model.mixers().items():
        for i, m in enumerate(mixers):
            where = f"{role} layer {i}"
            if m is None:
                raise ExportError(f"{where}: the sublayer is removed; CTranslate2's Transformer layer always has it")
            if not isinstance(m, FactoredAttention):
                raise ExportError(f"{where}: {type(m).__name__} is not attention; CTranslate2 has no such layer")
            if m.window is not None:
                raise ExportError(f"{where}: mask {m.mask} with window w={m.window}: CTranslate2 has no windowed attention")
            if m.offset != "plain":
                raise ExportError(f"{where}: mask {m.mask} with offset={m.offset}: not representable in CTranslate2")
            if m.e2:
                raise ExportError(
                    f"{where}: mask {m.mask} has E2 (query x relative position), a separate V^R R table per head; "
                    "CTranslate2's relative position keys are one table shared by all heads"
                )
            if m.e4:
                if role == "cross":
                    raise ExportError(f"{where}: mask {m.mask} has E4; CTranslate2 has no relative bias in cross-attention")
                uses_bias[role] = True
    for stack in ("encoder", "decoder"):
        if uses_bias[stack] and cfg.uses_absolute_positions(stack):  # type: ignore[arg-type]
            raise ExportError(
                f"{stack}: layers with E4 and absolute positions together (a layer is not order-aware); CTranslate2's "
                "spec has no absolute position encodings when the relative attention bias is on"
            )
    return uses_bias


def _linear(spec: Any, weight: Tensor, bias: Tensor | None) -> None:
    spec.weight = _np(weight)
    spec.bias = _np(bias if bias is not None else torch.zeros(weight.size(0)))


def _norm(spec: Any, norm: nn.LayerNorm) -> None:
    beta = norm.bias if norm.bias is not None else torch.zeros_like(norm.weight)  # bias-free norms: beta = 0
    spec.gamma, spec.beta = _np(norm.weight), _np(beta)


def _projection(lin: nn.Linear | None, d: int) -> tuple[Tensor, Tensor]:
    """(weight, bias) of a projection; an absent one is zero."""
    if lin is None:
        return torch.zeros(d, d), torch.zeros(d)
    return lin.weight, lin.bias if lin.bias is not None else torch.zeros(d)


def _query(m: FactoredAttention) -> tuple[Tensor, Tensor]:
    """Query projection with E3's u folded into its bias: (q + u) . k."""
    w, b = _projection(m.q_proj, m.d_model)
    if m.e3:
        b = b + m.u.reshape(-1)
    return w, b


def t5_bucket(rel: Tensor, bidirectional: bool, num_buckets: int) -> Tensor:
    """T5's bucket of relative offsets ``rel`` = key - query, in its exact range (small offsets)."""
    if bidirectional:
        num_buckets //= 2
        bucket = (rel > 0).long() * num_buckets
        n = rel.abs()
    else:
        bucket = torch.zeros_like(rel)
        n = (-rel).clamp(min=0)
    if bool((n >= num_buckets // 2).any()):
        raise ExportError(f"offset {int(n.max())} is beyond the exact buckets of a {num_buckets}-bucket table")
    return bucket + n


def relative_bias_table(m: FactoredAttention | None, positions: int, heads: int, bidirectional: bool) -> Tensor:
    """(buckets, H) T5 bias table equal to scaled E4 for every offset |k - q| < ``positions``."""
    buckets = 4 * positions if bidirectional else 2 * positions
    table = torch.zeros(buckets, heads)
    if m is None or not m.e4:
        return table
    rel = torch.arange(-(positions - 1), positions if bidirectional else 1)  # (L,) key - query
    with torch.no_grad():
        r = m._project_offsets(rel, m.v)[0]  # (H, L, dh)
        e4 = (m.v[:, None] * r).sum(-1) * m.scale  # (H, L)
    table[t5_bucket(rel, bidirectional, buckets)] = e4.T
    return table


def _self_attention(spec: Any, m: FactoredAttention, norm: nn.LayerNorm, bias: Tensor | None, max_positions: int) -> None:
    _norm(spec.layer_norm, norm)
    (wq, bq), (wk, bk), (wv, bv) = _query(m), _projection(m.k_proj, m.d_model), _projection(m.v_proj, m.d_model)
    _linear(spec.linear[0], torch.cat([wq, wk, wv]), torch.cat([bq, bk, bv]))
    _linear(spec.linear[1], m.out_proj.weight, m.out_proj.bias)
    if bias is not None:
        spec.relative_attention_bias = _np(bias)
        spec.relative_attention_max_distance = np.int32(max_positions)


def _cross_attention(spec: Any, m: FactoredAttention, norm: nn.LayerNorm) -> None:
    _norm(spec.layer_norm, norm)
    _linear(spec.linear[0], *_query(m))
    (wk, bk), (wv, bv) = _projection(m.k_proj, m.d_model), _projection(m.v_proj, m.d_model)
    _linear(spec.linear[1], torch.cat([wk, wv]), torch.cat([bk, bv]))
    _linear(spec.linear[2], m.out_proj.weight, m.out_proj.bias)


def _ffn(spec: Any, layer: nn.Module) -> None:
    _norm(spec.layer_norm, layer.ffn_res.norm)
    _linear(spec.linear_0, layer.ffn.fc1.weight, layer.ffn.fc1.bias)
    _linear(spec.linear_1, layer.ffn.fc2.weight, layer.ffn.fc2.bias)


def build_spec(
    model: nn.Module, src_pieces: list[str], tgt_pieces: list[str], specials: dict[str, str], add_source_eos: bool = True
) -> Any:
    """The ``ctranslate2.specs.TransformerSpec`` of ``model`` (checked by ``check_exportable``);
    ``add_source_eos``: CTranslate2 appends </s> to every source (False: the caller passes it)."""
    from ctranslate2.specs import common_spec, transformer_spec

    uses_bias = check_exportable(model)
    cfg = model.cfg
    pre = cfg.norm == "pre"
    act = common_spec.Activation.RELU if cfg.activation == "relu" else common_spec.Activation.GELU
    H, P = cfg.n_heads, cfg.max_positions
    enc = transformer_spec.TransformerEncoderSpec(
        len(model.encoder), H, pre_norm=pre, activation=act, relative_attention_bias=uses_bias["encoder"]
    )
    dec = transformer_spec.TransformerDecoderSpec(
        len(model.decoder), H, pre_norm=pre, activation=act, relative_attention_bias=uses_bias["decoder"]
    )
    spec = transformer_spec.TransformerSpec(enc, dec)
    positions = sinusoidal_table(torch.arange(P), cfg.d_model)  # (P, D), as nmt.model.transformer adds them
    for stack, embed in ((enc, model.src_embed), (dec, model.tgt_embed)):
        emb = stack.embeddings[0] if isinstance(stack.embeddings, list) else stack.embeddings
        emb.weight = _np(embed.table.weight)
        stack.scale_embeddings = True  # * sqrt(d_model), as Embedding does
        if hasattr(stack, "position_encodings"):
            pos = embed.positions if embed.positions is not None else torch.zeros_like(positions)
            stack.position_encodings.encodings = _np(pos)
        if pre:
            norm = model.encoder_norm if stack is enc else model.decoder_norm
            _norm(stack.layer_norm, norm)
    for ls, layer in zip(enc.layer, model.encoder):
        bias = relative_bias_table(layer.self_mixer, P, H, True) if uses_bias["encoder"] else None
        _self_attention(ls.self_attention, layer.self_mixer, layer.self_res.norm, bias, P)
        _ffn(ls.ffn, layer)
    for ls, layer in zip(dec.layer, model.decoder):
        bias = relative_bias_table(layer.self_mixer, P, H, False) if uses_bias["decoder"] else None
        _self_attention(ls.self_attention, layer.self_mixer, layer.self_res.norm, bias, P)
        _cross_attention(ls.attention, layer.cross_mixer, layer.cross_res.norm)
        _ffn(ls.ffn, layer)
    dec.projection.weight = _np(model.output.weight)
    if model.output.bias is not None:
        dec.projection.bias = _np(model.output.bias)
    spec.config.layer_norm_epsilon = float(model.encoder[0].ffn_res.norm.eps)
    for key, value in specials.items():
        setattr(spec.config, key, value)
    spec.config.decoder_start_token = specials["bos_token"]
    spec.config.add_source_eos = add_source_eos  # our sources end with </s>
    spec.register_source_vocabulary(src_pieces)
    spec.register_target_vocabulary(tgt_pieces)
    return spec


def export_ctranslate2(checkpoint: str | Path, output_dir: str | Path, quantization: str | None = None,
                       force: bool = False) -> dict[str, Any]:
    """Write ``checkpoint`` as a CTranslate2 model directory (optionally quantized); return its record."""
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        raise ExportError("CTranslate2 is not installed: pip install 'factor-nmt[export]'") from None
    from nmt.inference import load_model

    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ExportError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not force:
        raise ExportError(f"{out} exists and is not empty (use --force to overwrite)")
    loaded = load_model(checkpoint, pack=False)
    v = loaded.vocab
    pieces = [[sp.id_to_piece(i) for i in range(sp.get_piece_size())] for sp in (v.src_sp, v.tgt_sp)]
    specials = {"unk_token": pieces[1][v.unk_id], "bos_token": pieces[1][v.bos_id], "eos_token": pieces[1][v.eos_id]}
    spec = build_spec(loaded.model, pieces[0], pieces[1], specials)
    spec.validate()
    spec.optimize(quantization=quantization)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    spec.save(str(tmp))
    shutil.copyfile(v.src_model_path, tmp / "source.spm.model")
    shutil.copyfile(v.tgt_model_path, tmp / "target.spm.model")
    dcfg = loaded.cfg.decode
    record = {
        "checkpoint": str(checkpoint),
        "quantization": quantization or "float32",
        "masks": {role: [m.mask for m in ms] for role, ms in loaded.model.mixers().items()},
        "tokens": {"source_suffix": specials["eos_token"], "decoder_start": specials["bos_token"],
                   "pad_id": v.pad_id, **specials},
        "vocabulary": "piece i of source.spm.model / target.spm.model is token i of the CTranslate2 vocabulary",
        "decode": {"beam_size": dcfg.beam, "gnmt_alpha": dcfg.alpha,
                   "note": "CTranslate2's length_penalty divides by length^p, not by GNMT's ((5+n)/6)^alpha"},
    }
    (tmp / "nmt_export.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return record
