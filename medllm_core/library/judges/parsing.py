"""Getting one JSON object out of a judge's reply.

Judge models are asked for JSON but do not always answer with bare JSON: they
wrap it in ```json fences, put a sentence before it, or (reasoning models) think
out loud in ``<think>`` tags first. ``extract_json_object`` accepts all of these
and returns the first JSON *object* it finds; anything else is a ``ParseError``
so the client can retry and, in the end, record a parse failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

# A schema check gets the parsed object and says whether it is acceptable:
# None or True = fine; False = rejected; a string = rejected, with that reason.
# Raising ValueError / KeyError / TypeError also rejects (the message is kept).
SchemaCheck = Callable[[dict[str, Any]], bool | str | None]

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n?(.*?)```", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
# Bound the brace scan: a reply with thousands of '{' that never form an object
# should fail fast instead of costing quadratic time.
_MAX_CANDIDATES = 200


class ParseError(ValueError):
    """The reply holds no acceptable JSON object (the message says why)."""


def extract_json_object(text: str | None) -> dict[str, Any]:
    """Return the first JSON object in ``text``: bare, fenced, or after leading prose."""
    if text is None or not text.strip():
        raise ParseError("empty reply")
    body = _THINK.sub("", text).strip()
    candidates = [body, *(m.group(1).strip() for m in _FENCE.finditer(body))]
    saw_non_object = False
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
        saw_non_object = True
    found = _scan_for_object(body)
    if found is not None:
        return found
    if saw_non_object:
        raise ParseError("reply is JSON but not a JSON object")
    raise ParseError(f"no JSON object in reply ({len(text)} chars)")


def _scan_for_object(text: str) -> dict[str, Any] | None:
    """Try to decode an object at each '{' in turn; raw_decode ignores what follows it."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    tried = 0
    while start != -1 and tried < _MAX_CANDIDATES:
        tried += 1
        try:
            value, _end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def check_schema(parsed: dict[str, Any], schema_check: SchemaCheck | None) -> str | None:
    """Run ``schema_check``; return None if the object is accepted, else the reason."""
    if schema_check is None:
        return None
    try:
        verdict = schema_check(parsed)
    except (ValueError, KeyError, TypeError) as exc:
        return f"schema check failed: {type(exc).__name__}: {exc}"
    if verdict is None or verdict is True:
        return None
    if verdict is False:
        return "schema check failed"
    return f"schema check failed: {verdict}"


def require_keys(*keys: str, types: dict[str, type | tuple[type, ...]] | None = None) -> SchemaCheck:
    """A ready-made schema check: these keys must be present (and of these types, if given)."""
    expected = dict(types or {})

    def check(parsed: dict[str, Any]) -> str | None:
        missing = [k for k in keys if k not in parsed]
        if missing:
            return f"missing key(s): {', '.join(missing)}"
        for key, kind in expected.items():
            if key in parsed and not _is_instance(parsed[key], kind):
                return f"key '{key}' has type {type(parsed[key]).__name__}"
        return None

    return check


def _is_instance(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int subclass, but a judge answering `true` for a score is a wrong answer.
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)
