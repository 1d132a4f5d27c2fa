"""Shared helpers that turn raw turns and strings into checked chat messages.

Every input format ends up as a list of ``{"role", "content"}`` messages (TRL's
conversational format), so role aliases, content checks and turn-order rules
live here once instead of in each format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medllm_core.library.data.model import RowIssues

SYSTEM, USER, ASSISTANT = "system", "user", "assistant"

# ShareGPT ("human"/"gpt"), OpenAI ("developer") and Gemini ("model") spellings.
DEFAULT_ROLE_ALIASES: dict[str, str] = {
    "system": SYSTEM,
    "developer": SYSTEM,
    "user": USER,
    "human": USER,
    "assistant": ASSISTANT,
    "gpt": ASSISTANT,
    "bot": ASSISTANT,
    "model": ASSISTANT,
}


@dataclass(frozen=True)
class Mapping:
    """Column names and turn tags of a file (LLaMA-Factory ``dataset_info.json``).

    ``columns`` maps our canonical column name (``instruction``, ``input``,
    ``output``, ``system``, ``history``, ``conversations``, ``chosen``,
    ``rejected``, ``kto_tag``) to the file's column name. Tags with value
    ``None`` mean "auto": turns may use role/content or from/value.
    """

    columns: dict[str, str] = field(default_factory=dict)
    role_tag: str | None = None
    content_tag: str | None = None
    user_tag: str | None = None
    assistant_tag: str | None = None
    system_tag: str | None = None

    def col(self, name: str) -> str:
        return self.columns.get(name, name)

    def role_aliases(self) -> dict[str, str]:
        aliases = dict(DEFAULT_ROLE_ALIASES)
        for value, role in ((self.system_tag, SYSTEM), (self.user_tag, USER),
                            (self.assistant_tag, ASSISTANT)):
            if value is not None:
                aliases[value] = role
        return aliases


@dataclass(frozen=True)
class Turn:
    """A checked message plus the key of its role, for pointing at order errors."""

    role: str
    content: str
    role_key: str


def type_name(value: Any) -> str:
    """JSON names in messages: users wrote JSON, not Python."""
    names = {type(None): "null", bool: "boolean", int: "number", float: "number",
             str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def to_messages(turns: list[Turn]) -> list[dict[str, str]]:
    return [{"role": t.role, "content": t.content} for t in turns]


def parse_text(row: dict, key: str, issues: RowIssues, *, required: bool = True,
               allow_empty: bool = False) -> str | None:
    """A plain string column such as ``instruction`` or ``chosen``.

    Returns ``None`` when absent (an error if ``required``) or invalid.
    """
    if key not in row:
        if required:
            issues.error(key, "missing required key")
        return None
    return check_text(row[key], key, issues, allow_empty=allow_empty)


def check_text(value: Any, key: str, issues: RowIssues, *,
               allow_empty: bool = False) -> str | None:
    """Content must be a non-empty string; an empty answer trains nothing useful."""
    if not isinstance(value, str):
        issues.error(key, f"must be a string, got {type_name(value)}")
        return None
    if not allow_empty and not value.strip():
        issues.error(key, "empty content")
        return None
    return value


def _content(value: Any, key: str, issues: RowIssues) -> str | None:
    """Message content: a string, or OpenAI-style ``[{"type": "text", "text": ...}]``."""
    if isinstance(value, list):
        parts: list[str] = []
        for i, part in enumerate(value):
            if not (isinstance(part, dict) and part.get("type") == "text"
                    and isinstance(part.get("text"), str)):
                issues.error(f"{key}[{i}]", "only text content parts are supported")
                return None
            parts.append(part["text"])
        value = "".join(parts)
    return check_text(value, key, issues, allow_empty=True)


def parse_turn(value: Any, key: str, mapping: Mapping, issues: RowIssues) -> Turn | None:
    """One turn as ``{"role", "content"}`` or ``{"from", "value"}`` (or custom tags).

    Returns ``None`` when the role is unusable. A turn whose content is bad is
    still returned (with the error recorded) so turn-order checks stay accurate.
    """
    if not isinstance(value, dict):
        issues.error(key, f"turn must be an object, got {type_name(value)}")
        return None
    if mapping.role_tag or mapping.content_tag:
        role_key, content_key = mapping.role_tag or "from", mapping.content_tag or "value"
    elif "role" in value or "content" in value:
        role_key, content_key = "role", "content"
    elif "from" in value or "value" in value:
        role_key, content_key = "from", "value"
    else:
        issues.error(key, f"turn needs role/content or from/value keys, found {sorted(value)}")
        return None
    role_path, content_path = f"{key}.{role_key}", f"{key}.{content_key}"
    raw_role = value.get(role_key)
    aliases = mapping.role_aliases()
    if role_key not in value:
        issues.error(role_path, "missing required key")
        return None
    if not isinstance(raw_role, str) or raw_role not in aliases:
        shown = raw_role if isinstance(raw_role, str) else type_name(raw_role)
        issues.error(role_path, f"unknown role '{shown}' (expected one of: "
                                f"{', '.join(sorted(aliases))})")
        return None
    role = aliases[raw_role]
    if content_key not in value:
        issues.error(content_path, "missing required key")
        return Turn(role, "", role_path)
    content = _content(value[content_key], content_path, issues)
    if content is None:
        return Turn(role, "", role_path)
    if not content.strip():
        if role == SYSTEM:
            issues.warning(content_path, "empty system message dropped")
            return None
        issues.error(content_path, "empty content")
    return Turn(role, content, role_path)


def parse_turns(value: Any, key: str, mapping: Mapping, issues: RowIssues) -> list[Turn] | None:
    """A list of turns; ``None`` if any turn is structurally unusable."""
    if not isinstance(value, list):
        issues.error(key, f"must be a list of messages, got {type_name(value)}")
        return None
    turns: list[Turn] = []
    usable = True
    for i, item in enumerate(value):
        errors_before = issues.error_count
        turn = parse_turn(item, f"{key}[{i}]", mapping, issues)
        if turn is not None:
            turns.append(turn)
        elif issues.error_count > errors_before:
            usable = False
    return turns if usable else None


def system_turn(row: dict, mapping: Mapping, issues: RowIssues) -> Turn | None:
    """Optional top-level ``system`` column; empty means "no system prompt"."""
    key = mapping.col("system")
    value = row.get(key)
    if value is None:
        return None
    text = check_text(value, key, issues, allow_empty=True)
    if text is None or not text.strip():
        return None
    return Turn(SYSTEM, text, key)


def with_system(system: Turn | None, turns: list[Turn], issues: RowIssues) -> list[Turn]:
    """Prepend the top-level system prompt unless the turns already carry one."""
    if system is None:
        return turns
    if turns and turns[0].role == SYSTEM:
        issues.warning(system.role_key, "ignored: the conversation already starts with a "
                                        "system turn")
        return turns
    return [system, *turns]


def check_order(turns: list[Turn], issues: RowIssues, key: str, *, ends_with: str) -> bool:
    """Optional system first, then user/assistant alternating, ending with ``ends_with``.

    Chat templates and TRL assume this shape; a broken order silently trains the
    model on the wrong side of the conversation, so it is an error.
    """
    if not turns or (len(turns) == 1 and turns[0].role == SYSTEM):
        issues.error(key, "no user or assistant turns")
        return False
    expected = USER
    for i, turn in enumerate(turns):
        if turn.role == SYSTEM:
            if i == 0:
                continue
            issues.error(turn.role_key, "a system turn is only allowed first")
            return False
        if turn.role != expected:
            issues.error(turn.role_key, f"expected a {expected} turn here, got {turn.role} "
                                        "(turns must alternate user/assistant)")
            return False
        expected = ASSISTANT if expected == USER else USER
    last = turns[-1]
    if last.role != ends_with:
        issues.error(last.role_key, f"must end with {'an' if ends_with == ASSISTANT else 'a'} "
                                    f"{ends_with} turn, ends with {last.role}")
        return False
    return True


def prompt_turns(row: dict, key: str, mapping: Mapping, issues: RowIssues) -> list[Turn] | None:
    """A prompt given as a string (one user turn) or as messages ending with user."""
    if key not in row:
        issues.error(key, "missing required key")
        return None
    value = row[key]
    if isinstance(value, str):
        text = check_text(value, key, issues)
        return None if text is None else [Turn(USER, text, key)]
    turns = parse_turns(value, key, mapping, issues)
    if turns is None or not check_order(turns, issues, key, ends_with=USER):
        return None
    return turns


def completion_turn(row: dict, key: str, mapping: Mapping, issues: RowIssues) -> Turn | None:
    """An answer: a string, one assistant turn object, or a list of exactly one."""
    if key not in row:
        issues.error(key, "missing required key")
        return None
    value = row[key]
    if isinstance(value, str):
        text = check_text(value, key, issues)
        return None if text is None else Turn(ASSISTANT, text, key)
    if isinstance(value, list):
        if len(value) != 1:
            issues.error(key, f"must be a single assistant turn, got {len(value)} turns")
            return None
        value, key = value[0], f"{key}[0]"
    elif not isinstance(value, dict):
        issues.error(key, f"must be a string or an assistant message, got {type_name(value)}")
        return None
    turn = parse_turn(value, key, mapping, issues)
    if turn is not None and turn.role != ASSISTANT:
        issues.error(turn.role_key, f"must be an assistant turn, got {turn.role}")
        return None
    return turn
