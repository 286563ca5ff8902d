"""The contract between a sequence-to-sequence model and the decoders in ``nmt.decode``.

A decoder never runs the target prefix again: it encodes the source once, asks for a fresh
decoder state, then feeds one token per step. Beam search expands and prunes hypotheses by
selecting batch rows of the state with ``reorder_state``; the first call expands every sentence to
``beam`` rows with ``torch.arange(B).repeat_interleave(beam)``.

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

    def reorder_state(self, state: Any, index: Tensor, same_source: bool = False) -> Any:
        """Select (and repeat) batch rows ``index`` (B',) of ``state``: the new batch is B'.

        ``same_source=True`` promises that new row i reads the same source sentence as old row i
        (beam reordering within each sentence, batch unchanged): source-side caches may be kept.
        """
        ...
