"""Spec names -> registered mechanisms; a parsed spec -> the mixer of one sublayer.

Mechanisms register themselves with ``@register`` on their options class (``nmt.modules.options``);
importing this module imports the built-in ones, and ``nmt.modules.plugins`` imports a user's.
Factor masks ("1000", ...) go to factored attention, every other name to its registered entry.
"""

from __future__ import annotations

from nmt.modules import (  # noqa: F401  (importing registers them)
    deform_conv,
    deformable,
    dynamic_conv,
    factored_attention,
    lightweight_conv,
    salient,
)
from nmt.modules.base import Mixer
from nmt.modules.combine import ParallelMixer, StackedMixer
from nmt.modules.joint import build_joint, check_joint
from nmt.modules.options import MASK, MECHANISMS, BuildContext, Mechanism, MechanismOptions, register
from nmt.modules.spec import MixerSpec, SpecError, TermSpec

__all__ = ["MASK", "MECHANISMS", "BuildContext", "Mechanism", "build_mixer", "lookup", "register", "resolve"]


def lookup(term: TermSpec) -> Mechanism:
    """The registered entry of ``term``'s name; SpecError lists the known names."""
    key = MASK if term.is_mask else term.name
    if key not in MECHANISMS:
        names = ", ".join(["a 4-bit mask such as 1000"] + sorted(n for n in MECHANISMS if n != MASK))
        raise SpecError(f"unknown mechanism {term.name!r}; expected {names}, or w/o"
                        " (a mechanism of your own: load its file with --model.plugins)")
    return MECHANISMS[key]


def resolve(spec: MixerSpec, ctx: BuildContext) -> tuple[MechanismOptions, ...]:
    """Every term's typed options, checked for the role and layer of ``ctx``; SpecError otherwise.

    Runs when the model config is loaded (so errors come before any data or run folder)."""
    if spec.is_none and ctx.role == "cross":
        raise SpecError("'w/o' removes a self-attention sublayer; cross-attention cannot be removed")
    if spec.combine == "joint":
        check_joint(spec)
    options = []
    for t in spec.terms:
        entry = lookup(t)
        o = entry.options.parse(t)
        o.check(ctx)
        if ctx.role not in entry.roles:
            o.fail(f"has no {ctx.role} role (it fills {', '.join(entry.roles)} sublayers)")
        options.append(o)
    return tuple(options)


def build_mixer(spec: MixerSpec, ctx: BuildContext) -> Mixer | None:
    """The mixer for one sublayer, or None for "w/o" (refused for cross-attention)."""
    options = resolve(spec, ctx)
    if spec.is_none:
        return None
    if spec.combine == "joint":
        return build_joint(spec, ctx, options)
    mixers = [o.build(ctx) for o in options]
    if len(mixers) == 1:
        return mixers[0]
    cls = ParallelMixer if spec.combine == "sum" else StackedMixer
    return cls(mixers)
