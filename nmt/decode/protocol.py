"""The contract between a sequence-to-sequence model and the decoders in ``nmt.decode``.

A decoder never runs the target prefix again: it encodes the source once, asks for a fresh
decoder state, then feeds one token per step. Beam search and sampling expand and prune
hypotheses by selecting rows of the state with ``reorder_state``: after the first step of beam
search, every sentence's one row becomes ``beam`` rows (``torch.arange(B).repeat_interleave(beam)``).

A sentence's hypotheses are always consecutive rows, the same number per sentence. A model may
therefore keep what depends on the source alone (the memory, cross-attention keys and values) once
per sentence and read it for all of that sentence's rows; ``reorder_state`` says both which rows
survive and, separately, which sentences do.

Padding masks are bool with ``True`` at padding (as everywhere in ``nmt``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class Seq2Seq(Protocol):
    """What ``translate_batch`` needs from a model (the Transformer, an ensemble, a test toy)."""

    def encode(self, src: Tensor, src_padding_mask: Tensor) -> Tensor:
        """Source tokens (B, S) and their padding mask (B, S) -> memory (B, S, D)."""
        ...

    def init_state(self, memory: Tensor, memory_padding_mask: Tensor) -> Any:
        """A fresh, opaque decoder state for a batch of B sentences (holds the memory)."""
        ...

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Last target token per row (B,) -> next-token logits (B, V) and the updated state."""
        ...

    def reorder_state(self, state: Any, index: Tensor, sources: Tensor | None) -> Any:
        """Select (and repeat) rows ``index`` (N',) of ``state``: the new batch has N' rows.

        ``sources`` (B',) selects the sentences that remain, in order (``None``: the same sentences
        as before); the N' rows are B' consecutive groups of N'/B', one per sentence, and each new
        row was a row of the same sentence. A model may ignore ``sources`` and select every
        per-row tensor by ``index``.
        """
        ...
