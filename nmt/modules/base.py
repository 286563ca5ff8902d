"""The one interface every token-mixing mechanism implements.

A *mixer* lets each position read other positions: factored attention (E1-E4), lightweight /
dynamic convolution, 1D deformable convolution or attention, salient-position attention, or a
combination. Layers hold a mixer and never branch on which one it is.

Roles (fixed at construction, since a mechanism's wiring depends on it):

- ``"encoder"``: self-mixing over the source, bidirectional.
- ``"decoder"``: causal self-mixing over the target prefix; supports incremental ``step``.
- ``"cross"``: target queries read the encoder output (``memory``); supports ``step``.

Conventions: tensors are batch-first; ``x`` is ``(B, T, D)``; ``memory`` is ``(B, S, D)``;
padding masks are bool with ``True`` at padding. Padded query positions may hold any finite value
(callers ignore them); padded keys must never influence real positions.

Incremental state is typed: each mechanism's ``step`` takes and returns its own ``MixerState``
dataclass (None for a fresh one, which ``step`` creates on first use). Tensor and ``TimeCache``
fields have the batch as dim 0, so that ``MixerState.reorder`` (beam search) selects rows of every
one of them; other fields (ints, flags) are shared by the whole batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal, TypeVar

import torch
from torch import Tensor, nn

Role = Literal["encoder", "decoder", "cross"]
ROLES: tuple[str, ...] = ("encoder", "decoder", "cross")
S = TypeVar("S", bound="MixerState")


@dataclasses.dataclass(eq=False)
class MixerState:
    """The decoding state of one mixer: ``t``, the position of the next step, and, in subclasses
    (one per mechanism), its caches. ``reorder`` selects batch rows for beam search: every tensor
    and ``TimeCache`` field along dim 0, every nested state (also in a tuple) in turn; other values
    are shared by the batch. ``step`` works on a ``copy`` and returns it, leaving its input as it was."""

    t: int = 0
    _FIELDS: ClassVar[tuple[str, ...]] = ("t",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._FIELDS = ()  # set on first use: the dataclass decorator runs after this hook

    @classmethod
    def _fields(cls) -> tuple[str, ...]:
        if not cls._FIELDS:
            cls._FIELDS = tuple(f.name for f in dataclasses.fields(cls))
        return cls._FIELDS

    def copy(self: S) -> S:
        """A shallow copy (the same tensors and caches)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def reorder(self: S, index: Tensor) -> S:
        """The state of batch rows ``index`` (N',): beam search's reorder and expansion."""
        new = self.copy()
        for name in self._fields():
            setattr(new, name, _select(getattr(self, name), index))
        return new


def _select(value: Any, index: Tensor) -> Any:
    if isinstance(value, Tensor):
        return value.index_select(0, index)
    if isinstance(value, TimeCache):
        return value.select(index)
    if isinstance(value, MixerState):
        return value.reorder(index)
    if isinstance(value, tuple):
        return tuple(_select(v, index) for v in value)
    return value


State = MixerState  # what ``Mixer.step`` takes and returns


class Mixer(nn.Module):
    """Base class of every mechanism. Subclasses implement ``forward``, ``step`` and ``flops``."""

    role: Role
    d_model: int

    def __init__(self, d_model: int, role: Role) -> None:
        super().__init__()
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
        self.d_model = d_model
        self.role = role
        # When True, mechanisms that have attention-like weights keep the last ones in
        # ``self.last_weights`` ((B, H, T, S) or a mechanism-specific shape) for visualisation.
        self.record_weights = False
        self.last_weights: Tensor | None = None

    def forward(
        self,
        x: Tensor,
        *,
        padding_mask: Tensor | None = None,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """Mix a whole sequence: ``x`` (B, T, D) -> (B, T, D).

        ``padding_mask`` (B, T) marks padding in ``x``; for ``role="cross"``, ``memory`` (B, S, D)
        and ``memory_padding_mask`` (B, S) are the encoder output and its padding.
        """
        raise NotImplementedError

    def keys_of(
        self, x: Tensor, padding_mask: Tensor | None, memory: Tensor | None, memory_padding_mask: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """The sequence ``forward`` mixes over and its padding: ``x`` for the self roles, ``memory``
        (B, S, D) for cross (an error when it is missing)."""
        if self.role != "cross":
            return x, padding_mask
        if memory is None:
            raise ValueError(f"{type(self).__name__} ({self.role} role) needs memory (B, S, D)")
        return memory, memory_padding_mask

    def step(
        self,
        x_t: Tensor,
        state: State | None,
        *,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> tuple[Tensor, State]:
        """One decoding step: ``x_t`` (B, n, D) at position ``state.t`` (None: a fresh state, t = 0)
        -> (B, n, D).

        Equals row t of ``forward`` over the prefix (decoder / cross roles only). The decoder role
        has n = 1; the cross role takes n >= 1 queries per memory row, all at the current position
        (the hypotheses of one sentence in beam search: the memory is read once for all of them).
        The returned state (the mechanism's ``MixerState``, its ``t`` advanced) is passed back on
        the next step.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support incremental decoding")

    def fuse_projections(self) -> int:
        """Inference only: merge linear layers that read the same input into one layer (fewer,
        larger products, same results up to float rounding); return how many layers were merged
        away. The default merges nothing."""
        return 0

    def flops(self, tgt_len: int, src_len: int | None = None) -> int:
        """Analytic forward FLOPs (multiply-add = 2) for one sequence of ``tgt_len`` queries over
        ``src_len`` keys (``src_len`` defaults to ``tgt_len`` for self roles)."""
        raise NotImplementedError

    def shared_flops(self, tgt_len: int, src_len: int | None = None) -> int:
        """FLOPs computed once per batch rather than per sentence (tables that depend only on the
        parameters and the lengths, e.g. projected relative-position encodings); 0 if none."""
        return 0


class _Storage:
    """Memory shared by the caches grown from one another: ``data`` (capacity, M, H, dh), time-major
    so that each step is one contiguous block, how many time steps of it some cache has written
    (``filled``), and ``version``, raised whenever rows of the written steps are rewritten in place."""

    __slots__ = ("data", "filled", "version")

    def __init__(self, data: Tensor, filled: int) -> None:
        self.data, self.filled, self.version = data, filled, 0


class TimeCache:
    """Per-row keys or values grown along time, (N, H, t, dh), in time-major storage with room to
    grow, and a pending row selection (a beam reorder: ``select`` only records which rows survive).

    ``append`` works in place when this cache is its storage's latest (nothing was appended to
    the storage after it) and there is room: it applies a pending selection of the same number of
    rows in place (on the CPU copying only the rows it changes: in beam search most hypotheses keep
    their own row) and writes the new step; greedy decoding copies nothing. Otherwise it copies
    the (selected) prefix and the new step into fresh storage with room for ``SPARE`` more steps.
    A cache whose rows were rewritten in place by a later ``append`` is stale: reading or growing
    it raises, so a decoder can never read another hypothesis's prefix by mistake. Decoders step
    from their latest state, as search does.
    """

    __slots__ = ("_storage", "length", "rows", "_version")
    SPARE = 16  # time steps of room given to fresh storage

    def __init__(self, data: Tensor) -> None:
        """A cache holding ``data`` (M, H, t, dh), every row."""
        self._storage = _Storage(data.permute(2, 0, 1, 3).contiguous(), data.size(2))  # (t, M, H, dh)
        self.length, self.rows, self._version = data.size(2), None, 0

    @classmethod
    def _view(cls, storage: _Storage, length: int, rows: Tensor | None, version: int) -> TimeCache:
        cache = cls.__new__(cls)
        cache._storage, cache.length, cache.rows, cache._version = storage, length, rows, version
        return cache

    @property
    def data(self) -> Tensor:
        """The stored steps of every stored row, (M, H, t, dh): a non-contiguous view of the storage."""
        if self._version != self._storage.version:
            raise RuntimeError(
                "stale decoder cache: a later decoding step reordered its rows in place; "
                "step from the latest state (the one the last step returned)"
            )
        return self._storage.data[: self.length].permute(1, 2, 0, 3)  # a view of (t, M, H, dh)

    def select(self, index: Tensor) -> TimeCache:
        """The cache of rows ``index`` (N',) of this one; nothing is copied."""
        rows = index if self.rows is None else self.rows.index_select(0, index)
        return TimeCache._view(self._storage, self.length, rows, self._version)

    def append(self, new: Tensor) -> TimeCache:
        """``new`` (N, H, 1, dh) added after the (selected) rows' last step -> (N, H, t+1, dh)."""
        prefix = self.data  # (M, H, t, dh); raises if stale
        if torch.is_grad_enabled() and (prefix.requires_grad or new.requires_grad):  # out= is not differentiable
            return TimeCache(torch.cat([self.tensor(), new], dim=2))
        store, t = self._storage, self.length
        M, N = prefix.size(0), new.size(0)
        if store.filled == t and t < store.data.size(0) and (self.rows is None or self.rows.numel() == M == N):
            if self.rows is not None and _reorder_in_place(store.data[:t], self.rows):
                store.version += 1  # every other cache of this storage is now stale
            store.data[t].copy_(new[:, :, 0])
            store.filled = t + 1
            return TimeCache._view(store, t + 1, None, store.version)
        _, H, _, dh = new.shape
        out = new.new_empty(t + 1 + self.SPARE, N, H, dh)  # (room, N, H, dh)
        stored = store.data[:t]  # (t, M, H, dh)
        if self.rows is None:
            out[:t].copy_(stored)
        else:
            torch.index_select(stored, 1, self.rows, out=out[:t])
        out[t].copy_(new[:, :, 0])
        return TimeCache._view(_Storage(out, t + 1), t + 1, None, 0)

    def tensor(self) -> Tensor:
        """The cache as a tensor (N, H, t, dh) (copies only when rows are pending)."""
        return self.data if self.rows is None else self.data.index_select(0, self.rows)


SPARSE_REORDER_DEVICES = ("cpu",)  # where finding the moved rows (a host sync on accelerators) pays


def _reorder_in_place(stored: Tensor, rows: Tensor) -> bool:
    """Make row i of ``stored`` (t, M, H, dh) hold what row ``rows[i]`` held; return whether
    anything may have changed. On the CPU only the moved rows are copied; elsewhere every row is
    gathered, which needs no host synchronisation."""
    if stored.device.type not in SPARSE_REORDER_DEVICES:
        stored.copy_(stored.index_select(1, rows))
        return True
    moved = (rows != torch.arange(rows.numel(), device=rows.device)).nonzero().squeeze(1)  # (m,)
    if moved.numel() == 0:
        return False
    stored.index_copy_(1, moved, stored.index_select(1, rows.index_select(0, moved)))
    return True


def extend_cache(cache: TimeCache | None, new: Tensor) -> tuple[TimeCache, Tensor]:
    """Append ``new`` (N, H, 1, dh) to ``cache`` (None: a fresh one) -> (the cache, its tensor (N, H, t+1, dh))."""
    grown = TimeCache(new.contiguous()) if cache is None else cache.append(new)
    return grown, grown.data


def reorder_state(state: State | None, index: Tensor) -> State | None:
    """``state.reorder(index)`` (beam search), None for a mixer that has not stepped yet."""
    return None if state is None else state.reorder(index)


def step_position(state: State | None) -> int:
    """Current decoding time step (0 for a fresh state)."""
    return 0 if state is None else state.t


def masked_fill_padding(x: Tensor, padding_mask: Tensor | None) -> Tensor:
    """Zero the padded positions of ``x`` (B, T, D) so they contribute nothing when read."""
    if padding_mask is None:
        return x
    return x.masked_fill(padding_mask.unsqueeze(-1), 0.0)


def linear_flops(n: int, d_in: int, d_out: int, bias: bool = True) -> int:
    """FLOPs of ``n`` rows through a Linear(d_in, d_out)."""
    return n * (2 * d_in * d_out + (d_out if bias else 0))


def softmax_flops(rows: int, width: int) -> int:
    """FLOPs of a softmax over ``rows`` vectors of ``width``: exp, sum, divide = 3 per element.
    One convention for every mechanism, so that the FLOPs axis of the ablation plots compares."""
    return 3 * rows * width


def check_no_nan_rows(t: Tensor) -> Tensor:
    """Replace NaNs from all-masked softmax rows by zeros (padded queries with no valid key)."""
    return torch.nan_to_num(t, nan=0.0)
