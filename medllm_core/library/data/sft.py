"""SFT input formats -> ``{"messages": [...]}`` (TRL conversational format).

Also holds the Alpaca prompt builder and the conversation-column lookup, which
the preference and KTO formats reuse.
"""

from __future__ import annotations

from medllm_core.library.data.conversation import (
    ASSISTANT,
    USER,
    Mapping,
    Turn,
    check_order,
    check_text,
    completion_turn,
    parse_text,
    parse_turns,
    prompt_turns,
    system_turn,
    to_messages,
    type_name,
    with_system,
)
from medllm_core.library.data.model import RowIssues

CONVERSATION_KEYS = ("conversations", "messages")


def conversation_key(row: dict, mapping: Mapping, preferred: str) -> str:
    """Column holding the turns: the mapped one, else ``preferred``, else the other.

    Files mix up ``messages`` and ``conversations`` freely, and the turn parser
    copes with either role/content or from/value, so both names are accepted.
    """
    if "conversations" in mapping.columns:
        return mapping.columns["conversations"]
    if preferred in row:
        return preferred
    other = next((k for k in CONVERSATION_KEYS if k != preferred and k in row), None)
    return other or preferred


def conversation_turns(row: dict, mapping: Mapping, issues: RowIssues, *, preferred: str,
                       ends_with: str) -> list[Turn] | None:
    """Turns of a messages/ShareGPT row with its optional top-level system prompt."""
    key = conversation_key(row, mapping, preferred)
    if key not in row:
        issues.error(key, "missing required key")
        return None
    system = system_turn(row, mapping, issues)
    turns = parse_turns(row[key], key, mapping, issues)
    if turns is None:
        return None
    turns = with_system(system, turns, issues)
    if not check_order(turns, issues, key, ends_with=ends_with):
        return None
    return turns


def alpaca_prompt(row: dict, mapping: Mapping, issues: RowIssues) -> list[Turn] | None:
    """System + ``history`` pairs + instruction/input, as LLaMA-Factory builds it.

    The user turn is ``instruction`` and ``input`` joined by a newline (input is
    optional and may be empty).
    """
    ins_key, inp_key = mapping.col("instruction"), mapping.col("input")
    instruction = parse_text(row, ins_key, issues, allow_empty=True)
    extra: str | None = None
    if row.get(inp_key) is not None:  # absent or null: no input
        extra = check_text(row[inp_key], inp_key, issues, allow_empty=True)
        if extra is None:
            return None
    if instruction is None:
        return None
    prompt = "\n".join(part for part in (instruction, extra) if part)
    if not prompt.strip():
        issues.error(ins_key, "empty content")
        return None
    turns: list[Turn] = []
    system = system_turn(row, mapping, issues)
    if system is not None:
        turns.append(system)
    hist_key = mapping.col("history")
    if row.get(hist_key) is not None:
        pairs = _history(row[hist_key], hist_key, issues)
        if pairs is None:
            return None
        turns.extend(pairs)
    turns.append(Turn(USER, prompt, ins_key))
    return turns


def _history(value: object, key: str, issues: RowIssues) -> list[Turn] | None:
    """``[[question, answer], ...]`` -> alternating user/assistant turns."""
    if not isinstance(value, list):
        issues.error(key, f"must be a list of [question, answer] pairs, got {type_name(value)}")
        return None
    turns: list[Turn] = []
    for i, pair in enumerate(value):
        item_key = f"{key}[{i}]"
        if not (isinstance(pair, list) and len(pair) == 2):
            issues.error(item_key, "must be a [question, answer] pair")
            return None
        for j, role in ((0, USER), (1, ASSISTANT)):
            checked = check_text(pair[j], f"{item_key}[{j}]", issues)
            if checked is None:
                return None
            turns.append(Turn(role, checked, f"{item_key}[{j}]"))
    return turns


def normalise_messages(row: dict, mapping: Mapping, issues: RowIssues) -> dict | None:
    """``{"messages": [{"role", "content"}...], "system"?}``."""
    turns = conversation_turns(row, mapping, issues, preferred="messages", ends_with=ASSISTANT)
    return None if turns is None else {"messages": to_messages(turns)}


def normalise_sharegpt(row: dict, mapping: Mapping, issues: RowIssues) -> dict | None:
    """``{"conversations": [{"from", "value"}...], "system"?}`` (MedicalGPT style)."""
    turns = conversation_turns(row, mapping, issues, preferred="conversations",
                               ends_with=ASSISTANT)
    return None if turns is None else {"messages": to_messages(turns)}


def normalise_alpaca(row: dict, mapping: Mapping, issues: RowIssues) -> dict | None:
    """``{"instruction", "input"?, "output", "system"?, "history"?}``."""
    prompt = alpaca_prompt(row, mapping, issues)
    output = parse_text(row, mapping.col("output"), issues)
    if prompt is None or output is None:
        return None
    return {"messages": to_messages([*prompt, Turn(ASSISTANT, output, mapping.col("output"))])}


def normalise_prompt_completion(row: dict, mapping: Mapping, issues: RowIssues) -> dict | None:
    """TRL prompt-completion ``{"prompt", "completion"}`` (strings or messages)."""
    prompt = prompt_turns(row, mapping.col("prompt"), mapping, issues)
    completion = completion_turn(row, mapping.col("completion"), mapping, issues)
    if prompt is None or completion is None:
        return None
    return {"messages": to_messages([*prompt, completion])}
