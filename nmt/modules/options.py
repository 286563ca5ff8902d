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

A mechanism declares itself with ``@register(name, ...)`` on its options class: its spec name, the
roles it can fill, whether it sees word order by itself, whether CTranslate2 can run it, and the
example specs the contract suite (``nmt.modules.contract``) checks. ``build(ctx)`` on the options
makes the module. A mechanism outside the package registers the same way in its own file, loaded
with ``--model.plugins`` (``nmt.modules.plugins``).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, NoReturn, TypeVar, Union, get_args, get_origin, get_type_hints

from nmt.modules.base import ROLES, Role
from nmt.modules.spec import NAME_RE, SpecError, TermSpec

if TYPE_CHECKING:
    from nmt.modules.base import Mixer

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

    def build(self, ctx: BuildContext) -> Mixer:
        """The mechanism's module for the sublayer described by ``ctx`` (options checked against it)."""
        raise NotImplementedError(f"{type(self).__name__} does not define build(ctx)")

    def sees_order(self) -> bool:
        """Whether the mechanism with these options sees word order by itself (a relative-position
        term, a local window), so that its stack needs no absolute positions; the registered
        ``order_aware`` by default."""
        return declaration(type(self)).order_aware

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


MASK = "mask"  # the registry name of every 4-bit factor mask ("1000", "0110", ...)


@dataclass(frozen=True)
class Mechanism:
    """What a registered mechanism declares about itself."""

    name: str
    options: type[MechanismOptions]
    roles: tuple[Role, ...]  # the sublayers it can fill
    order_aware: bool  # sees word order by itself (options may refine: ``sees_order``)
    ctranslate2: bool  # CTranslate2 can run it (``nmt export`` checks its options further)
    aliases: tuple[str, ...]
    examples: tuple[str, ...]  # specs the contract suite checks, in every role they fit
    source: str  # the module that registered it

    @property
    def builtin(self) -> bool:
        return self.source.startswith("nmt.")


MECHANISMS: dict[str, Mechanism] = {}  # every name and alias -> its declaration

OptionsClass = TypeVar("OptionsClass", bound=type[MechanismOptions])


def register(
    name: str,
    *,
    roles: tuple[Role, ...] = ROLES,  # type: ignore[assignment]
    order_aware: bool = False,
    ctranslate2: bool = False,
    aliases: tuple[str, ...] = (),
    examples: tuple[str, ...] = (),
) -> Callable[[OptionsClass], OptionsClass]:
    """Class decorator: register the frozen options dataclass it decorates as mechanism ``name``
    (its spec name; ``aliases`` are other names for it). ``examples`` default to the bare name."""

    def decorate(cls: OptionsClass) -> OptionsClass:
        if not (isinstance(cls, type) and issubclass(cls, MechanismOptions) and dataclasses.is_dataclass(cls)
                and cls.__dataclass_params__.frozen):  # type: ignore[attr-defined]
            raise TypeError(f"@register({name!r}) decorates a frozen dataclass subclass of MechanismOptions, "
                            f"not {cls!r} (put @register above @dataclass(frozen=True))")
        unknown = [r for r in roles if r not in ROLES]
        if not roles or unknown:
            raise ValueError(f"@register({name!r}): roles must be some of {', '.join(ROLES)}, got {roles!r}")
        for n in (name, *aliases):
            if not NAME_RE.match(n):
                raise ValueError(f"@register: mechanism name {n!r} must be lower-case letters, digits and '_'")
            taken = MECHANISMS.get(n)
            if taken is not None and (taken.source, taken.options.__qualname__) != (cls.__module__, cls.__qualname__):
                raise ValueError(f"mechanism name {n!r} is already registered by {taken.source}")
        if "NAME" not in cls.__dict__:
            cls.NAME = name
        entry = Mechanism(name, cls, tuple(roles), order_aware, ctranslate2, tuple(aliases),
                          tuple(examples) or (name,), cls.__module__)
        for n in (name, *aliases):
            MECHANISMS[n] = entry
        return cls

    return decorate


def declaration(cls: type[MechanismOptions]) -> Mechanism:
    """The registered declaration of options class ``cls``."""
    for entry in MECHANISMS.values():
        if entry.options is cls:
            return entry
    raise LookupError(f"{cls.__qualname__} is not registered (decorate it with @register)")
