"""Typed mechanism options, and the context a mechanism is placed in.

Each mechanism module defines a frozen dataclass ``XOptions(MechanismOptions)`` whose fields are
its spec option keys (``deformable:k=3,norm=sigmoid`` -> ``k``, ``norm``) with their types and
defaults; its constructor takes ``(ctx, options)``. Validation has one home per rule:

- ``XOptions.parse(term)`` reads the term's ``key=value`` text by the field types and refuses
  unknown keys; ``__post_init__`` checks what holds anywhere (``k >= 1``);
- ``check(ctx)`` checks what depends on where the mechanism sits (its role, layer, model width).

The model config runs both when it is loaded (``ModelConfig``), so a bad option is reported with
its config key and layer before any data is prepared or any run folder written. Every error is a
``SpecError`` that starts with the mechanism name, e.g. ``deformable: option k=-1 must be >= 1``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn, TypeVar, Union, get_args, get_origin, get_type_hints

from nmt.modules.base import Role
from nmt.modules.spec import SpecError, TermSpec

OptionsT = TypeVar("OptionsT", bound="MechanismOptions")

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class BuildContext:
    """Where a mechanism sits: everything it may need besides its own options."""

    d_model: int
    n_heads: int
    role: Role
    layer: int = 0  # 0-based index of the layer in its stack
    n_layers: int = 1
    dropout: float = 0.0  # dropout on attention weights / normalised kernels


NOT_AN_OPTION = {"option": False}  # field metadata: set from the term's name, not from key=value


@dataclass(frozen=True)
class MechanismOptions:
    """Base of every mechanism's options; subclasses are frozen dataclasses of option fields."""

    NAME: ClassVar[str] = ""  # mechanism name, the prefix of every error

    @property
    def label(self) -> str:
        """What errors call the mechanism (the name, or the mask for factored attention)."""
        return self.NAME

    @classmethod
    def option_keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("option", True))

    @classmethod
    def from_name(cls, name: str) -> dict[str, Any]:
        """Fields given by the term's name (factored attention: its mask); none by default."""
        return {}

    @classmethod
    def parse(cls: type[OptionsT], term: TermSpec) -> OptionsT:
        """The options of ``term`` read by field type; SpecError names an unknown or malformed option."""
        keys = cls.option_keys()
        unknown = sorted(set(term.options) - set(keys))
        if unknown:
            raise SpecError(f"{term.name}: unknown option(s) {', '.join(unknown)}")
        hints = get_type_hints(cls)
        values = {key: _read(term.name, key, raw, hints[key]) for key, raw in term.options.items()}
        return cls(**cls.from_name(term.name), **values)

    def fail(self, message: str) -> NoReturn:
        raise SpecError(f"{self.label}: {message}")

    def check(self, ctx: BuildContext) -> None:
        """Refuse options that do not fit ``ctx`` (role, layer, width); nothing by default."""

    def resolve_heads(self, ctx: BuildContext, given: int | None) -> int:
        """The head count ``given`` by an option (None: the model's), checked against d_model."""
        heads = ctx.n_heads if given is None else given
        if heads < 1 or ctx.d_model % heads:
            self.fail(f"option heads={heads} must be a positive divisor of d_model={ctx.d_model}")
        return heads


def _read(name: str, key: str, raw: str, tp: Any) -> Any:
    """Option text ``raw`` as type ``tp`` (int, float, bool, str, a Literal, or Optional of one)."""
    if get_origin(tp) in (Union, types.UnionType):
        (tp,) = [a for a in get_args(tp) if a is not type(None)]
    if get_origin(tp) is typing.Literal:
        choices = get_args(tp)
        if raw not in choices:
            raise SpecError(f"{name}: option {key}={raw!r} must be one of {', '.join(choices)}")
        return raw
    if tp is bool:
        if raw.lower() in TRUE + FALSE:
            return raw.lower() in TRUE
        raise SpecError(f"{name}: option {key}={raw!r} is not a valid boolean (true/false)")
    kind = {int: "integer", float: "number", str: "string"}[tp]
    try:
        value = tp(raw)
    except ValueError:
        raise SpecError(f"{name}: option {key}={raw!r} is not a valid {kind}") from None
    if tp is float and not math.isfinite(value):
        raise SpecError(f"{name}: option {key}={raw!r} must be a finite number")
    return value
