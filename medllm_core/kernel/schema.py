"""Validate plain TOML dicts against dataclass schemas.

Profiles are nested dataclasses; this module turns a parsed TOML table into an
instance, rejecting unknown keys (with the closest valid key as a hint) and
values of the wrong type, and reporting the dotted key so the caller can point
at the file and line.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, get_args, get_origin, get_type_hints


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


def describe_type(tp: Any) -> str:
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
            return float(value)
        raise _type_error(key, value, tp)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(key, value, tp)
    if tp is Any:
        return value
    raise TypeError(f"unsupported schema type {tp!r} at {key}")


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
        elif isinstance(value, dict):
            value = {k: to_table(v) if dataclasses.is_dataclass(v) else v for k, v in value.items()}
        out[field.name] = value
    return out
