"""Typed configuration: dataclasses read from YAML with strict validation and dotted overrides.

Every config section is a dataclass whose fields carry a ``help`` string in their metadata
(``field(default=..., metadata={"help": "..."})``). ``from_dict`` builds a dataclass from plain
data and rejects unknown keys and values of the wrong type with an error that names the full key
path (``model.encoder_self``). ``to_dict`` turns it back into plain data (for checkpoints, which
must load with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names the key path (and file)."""


def field(default: Any = dataclasses.MISSING, *, help: str, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with a help string (shown by ``nmt <command> --help``)."""
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Check/convert ``value`` to type ``tp``; raise ConfigError naming ``path``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except ConfigError as e:
                errors.append(str(e))
        if len(errors) == 1:
            raise ConfigError(errors[0])
        # report the branch of the value's own shape (scalar vs list/mapping): its message is the precise one
        container = isinstance(value, (list, tuple, dict))
        for arg, err in zip([a for a in args if a is not type(None)], errors):
            if (get_origin(arg) in (list, tuple, dict)) == container:
                raise ConfigError(err)
        raise ConfigError(f"{path}: {value!r} is not a valid {_type_name(tp)}")
    if origin is typing.Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"{path}: {value!r} is not one of {choices}")
        return value
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (arg,) = get_args(tp)[:1] or (Any,)
        items = [_convert(v, arg, f"{path}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        kt, vt = get_args(tp) or (Any, Any)
        return {_convert(k, kt, path): _convert(v, vt, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # YAML reads masks such as 1000 or 0110 as numbers when unquoted; refuse clearly.
            raise ConfigError(f"{path}: expected a string, got the number {value!r} (quote it in YAML)")
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown config key '{sub}'{hint}")
        kwargs[key] = _convert(value, hints[key], sub)
    try:
        obj = cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{path or 'config'}: {e}") from None
    except ConfigError as e:  # a check of the whole section: name the section unless the message does
        named = not path or str(e).startswith(f"{path}.")
        raise ConfigError(str(e) if named else f"{path}: {e}") from None
    return obj


def to_dict(obj: Any) -> Any:
    """Plain-data (dict/list/str/number) form of a config dataclass."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping")
    return data


def set_dotted(data: dict, key: str, value: Any) -> None:
    """Set ``a.b.c = value`` in nested dicts (value parsed as YAML: ``--model.layers 3``)."""
    parts = key.split(".")
    d = data
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise ConfigError(f"override {key}: '{p}' is not a section")
    d[parts[-1]] = value


def field_type(cls: type, key: str) -> Any:
    """The declared type of dotted ``key`` under dataclass ``cls`` (through nested dataclasses and
    mappings), or None when no such field exists (``from_dict`` then reports the unknown key)."""
    tp: Any = cls
    for part in key.split("."):
        tp = _strip_optional(tp)
        if dataclasses.is_dataclass(tp):
            hints = get_type_hints(tp)
            if part not in {f.name for f in dataclasses.fields(tp)}:
                return None
            tp = hints[part]
        elif get_origin(tp) is dict:
            tp = (get_args(tp) or (Any, Any))[1]
        elif tp is Any:
            return Any
        else:
            return None
    return tp


def parse_override(cls: type, key: str, text: str) -> Any:
    """A command-line ``--key VALUE`` read as the type of the field it sets under ``cls``.

    ``1000`` is the integer 1000 for an int field and the string "1000" for a str or spec field;
    lists and mappings are YAML flow syntax (``[0110, 1000]``, ``{train: train}``) whose items are
    read by the item type in turn; a single value for a list field is a list of one
    (``--model.plugins my_mech.py``). A value that does not fit is returned as is, so that
    validation names the key; an unknown key is read as YAML.
    """
    tp = field_type(cls, key)
    return _yaml_or_text(text) if tp is None else parse_text(text, tp)


_NONE = type(None)
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _strip_optional(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not _NONE]
        if len(args) == 1:
            return args[0]
    return tp


def _is_container(tp: Any) -> bool:
    return get_origin(tp) in (list, tuple, dict) or dataclasses.is_dataclass(tp)


def _yaml_or_text(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_text(text: str, tp: Any) -> Any:
    """``text`` read as type ``tp`` (see ``parse_override``); never raises."""
    origin = get_origin(tp)
    if tp is Any:
        return _yaml_or_text(text)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if _NONE in args and text.strip().lower() in ("null", "none", "~"):
            return None
        arms = [a for a in args if a is not _NONE]
        # a flow list / mapping tries the container types first, anything else the scalar ones
        container = text.lstrip().startswith(("[", "{"))
        for arm in sorted(arms, key=lambda a: _is_container(a) != container):
            value = parse_text(text, arm)
            try:
                _convert(value, arm, "")
            except ConfigError:
                continue
            return value
        return _yaml_or_text(text)
    if origin is typing.Literal:
        return next((c for c in get_args(tp) if str(c) == text), text)
    if origin in (list, tuple, dict) or dataclasses.is_dataclass(tp):
        try:
            node = yaml.compose(text)
        except yaml.YAMLError:
            return text
        if isinstance(node, yaml.ScalarNode) and origin in (list, tuple):  # one value: a list of one
            (arg,) = get_args(tp)[:1] or (Any,)
            return [_from_node(node, arg)]
        if isinstance(node, yaml.ScalarNode):  # not a container: validation names the key and type
            return yaml.safe_load(yaml.serialize(node))
        return text if node is None else _from_node(node, tp)
    if tp is bool:
        low = text.strip().lower()
        return True if low in _TRUE else False if low in _FALSE else text
    if tp is int:
        try:
            return int(text.strip())
        except ValueError:
            return text
    if tp is float:
        try:
            return float(text.strip())
        except ValueError:
            return text
    if tp is str:
        return text
    return _yaml_or_text(text)


def _from_node(node: yaml.Node, tp: Any) -> Any:
    """A composed YAML node read by type ``tp``: scalars through ``parse_text``, so that the items of
    ``[0110, 1000]`` stay the strings they are for a list of specs."""
    if isinstance(node, yaml.ScalarNode) and tp is not Any:
        quoted = node.style in ("'", '"')
        if quoted and (tp is str or str in get_args(tp)):
            return node.value
        if not quoted and node.value in ("", "~", "null", "Null", "NULL") and _NONE in get_args(tp):
            return None
        return parse_text(node.value, tp)
    tp = _strip_optional(tp)
    origin = get_origin(tp)
    if isinstance(node, yaml.SequenceNode) and origin in (list, tuple):
        (arg,) = get_args(tp)[:1] or (Any,)
        return [_from_node(n, arg) for n in node.value]
    if isinstance(node, yaml.MappingNode) and origin is dict:
        kt, vt = get_args(tp) or (Any, Any)
        return {_from_node(k, kt): _from_node(v, vt) for k, v in node.value}
    if isinstance(node, yaml.MappingNode) and dataclasses.is_dataclass(tp):
        hints = get_type_hints(tp)
        out = {}
        for k, v in node.value:
            name = _from_node(k, str)
            out[name] = _from_node(v, hints.get(name, Any))
        return out
    if isinstance(node, yaml.SequenceNode) and get_origin(tp) in (Union, types.UnionType):
        arms = [a for a in get_args(tp) if get_origin(a) in (list, tuple)]
        if arms:
            return _from_node(node, arms[0])
    return yaml.safe_load(yaml.serialize(node))  # Any, or a shape the type refuses: validation says so


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, type/default, help) for every field, recursively: the body of ``--help``."""
    rows = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, key + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "required")
        rows.append((key, f"{_type_name(tp)} = {default!r}", f.metadata.get("help", "")))
    return rows
