"""The factored-attention modules of a Transformer, by role and layer, and their per-term logits
captured during a teacher-forced forward pass."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

from torch import Tensor, nn

from nmt.model.transformer import Transformer
from nmt.modules.base import ROLES
from nmt.modules.factored_attention import FactoredAttention

TERMS = ("E1", "E2", "E3", "E4")


@dataclass(frozen=True)
class Site:
    """One ``FactoredAttention`` of the model: ``name`` is "cross/layer1", or "cross/layer1.0" for
    branch 0 of a combined sublayer (layers count from 0)."""

    role: str
    layer: int
    name: str
    module: FactoredAttention

    @property
    def terms(self) -> tuple[str, ...]:
        """The terms this module computes now (its ``active_mask``)."""
        return terms_of(self.module.active_mask)


def terms_of(mask: str) -> tuple[str, ...]:
    """The term names of a mask: "1010" -> ("E1", "E3")."""
    return tuple(t for t, c in zip(TERMS, mask) if c == "1")


def _parts(mixer: nn.Module, suffix: str = "") -> list[tuple[str, nn.Module]]:
    """(name suffix, module) of a mixer, descending into combinations (``branches``)."""
    branches = getattr(mixer, "branches", None)
    if branches is None:
        return [(suffix, mixer)]
    return [part for j, b in enumerate(branches) for part in _parts(b, f"{suffix}.{j}")]


def attention_sites(model: Transformer) -> list[Site]:
    """Every ``FactoredAttention`` of ``model`` (also inside combinations), in role then layer order."""
    mixers = model.mixers()
    sites = []
    for role in ROLES:
        for i, m in enumerate(mixers[role]):
            if m is None:
                continue
            for suffix, part in _parts(m):
                if isinstance(part, FactoredAttention):
                    sites.append(Site(role, i, f"{role}/layer{i}{suffix}", part))
    return sites


Sink = Callable[[Site, dict[str, Tensor], Tensor], None]


@contextlib.contextmanager
def capturing(sites: list[Site], sink: Sink) -> Iterator[None]:
    """During the block, every forward call of a site also hands ``sink(site, terms, allowed)`` the
    per-term logits that ``FactoredAttention.term_logits`` computes from the same inputs (with
    pre-norm layers, the normed sublayer input): terms {"E1": (B, H, T, S), ...}, allowed
    (B or 1, 1, T, S) bool."""

    def hook_for(site: Site):
        def hook(module: FactoredAttention, args: tuple, kwargs: dict, output: Tensor) -> None:
            terms, allowed = module.term_logits(args[0], **kwargs)
            sink(site, terms, allowed)

        return hook

    handles = [s.module.register_forward_hook(hook_for(s), with_kwargs=True) for s in sites]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
