"""Toy models implementing the ``Seq2Seq`` contract, for decoder tests.

``TableModel``: next-token log-probs read from a per-sentence table indexed by step and previous
token (the sentence picks its table with its first source token), so tests can build exact cases.
``TinyGRU``: a small randomly initialised attention GRU, a realistic stand-in for the Transformer.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

PAD, BOS, EOS = 0, 1, 2


def table_row(vocab: int, probs: dict[int, float], junk: list[int]) -> Tensor:
    """Log-probs (V,) with ``probs`` for chosen tokens, the rest spread over ``junk`` tokens and a
    vanishing floor elsewhere."""
    row = torch.full((vocab,), 1e-9, dtype=torch.float64)
    rest = 1.0 - sum(probs.values())
    for tok, p in probs.items():
        row[tok] = p
    for tok in junk:
        if tok not in probs:
            row[tok] += rest / len(junk)
    return (row / row.sum()).log()


class TableModel:
    """Logits = ``bank[sentence, min(t, T-1), previous token]``; ``bank`` is (N, T, V, V)."""

    def __init__(self, bank: Tensor) -> None:
        self.bank = bank

    def encode(self, src: Tensor, src_padding_mask: Tensor) -> Tensor:
        return src.unsqueeze(-1).to(torch.float64)  # (B, S, 1)

    def init_state(self, memory: Tensor, memory_padding_mask: Tensor) -> dict[str, Any]:
        return {"table": self.bank[memory[:, 0, 0].long()], "t": 0}  # (B, T, V, V)

    def step(self, tokens: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        table, t = state["table"], state["t"]
        t_idx = min(t, table.size(1) - 1)
        logits = table[torch.arange(tokens.numel()), t_idx, tokens]  # (B, V)
        return logits, {"table": table, "t": t + 1}

    def reorder_state(self, state: dict[str, Any], index: Tensor, sources: Tensor | None) -> dict[str, Any]:
        return {"table": state["table"].index_select(0, index), "t": state["t"]}


class TinyGRU(nn.Module):
    """Position-wise encoder + GRU decoder with dot-product attention over the source."""

    def __init__(self, vocab: int = 11, dim: int = 16, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(vocab, dim)
        self.enc = nn.Linear(dim, dim)
        self.cell = nn.GRUCell(2 * dim, dim)
        self.out = nn.Linear(2 * dim, vocab)
        with torch.no_grad():
            self.out.weight.mul_(4.0)  # peaky enough that search choices matter
        self.steps = 0  # counts step() calls x rows, to check incremental decoding

    def encode(self, src: Tensor, src_padding_mask: Tensor) -> Tensor:
        return torch.tanh(self.enc(self.embed(src)))  # (B, S, D)

    def init_state(self, memory: Tensor, memory_padding_mask: Tensor) -> dict[str, Tensor]:
        keep = (~memory_padding_mask).unsqueeze(-1).to(memory.dtype)  # (B, S, 1)
        h = (memory * keep).sum(1) / keep.sum(1)  # (B, D) mean of real positions
        return {"h": h, "memory": memory, "mask": memory_padding_mask}

    def step(self, tokens: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        self.steps += tokens.numel()
        memory, mask = state["memory"], state["mask"]
        h = state["h"]
        att = torch.einsum("bd,bsd->bs", h, memory) / math.sqrt(h.size(-1))  # (B, S)
        att = att.masked_fill(mask, -float("inf")).softmax(-1)
        ctx = torch.einsum("bs,bsd->bd", att, memory)  # (B, D)
        h = self.cell(torch.cat([self.embed(tokens), ctx], -1), h)
        return self.out(torch.cat([h, ctx], -1)), {"h": h, "memory": memory, "mask": mask}

    def reorder_state(self, state: dict[str, Tensor], index: Tensor, sources: Tensor | None) -> dict[str, Tensor]:
        return {k: v.index_select(0, index) for k, v in state.items()}


def make_batch(sentences: list[list[int]]) -> tuple[Tensor, Tensor]:
    """Right-padded source batch (B, S) and its padding mask."""
    S = max(len(s) for s in sentences)
    src = torch.full((len(sentences), S), PAD, dtype=torch.long)
    for i, s in enumerate(sentences):
        src[i, : len(s)] = torch.tensor(s)
    return src, src == PAD
