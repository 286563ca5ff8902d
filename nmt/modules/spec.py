"""Parsing of per-layer mechanism specs ("0110", "1111:w=8", "dynamic:k=7", "0010+deform_attn", "w/o").

Grammar::

    spec   := "w/o" | chain | joint
    chain  := term (("+" | ">") term)*     "+": parallel branches, outputs summed
                                           ">": stacked, left output feeds the right
    joint  := term "&" term                one sublayer: both share one value and one output
                                           projection (nmt.modules.joint; "0010&deform_attn")
    term   := name [":" opt ("," opt)*]
    name   := a 4-bit factor mask [01]{4} (not "0000") | lightweight | dynamic | deform_attn
              | deformable (alias of deform_attn) | deform_conv | salient
              | any name registered with @register (nmt.modules.options; plugins)
          | a mechanism of your own (docs/extending.md)
    opt    := key "=" value

A spec uses one operator throughout ("a+b+c", "a>b" or "a&b"); mixing them is refused. Options
are validated by the mechanism that receives them (see ``nmt.modules.registry``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MASK_RE = re.compile(r"^[01]{4}$")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
NONE_SPEC = "w/o"
OPERATORS: dict[str, str] = {"sum": "+", "stack": ">", "joint": "&"}


class SpecError(ValueError):
    """A mechanism spec string is invalid."""


@dataclass(frozen=True)
class TermSpec:
    """One mechanism with its options, e.g. name="1111", options={"w": "8"}."""

    name: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def is_mask(self) -> bool:
        return bool(MASK_RE.match(self.name))

    def __str__(self) -> str:
        if not self.options:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.options.items())


@dataclass(frozen=True)
class MixerSpec:
    """A parsed spec: zero terms means "w/o" (no sublayer)."""

    terms: tuple[TermSpec, ...]
    combine: str = "sum"  # "sum" (parallel), "stack" (sequential) or "joint" (shared projections)

    @property
    def is_none(self) -> bool:
        return not self.terms

    def __str__(self) -> str:
        if self.is_none:
            return NONE_SPEC
        op = OPERATORS[self.combine]
        return op.join(str(t) for t in self.terms)


def _parse_term(text: str) -> TermSpec:
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise SpecError(f"empty mechanism name in {text!r}")
    if re.fullmatch(r"\d+", name):
        if not MASK_RE.match(name):
            raise SpecError(f"factor mask {name!r} must be 4 characters of 0/1 (E1 E2 E3 E4), e.g. '1000'")
        if name == "0000":
            raise SpecError("factor mask '0000' enables no term; use 'w/o' to remove the sublayer")
    elif not NAME_RE.match(name):
        raise SpecError(f"invalid mechanism name {name!r}")
    options: dict[str, str] = {}
    if rest.strip():
        for opt in rest.split(","):
            key, eq, value = opt.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not key or not value:
                raise SpecError(f"option {opt!r} of {name!r} must look like key=value")
            if key in options:
                raise SpecError(f"option {key!r} given twice for {name!r}")
            options[key] = value
    return TermSpec(name, options)


def parse_spec(text: str) -> MixerSpec:
    """Parse one spec string; raise SpecError saying what is wrong."""
    if not isinstance(text, str):
        raise SpecError(f"a mechanism spec must be a string, got {text!r} (quote masks like '0110' in YAML)")
    s = text.strip()
    if not s:
        raise SpecError("empty mechanism spec")
    if s.lower() in (NONE_SPEC, "none", "wo"):
        return MixerSpec(())
    used = [c for c, op in OPERATORS.items() if op in s]
    if len(used) > 1:
        names = " and ".join(f"'{OPERATORS[c]}'" for c in used)
        raise SpecError(f"{text!r} mixes {names}; use one operator per spec ('+' parallel, '>' stacked, '&' joint)")
    combine = used[0] if used else "sum"
    terms = tuple(_parse_term(part) for part in s.split(OPERATORS[combine]))
    if combine == "joint" and len(terms) != 2:
        raise SpecError(f"{text!r}: the joint form '&' combines exactly two terms, e.g. '0010&deform_attn'")
    return MixerSpec(terms, combine)


def expand_layer_specs(value: str | list[str], n_layers: int, key: str) -> list[MixerSpec]:
    """A compact spec (one string for all layers, or a list with one per layer) -> one per layer.

    Errors name the config key and the layer, e.g. ``model.encoder_self[2]: ...``.
    """
    if isinstance(value, str):
        values = [value] * n_layers
    else:
        values = list(value)
        if len(values) != n_layers:
            raise SpecError(f"{key}: {len(values)} specs given for {n_layers} layers")
    specs = []
    for i, v in enumerate(values):
        try:
            specs.append(parse_spec(v))
        except SpecError as e:
            raise SpecError(f"{key}[{i}] = {v!r}: {e}") from None
    return specs
