"""Encoder-decoder Transformer built from per-layer mechanism specs.

Model code only: no losses, optimisers or data. It implements the decoding protocol of
``nmt.decode.protocol.Seq2Seq`` (``encode``, ``init_state``, ``step``, ``reorder_state``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nmt.model.config import ModelConfig
from nmt.model.layers import DecoderLayer, EncoderLayer, FeedForward, LayerState, real_positions
from nmt.model.packed import PackedLinear
from nmt.modules.base import Mixer, reorder_state
from nmt.modules.positions import sinusoidal_table
from nmt.modules.registry import build_mixer


class Embedding(nn.Module):
    """Token embedding scaled by sqrt(d), plus optional fixed sinusoidal absolute positions."""

    def __init__(self, table: nn.Embedding, d_model: int, positions: Tensor | None, dropout: float) -> None:
        super().__init__()
        self.table = table
        self.scale = math.sqrt(d_model)
        self.register_buffer("positions", positions, persistent=False)  # (P, D) or None
        self.drop = nn.Dropout(dropout)

    def forward(self, tokens: Tensor, start: int = 0) -> Tensor:
        x = self.table(tokens) * self.scale  # (B, T, D)
        if self.positions is not None:
            end = start + tokens.size(1)
            if end > self.positions.size(0):
                raise ValueError(f"sequence of length {end} exceeds model.max_positions={self.positions.size(0)}")
            x = x + self.positions[start:end]
        return self.drop(x)


@dataclass(eq=False)
class DecoderState:
    """Incremental decoding state of a batch: the next position ``t``, the encoded sources (B, S, D)
    and their padding (B, S), and each decoder layer's mixer states."""

    t: int
    memory: Tensor
    memory_padding_mask: Tensor
    layers: tuple[LayerState, ...]


class Transformer(nn.Module):
    """Encoder-decoder Transformer whose attention sublayers are chosen per layer and role."""

    def __init__(self, cfg: ModelConfig, src_vocab: int, tgt_vocab: int, pad_id: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.pad_id = pad_id
        d = cfg.d_model
        specs = cfg.layer_specs()
        pre_norm = cfg.norm == "pre"

        def mixer(role: str, i: int) -> Mixer | None:
            return build_mixer(specs[role][i], cfg.build_context(role, i))  # type: ignore[arg-type]

        def ffn() -> FeedForward:
            return FeedForward(d, cfg.d_ff, cfg.activation, cfg.activation_dropout)

        if cfg.share_embeddings and src_vocab != tgt_vocab:
            raise ValueError(
                f"model.share_embeddings needs one joint vocabulary, got source {src_vocab} / target {tgt_vocab}"
            )
        tgt_table = nn.Embedding(tgt_vocab, d, padding_idx=pad_id)
        src_table = tgt_table if cfg.share_embeddings else nn.Embedding(src_vocab, d, padding_idx=pad_id)
        for table in {id(t): t for t in (src_table, tgt_table)}.values():
            nn.init.normal_(table.weight, std=d**-0.5)
            with torch.no_grad():
                table.weight[pad_id].zero_()
        pos = sinusoidal_table(torch.arange(cfg.max_positions), d)  # (P, D)
        self.src_embed = Embedding(src_table, d, pos if cfg.uses_absolute_positions("encoder") else None, cfg.dropout)
        self.tgt_embed = Embedding(tgt_table, d, pos if cfg.uses_absolute_positions("decoder") else None, cfg.dropout)

        n_enc, n_dec = cfg.encoder_layers, cfg.decoder_layers
        self.encoder = nn.ModuleList(
            EncoderLayer(mixer("encoder", i), ffn(), d, cfg.dropout, pre_norm, cfg.norm_bias) for i in range(n_enc)
        )
        self.decoder = nn.ModuleList(
            DecoderLayer(mixer("decoder", i), mixer("cross", i), ffn(), d, cfg.dropout, pre_norm, cfg.norm_bias)
            for i in range(n_dec)
        )
        # the final norms feed keys/values and the output layer, not queries: bias-free all the same,
        # so that one choice holds for every LayerNorm of the model
        self.encoder_norm = nn.LayerNorm(d, bias=cfg.norm_bias) if pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d, bias=cfg.norm_bias) if pre_norm else nn.Identity()
        self.output = nn.Linear(d, tgt_vocab, bias=False)
        if cfg.tie_embeddings:
            self.output.weight = tgt_table.weight
        else:
            nn.init.normal_(self.output.weight, std=d**-0.5)
        self._built_parameters: int | None = None  # recorded by fuse_projections

    # ---- full-sequence computation (training, scoring) ----
    def encode(self, src: Tensor, src_padding_mask: Tensor) -> Tensor:
        """Source tokens (B, S) -> encoder output (B, S, D); the FFN sublayers skip padding."""
        x = self.src_embed(src)
        real = real_positions(src_padding_mask)  # (N,) or None
        for layer in self.encoder:
            x = layer(x, src_padding_mask, real)
        return self.encoder_norm(x)

    def decode(self, tgt_in: Tensor, memory: Tensor, memory_padding_mask: Tensor) -> Tensor:
        """Teacher-forced decoder: right-padded target input (B, T) -> hidden states (B, T, D).

        No target padding mask is needed: padding is on the right and decoder mixing is causal, so
        padded positions never reach real ones (and "1000" can use the fused causal SDPA kernel).
        """
        x = self.tgt_embed(tgt_in)
        for layer in self.decoder:
            x = layer(x, memory, memory_padding_mask)
        return self.decoder_norm(x)

    def forward(self, src: Tensor, src_padding_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Decoder hidden states (B, T, D) for right-padded ``tgt_in``; apply ``logits`` to the rows you
        need (e.g. the non-padding ones)."""
        memory = self.encode(src, src_padding_mask)
        return self.decode(tgt_in, memory, src_padding_mask)

    def logits(self, hidden: Tensor) -> Tensor:
        """Hidden states (..., D) -> vocabulary logits (..., V)."""
        return self.output(hidden)

    # ---- incremental decoding (nmt.decode.protocol.Seq2Seq) ----
    def init_state(self, memory: Tensor, memory_padding_mask: Tensor) -> DecoderState:
        """A fresh decoder state for a batch of encoded sources."""
        return DecoderState(0, memory, memory_padding_mask, tuple(LayerState() for _ in self.decoder))

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """Feed the last tokens (N,) at step ``state.t``; return next-token logits (N, V) and the state.

        The N rows are B equal groups of consecutive rows, one per sentence of the memory (B, S, D):
        cross-attention reads each sentence's memory once for its group (``DecoderLayer.step``).
        """
        t = state.t
        if tokens.size(0) % state.memory.size(0):
            raise ValueError(
                f"{tokens.size(0)} decoder rows do not split into equal groups over "
                f"{state.memory.size(0)} source sentences"
            )
        x = self.tgt_embed(tokens[:, None], start=t)  # (N, 1, D)
        layers = []
        for layer, ls in zip(self.decoder, state.layers):
            x, ls = layer.step(x, ls, state.memory, state.memory_padding_mask)
            layers.append(ls)
        logits = self.logits(self.decoder_norm(x)[:, 0])  # (N, V)
        return logits, DecoderState(t + 1, state.memory, state.memory_padding_mask, tuple(layers))

    def reorder_state(self, state: DecoderState, index: Tensor, sources: Tensor | None) -> DecoderState:
        """Select (or repeat) rows ``index`` of the decoder self-mixer caches (beam reordering and
        expansion) and sentences ``sources`` of the source side: the memory, its padding mask and
        every cross-mixer cache, which are kept once per sentence (``None``: left as they are)."""
        memory, memory_mask = state.memory, state.memory_padding_mask
        if sources is not None:
            memory, memory_mask = memory.index_select(0, sources), memory_mask.index_select(0, sources)
        layers = tuple(
            LayerState(reorder_state(ls.self_mixer, index),
                       ls.cross_mixer if sources is None else reorder_state(ls.cross_mixer, sources))
            for ls in state.layers
        )
        return DecoderState(state.t, memory, memory_mask, layers)

    def fuse_projections(self) -> int:
        """Inference only: let every mixer merge its linear layers that read the same input
        (``Mixer.fuse_projections``; e.g. attention's query, key and value projections of the self
        roles); return how many layers were merged away. Call before ``quantize_linears`` or
        ``pack_linears``, which then convert the merged layers. ``num_parameters`` keeps reporting
        the model as built (a merged layer stores a missing bias as zeros)."""
        if self._built_parameters is None:
            self._built_parameters = self.num_parameters()
        return sum(m.fuse_projections() for ms in self.mixers().values() for m in ms if m is not None)

    # ---- analysis ----
    def mixers(self) -> dict[str, list[Mixer | None]]:
        """The mixer of every layer per role (None for removed sublayers)."""
        return {
            "encoder": [layer.self_mixer for layer in self.encoder],
            "decoder": [layer.self_mixer for layer in self.decoder],
            "cross": [layer.cross_mixer for layer in self.decoder],
        }

    def flops(self, src_len: int, tgt_len: int) -> dict[str, int]:
        """Analytic forward FLOPs for one sentence pair, split by part (teacher-forced decoder)."""
        m = self.mixers()
        out = {
            "encoder_self": sum(x.flops(src_len) for x in m["encoder"] if x is not None),
            "decoder_self": sum(x.flops(tgt_len) for x in m["decoder"] if x is not None),
            "cross": sum(x.flops(tgt_len, src_len) for x in m["cross"]),
            "ffn": sum(layer.ffn.flops(src_len) for layer in self.encoder)
            + sum(layer.ffn.flops(tgt_len) for layer in self.decoder),
            "output": 2 * tgt_len * self.cfg.d_model * self.output.out_features,
        }
        out["total"] = sum(out.values())
        return out

    def shared_flops(self, src_len: int, tgt_len: int) -> dict[str, int]:
        """FLOPs of the tables that depend only on parameters and lengths (the projected
        relative-position table of E2/E4), per attention part, for one batch whose longest source
        and target are ``src_len`` and ``tgt_len``: charged once per batch, or once per sentence
        when ``src_len``/``tgt_len`` are that sentence's own lengths."""
        m = self.mixers()
        return {
            "encoder_self": sum(x.shared_flops(src_len) for x in m["encoder"] if x is not None),
            "decoder_self": sum(x.shared_flops(tgt_len) for x in m["decoder"] if x is not None),
            "cross": sum(x.shared_flops(tgt_len, src_len) for x in m["cross"]),
        }

    def num_parameters(self) -> int:
        """Trainable parameters (tied matrices counted once), also after ``pack_linears`` and
        ``fuse_projections``."""
        if self._built_parameters is not None:
            return self._built_parameters
        packed = sum(m.parameter_count() for m in self.modules() if isinstance(m, PackedLinear))
        return packed + sum(p.numel() for p in self.parameters() if p.requires_grad)
