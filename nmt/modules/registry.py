"""Mechanism names -> their typed options and builders; a parsed spec -> the mixer of one sublayer.

``MECHANISMS`` is the one table a spec name is looked up in: factor masks ("1000", ...) go to
factored attention, every other name to its module. Each entry pairs the mechanism's frozen options
dataclass (``nmt.modules.options``) with a builder ``(ctx, options) -> Mixer``. Adding a mechanism is
one module and one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from nmt.modules import deform_conv, deformable, dynamic_conv, factored_attention, lightweight_conv, salient
from nmt.modules.base import Mixer
from nmt.modules.combine import ParallelMixer, StackedMixer
from nmt.modules.joint import build_joint, check_joint
from nmt.modules.options import BuildContext, MechanismOptions
from nmt.modules.spec import MixerSpec, SpecError, TermSpec

__all__ = ["MECHANISMS", "BuildContext", "Mechanism", "build_mixer", "mechanism", "resolve"]


@dataclass(frozen=True)
class Mechanism:
    """A mechanism's options type and the builder that takes them."""

    options: type[MechanismOptions]
    build: Callable[[BuildContext, MechanismOptions], Mixer]


MASK = "mask"  # the key of every 4-bit factor mask
MECHANISMS: dict[str, Mechanism] = {
    MASK: Mechanism(factored_attention.FactoredOptions, factored_attention.build),
    "lightweight": Mechanism(lightweight_conv.LightweightOptions, lightweight_conv.LightweightConv),
    "dynamic": Mechanism(dynamic_conv.DynamicOptions, dynamic_conv.DynamicConv),
    "deform_attn": Mechanism(deformable.DeformableOptions, deformable.Deformable),
    "deformable": Mechanism(deformable.DeformableOptions, deformable.Deformable),  # alias of deform_attn
    "deform_conv": Mechanism(deform_conv.DeformConvOptions, deform_conv.DeformConv),
    "salient": Mechanism(salient.SalientOptions, salient.Salient),
}


def mechanism(term: TermSpec) -> Mechanism:
    """The entry of ``term``'s name; SpecError lists the known names."""
    key = MASK if term.is_mask else term.name
    if key not in MECHANISMS:
        names = ", ".join(["a 4-bit mask such as 1000"] + [n for n in MECHANISMS if n != MASK])
        raise SpecError(f"unknown mechanism {term.name!r}; expected {names}, or w/o")
    return MECHANISMS[key]


def resolve(spec: MixerSpec, ctx: BuildContext) -> tuple[MechanismOptions, ...]:
    """Every term's typed options, checked for the role and layer of ``ctx``; SpecError otherwise.

    Runs when the model config is loaded (so errors come before any data or run folder)."""
    if spec.is_none and ctx.role == "cross":
        raise SpecError("'w/o' removes a self-attention sublayer; cross-attention cannot be removed")
    if spec.combine == "joint":
        check_joint(spec)
    options = tuple(mechanism(t).options.parse(t) for t in spec.terms)
    for o in options:
        o.check(ctx)
    return options


def build_mixer(spec: MixerSpec, ctx: BuildContext) -> Mixer | None:
    """The mixer for one sublayer, or None for "w/o" (refused for cross-attention)."""
    options = resolve(spec, ctx)
    if spec.is_none:
        return None
    if spec.combine == "joint":
        return build_joint(spec, ctx, options)
    mixers = [mechanism(t).build(ctx, o) for t, o in zip(spec.terms, options)]
    if len(mixers) == 1:
        return mixers[0]
    cls = ParallelMixer if spec.combine == "sum" else StackedMixer
    return cls(mixers)
