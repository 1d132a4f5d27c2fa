"""Validate plain TOML dicts against dataclass schemas.

Profiles are nested dataclasses; this module turns a parsed TOML table into an
instance, rejecting unknown keys (with the closest valid key as a hint) and
values of the wrong type, and reporting the dotted key so the caller can point
at the file and line.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints


class SchemaError(Exception):
    """A schema violation at ``key`` (dotted path); converted to ConfigError by callers."""

    def __init__(self, key: str, message: str, hint: str | None = None):
        self.key = key
        self.message = message
        self.hint = hint
        super().__init__(f"{key}: {message}")


def closest(name: str, candidates: typing.Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def choices_of(tp: Any) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal[...]`` or ``Enum`` type (None for any other type)."""
    if get_origin(tp) is Literal:
        return tuple(get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tuple(member.value for member in tp)
    return None


def describe_type(tp: Any) -> str:
    choices = choices_of(tp)
    if choices is not None:
        return "one of " + ", ".join(_show(c) for c in choices)
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(arg) for arg in get_args(tp) if arg is not type(None))
    if origin is list:
        (item,) = get_args(tp)
        return f"list of {describe_type(item)}"
    if origin is dict:
        return "table"
    names = {bool: "true/false", int: "integer", float: "number", str: "string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` checked against type ``tp`` (ints are accepted for floats)."""
    choices = choices_of(tp)
    if choices is not None:
        return _choice(value, tp, choices, key)
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except SchemaError:
                continue
        raise _type_error(key, value, tp)
    if origin is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            raise _type_error(key, value, tp)
        return [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(key, value, tp)
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _type_error(key, value, tp)
        return build(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(key, value, tp)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(key, value, tp)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise SchemaError(key, f"must be a finite number, got {value!r}")
            return float(value)
        raise _type_error(key, value, tp)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(key, value, tp)
    if tp is Any:
        return value
    raise TypeError(f"unsupported schema type {tp!r} at {key}")


def _show(choice: Any) -> str:
    return "true" if choice is True else "false" if choice is False else str(choice)


def _choice(value: Any, tp: Any, choices: tuple[Any, ...], key: str) -> Any:
    for choice in choices:
        if value == choice and type(value) is type(choice):
            return tp(choice) if isinstance(tp, type) else choice
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    shown = ", ".join(_show(c) for c in choices)
    suggestion = closest(str(value), [str(c) for c in choices]) if isinstance(value, str) else None
    hint = f"did you mean '{suggestion}'?" if suggestion else None
    raise SchemaError(key, f"must be one of {shown}; got {value!r}", hint)


def _type_error(key: str, value: Any, tp: Any) -> SchemaError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return SchemaError(key, f"expected {describe_type(tp)}, got {type(value).__name__} {shown}")


def build(cls: type, table: dict[str, Any], prefix: str = "") -> Any:
    """Instantiate dataclass ``cls`` from ``table``; missing keys take defaults."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            suggestion = closest(key, fields)
            hint = f"did you mean '{suggestion}'?" if suggestion else f"valid keys: {', '.join(sorted(fields))}"
            raise SchemaError(dotted, "unknown key", hint)
        kwargs[key] = coerce(value, hints[key], dotted)
    try:
        instance = cls(**kwargs)
    except SchemaError:
        raise
    except (TypeError, ValueError) as exc:
        raise SchemaError(prefix or cls.__name__, str(exc)) from None
    validate = getattr(instance, "validate", None)
    if callable(validate):
        validate(prefix)
    return instance


def to_table(instance: Any) -> dict[str, Any]:
    """Dataclass → plain dict suitable for tomli-w (None values dropped: TOML has no null)."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        if value is None:
            continue
        if dataclasses.is_dataclass(value):
            value = to_table(value)
        elif isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, dict):
            value = {k: to_table(v) if dataclasses.is_dataclass(v) else v for k, v in value.items()}
        out[field.name] = value
    return out


# --- settings as data --------------------------------------------------------

def option(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING,
           **metadata: Any) -> Any:
    """A settings field with its help text: ``field(default=..., metadata={"help": ...})`` in one call."""
    kwargs: dict[str, Any] = {"metadata": {"help": help, **metadata}}
    if default_factory is not dataclasses.MISSING:
        kwargs["default_factory"] = default_factory
    else:
        kwargs["default"] = default
    return dataclasses.field(**kwargs)


@dataclasses.dataclass(frozen=True)
class SettingField:
    """One ``[stages.<name>]`` key described as data (for the wizard, the CLI listing and docs)."""

    name: str
    type: str  # human description ("integer", "one of cosine, linear")
    kind: str  # bool | int | float | str | choice | list | table | other: what input a UI offers
    default: Any
    choices: tuple[Any, ...] | None = None
    help: str = ""
    optional: bool = False  # None is allowed (TOML: leave the key out)
    nested: tuple[SettingField, ...] | None = None  # the fields of a nested settings table


def _kind(tp: Any) -> tuple[str, bool]:
    optional = False
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        optional = len(args) < len(get_args(tp))
        if len(args) != 1:
            return "other", optional
        tp = args[0]
    if choices_of(tp) is not None:
        return "choice", optional
    if dataclasses.is_dataclass(tp):
        return "table", optional
    if get_origin(tp) is list:
        return "list", optional
    names = {bool: "bool", int: "int", float: "float", str: "str"}
    return names.get(tp, "other"), optional


def _inner(tp: Any) -> Any:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def describe_settings(cls: type) -> list[SettingField]:
    """Every field of settings dataclass ``cls`` as a ``SettingField`` (declaration order, nested tables too)."""
    hints = get_type_hints(cls)
    described: list[SettingField] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        kind, optional = _kind(tp)
        inner = _inner(tp)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        if isinstance(default, enum.Enum):
            default = default.value
        nested = tuple(describe_settings(inner)) if kind == "table" else None
        if nested is not None:
            default = None
        choices, type_text = choices_of(inner), describe_type(tp)
        # A string whose valid values come from an installed library (option(..., choices=callable)).
        if choices is None and callable(f.metadata.get("choices")) and (found := f.metadata["choices"]()):
            kind, choices, type_text = "choice", tuple(found), "one of " + ", ".join(map(str, found))
        described.append(SettingField(name=f.name, type=type_text, kind=kind, default=default,
                                      choices=choices, help=str(f.metadata.get("help", "")),
                                      optional=optional, nested=nested))
    return described
