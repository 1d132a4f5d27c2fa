"""Read JSON / JSON Lines files into raw rows that remember their line numbers.

Line numbers are the whole point: a user with a 50k-line file needs to be told
*where* the bad row is. JSON arrays are scanned item by item with
``JSONDecoder.raw_decode`` so every item gets the line it starts on.
"""

from __future__ import annotations

import json
import os
import re
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medllm_core.kernel.errors import DataError, Location
from medllm_core.kernel.user_files import read_user_text
from medllm_core.library.data.model import ERROR, Problem

MAX_JSON_DEPTH = 100  # conversations nest ~4 levels; deeper is a broken or hostile file
TOO_DEEP = "invalid JSON: nested too deeply (Python's parser stops near 1000 levels)"
_SURROGATE = re.compile("[\ud800-\udfff]")  # json joins valid pairs, so any left is unpaired


@dataclass(frozen=True)
class RawRow:
    """One parsed item of a data file, before any format checks."""

    line: int
    value: Any


def read_text(path: str | os.PathLike[str], what: str = "data file") -> str:
    """Return the UTF-8 text of ``path`` or raise a located ``DataError``.

    A UTF-8 BOM is dropped (Windows editors add it, ``json`` rejects it). FIFOs
    and devices are refused before they are opened (a FIFO would block forever).
    """
    file = str(path)
    target = Path(path)
    if not target.exists():
        raise DataError(f"{what} not found", Location(file=file))
    if target.is_dir():
        raise DataError(f"{what} is a directory, expected a .json or .jsonl file", Location(file))
    return read_user_text(target, what, DataError)


def read_json_document(path: str | os.PathLike[str], what: str = "file") -> Any:
    """Parse a whole file as one JSON document (used for ``dataset_info.json``)."""
    text = read_text(path, what)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(_json_message(exc), Location(str(path), exc.lineno)) from exc
    except RecursionError:
        raise DataError(TOO_DEEP, Location(str(path), 1)) from None
    found = bad_value(value)
    if found is not None:
        raise DataError(found[1], Location(str(path), 1, found[0]))
    return value


def read_records(path: str | os.PathLike[str]) -> tuple[list[RawRow], list[Problem]]:
    """Read a data file as a JSON array or JSON Lines, sniffing the content.

    The content decides, not the extension, because ``.json`` files holding one
    object per line are common. Returns the parsed items and per-line problems
    (JSONL lines that are not JSON). Raises ``DataError`` when the file as a whole
    is not JSON / JSON Lines. An empty file gives no rows and no problems.
    """
    file = str(path)
    text = read_text(path)
    start = _skip_ws(text, 0)
    if start == len(text):
        return [], []
    if text[start] == "[":
        return screen_rows(_read_array(text, start, file), [], file)
    if text[start] == "{" and not file.endswith(".jsonl"):
        single = _read_single_object(text, start)
        if single is not None:
            return screen_rows([single], [], file)
    rows, problems = _read_lines(text, file)
    if not rows:
        first = problems[0]
        raise DataError(
            f"not JSON or JSON Lines: {first.message}",
            Location(file, first.line),
            hint="expected a JSON array of objects or one JSON object per line",
        )
    return screen_rows(rows, problems, file)


def screen_rows(rows: list[RawRow], problems: list[Problem],
                file: str) -> tuple[list[RawRow], list[Problem]]:
    """Move rows holding text no tokenizer can take (see ``bad_value``) into ``problems``."""
    kept: list[RawRow] = []
    for row in rows:
        found = bad_value(row.value)
        if found is None:
            kept.append(row)
        else:
            problems.append(Problem(file, row.line, found[0], found[1], ERROR))
    problems.sort(key=lambda p: p.line or 0)
    return kept, problems


def bad_value(value: Any) -> tuple[str | None, str] | None:
    """First (key path, message) of a string the pipeline cannot use, or ``None``.

    JSON escapes can spell what UTF-8 cannot: a lone surrogate (``"\\ud800"``)
    passes ``json.loads`` and then kills tokenisation or writing with
    ``UnicodeEncodeError``; a NUL ends strings in C code. Nesting deeper than
    ``MAX_JSON_DEPTH`` is refused too (no data format needs it). Iterative, so
    deep values cannot overflow the stack here.
    """
    stack: list[tuple[Any, str | None, int]] = [(value, None, 0)]
    while stack:
        item, key, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return key, f"JSON nested more than {MAX_JSON_DEPTH} levels deep"
        if isinstance(item, str):
            message = _bad_text(item)
            if message:
                return key, message
        elif isinstance(item, dict):
            for name, child in reversed(list(item.items())):
                child_key = f"{key}.{name}" if key else str(name)
                message = _bad_text(str(name))
                if message:
                    return child_key, f"{message} (in the key name)"
                stack.append((child, child_key, depth + 1))
        elif isinstance(item, list):
            for index in range(len(item) - 1, -1, -1):
                stack.append((item[index], f"{key or ''}[{index}]", depth + 1))
    return None


def _bad_text(text: str) -> str | None:
    if "\x00" in text:
        return "NUL character (\\u0000) in a string; remove it"
    found = _SURROGATE.search(text)
    if found:
        return (f"unpaired surrogate \\u{ord(found.group()):04x} in a string: not valid Unicode "
                "(a cut emoji or a mis-encoded export?); fix or remove it")
    return None


def _skip_ws(text: str, pos: int) -> int:
    """Index of the first non-whitespace character at or after ``pos``."""
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


def _json_message(exc: json.JSONDecodeError) -> str:
    """``exc.msg`` plus the column; the line goes into the ``Location`` instead."""
    return f"invalid JSON: {exc.msg} (column {exc.colno})"


def _line_index(text: str) -> list[int]:
    return [m.start() for m in re.finditer("\n", text)]


def _read_single_object(text: str, start: int) -> RawRow | None:
    """A ``.json`` file holding exactly one object (else ``None``: try JSONL)."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None  # JSON Lines reading then reports the line
    return RawRow(text.count("\n", 0, start) + 1, value)


def _read_lines(text: str, file: str) -> tuple[list[RawRow], list[Problem]]:
    """JSON Lines: split on ``\\n`` only, since JSON strings may hold U+2028 etc."""
    rows: list[RawRow] = []
    problems: list[Problem] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        try:
            rows.append(RawRow(number, json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(Problem(file, number, None, _json_message(exc), ERROR))
        except RecursionError:
            problems.append(Problem(file, number, None, TOO_DEEP, ERROR))
    return rows, problems


def _read_array(text: str, start: int, file: str) -> list[RawRow]:
    """Scan ``[item, item, ...]`` recording the line each item starts on."""
    newlines = _line_index(text)

    def line_at(pos: int) -> int:
        return bisect_left(newlines, pos) + 1

    def fail(message: str, pos: int) -> DataError:
        return DataError(f"invalid JSON: {message}", Location(file, line_at(pos)))

    decoder = json.JSONDecoder()
    rows: list[RawRow] = []
    pos = _skip_ws(text, start + 1)
    if pos < len(text) and text[pos] == "]":
        pos += 1
    else:
        while True:
            if pos >= len(text):
                raise fail("unexpected end of file inside the top-level array", pos)
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise DataError(_json_message(exc), Location(file, exc.lineno)) from exc
            except RecursionError:
                raise DataError(TOO_DEEP, Location(file, line_at(pos))) from None
            rows.append(RawRow(line_at(pos), value))
            pos = _skip_ws(text, end)
            if pos >= len(text):
                raise fail("unexpected end of file: missing ']'", pos)
            if text[pos] == "]":
                pos += 1
                break
            if text[pos] != ",":
                raise fail("expecting ',' or ']' between array items", pos)
            pos = _skip_ws(text, pos + 1)
            if pos < len(text) and text[pos] == "]":
                raise fail("trailing comma before ']'", pos)
    rest = _skip_ws(text, pos)
    if rest < len(text):
        raise fail("extra data after the top-level array", rest)
    return rows
