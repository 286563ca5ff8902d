"""Turns a parsed spec into a mixer module for one layer and role.

Each mechanism module exposes ``build(term: TermSpec, ctx: BuildContext) -> Mixer`` and reads its
options through ``Options`` (which refuses unknown or malformed options by name). Mechanisms are
imported lazily, so that adding one is one line in ``BUILDERS``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from nmt.modules.base import Mixer, Role
from nmt.modules.spec import MixerSpec, SpecError, TermSpec

# name -> "module:function"; factor masks ("1000", ...) all go to factored attention.
BUILDERS: dict[str, str] = {
    "mask": "nmt.modules.factored_attention:build",
    "lightweight": "nmt.modules.lightweight_conv:build",
    "dynamic": "nmt.modules.dynamic_conv:build",
    "deform_attn": "nmt.modules.deformable:build",
    "deformable": "nmt.modules.deformable:build",  # alias of deform_attn (deformable *attention*)
    "deform_conv": "nmt.modules.deform_conv:build",
    "salient": "nmt.modules.salient:build",
}


@dataclass(frozen=True)
class BuildContext:
    """Everything a mechanism may need besides its own options."""

    d_model: int
    n_heads: int
    role: Role
    layer: int  # 0-based index of the layer in its stack
    n_layers: int
    dropout: float = 0.0  # dropout on attention weights / normalised kernels


class Options:
    """Typed access to a term's ``key=value`` options; ``done()`` rejects any left unread."""

    def __init__(self, term: TermSpec) -> None:
        self.term = term
        self._left = dict(term.options)

    def _take(self, key: str, default, cast: Callable, kind: str):
        if key not in self._left:
            return default
        raw = self._left.pop(key)
        try:
            return cast(raw)
        except ValueError:
            raise SpecError(f"{self.term.name}: option {key}={raw!r} is not a valid {kind}") from None

    def int(self, key: str, default: int | None) -> int | None:
        return self._take(key, default, int, "integer")

    def float(self, key: str, default: float | None) -> float | None:
        return self._take(key, default, float, "number")

    def str(self, key: str, default: str | None, choices: tuple[str, ...] | None = None) -> str | None:
        value = self._take(key, default, str, "string")
        if choices is not None and value not in choices:
            raise SpecError(f"{self.term.name}: option {key}={value!r} must be one of {', '.join(choices)}")
        return value

    def bool(self, key: str, default: bool) -> bool:
        def cast(v: str) -> bool:
            if v.lower() in ("1", "true", "yes", "on"):
                return True
            if v.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(v)

        return self._take(key, default, cast, "boolean")

    def done(self) -> None:
        if self._left:
            raise SpecError(f"{self.term.name}: unknown option(s) {', '.join(sorted(self._left))}")


def _builder(term: TermSpec) -> Callable[[TermSpec, BuildContext], Mixer]:
    key = "mask" if term.is_mask else term.name
    if key not in BUILDERS:
        names = ", ".join(["a 4-bit mask such as 1000"] + [n for n in BUILDERS if n != "mask"])
        raise SpecError(f"unknown mechanism {term.name!r}; expected {names}, or w/o")
    module, _, func = BUILDERS[key].partition(":")
    return getattr(importlib.import_module(module), func)


def build_mixer(spec: MixerSpec, ctx: BuildContext) -> Mixer | None:
    """The mixer for one sublayer, or None for "w/o" (refused for cross-attention)."""
    if spec.is_none:
        if ctx.role == "cross":
            raise SpecError("'w/o' removes a self-attention sublayer; cross-attention cannot be removed")
        return None
    if spec.combine == "joint":
        from nmt.modules.joint import build_joint

        return build_joint(spec, ctx)
    mixers = [_builder(t)(t, ctx) for t in spec.terms]
    if len(mixers) == 1:
        return mixers[0]
    from nmt.modules.combine import ParallelMixer, StackedMixer

    cls = ParallelMixer if spec.combine == "sum" else StackedMixer
    return cls(mixers)
