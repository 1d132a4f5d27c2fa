"""Preference input formats -> ``{"prompt": [...], "chosen": [...], "rejected": [...]}``.

The output is TRL's conversational preference format with an explicit prompt,
which DPO, ORPO and SimPO trainers all accept.
"""

from __future__ import annotations

from dataclasses import replace

from medllm_core.library.data.conversation import (
    ASSISTANT,
    USER,
    Mapping,
    Turn,
    check_order,
    completion_turn,
    parse_turns,
    prompt_turns,
    to_messages,
)
from medllm_core.library.data.model import RowIssues
from medllm_core.library.data.sft import alpaca_prompt, conversation_turns


def _row(prompt: list[Turn], chosen: Turn, rejected: Turn, issues: RowIssues) -> dict:
    if chosen.content == rejected.content:
        issues.warning(rejected.role_key, "chosen and rejected are identical (no preference "
                                          "signal)")
    return {"prompt": to_messages(prompt), "chosen": to_messages([chosen]),
            "rejected": to_messages([rejected])}


def _answers(row: dict, mapping: Mapping, issues: RowIssues) -> tuple[Turn, Turn] | None:
    chosen = completion_turn(row, mapping.col("chosen"), mapping, issues)
    rejected = completion_turn(row, mapping.col("rejected"), mapping, issues)
    if chosen is None or rejected is None:
        return None
    return chosen, rejected


def normalise_preference(row: dict, mapping: Mapping, issues: RowIssues) -> dict | None:
    """TRL style: ``prompt``/``chosen``/``rejected`` as strings or messages.

    Without a ``prompt`` column, chosen and rejected must be full conversations
    sharing a prefix (TRL's implicit prompt); the shared prefix becomes the prompt.
    """
    if mapping.col("prompt") not in row:
        if isinstance(row.get(mapping.col("chosen")), list) and \
                isinstance(row.get(mapping.col("rejected")), list):
            return _implicit_prompt(row, mapping, issues)
        issues.error(mapping.col("prompt"), "missing required key")
        _answers(row, mapping, issues)  # report answer problems too
        return None
    prompt = prompt_turns(row, mapping.col("prompt"), mapping, issues)
    answers = _answers(row, mapping, issues)
    if prompt is None or answers is None:
        return None
    return _row(prompt, *answers, issues)


def _implicit_prompt(row: dict, mapping: Mapping, issues: RowIssues) -> dict | None:
    ckey, rkey = mapping.col("chosen"), mapping.col("rejected")
    chosen = parse_turns(row[ckey], ckey, mapping, issues)
    rejected = parse_turns(row[rkey], rkey, mapping, issues)
    if chosen is None or rejected is None or issues.has_errors:
        return None
    shared = 0
    while shared < min(len(chosen), len(rejected)) and \
            (chosen[shared].role, chosen[shared].content) == \
            (rejected[shared].role, rejected[shared].content):
        shared += 1
    prompt = chosen[:shared]
    for key, turns in ((ckey, chosen), (rkey, rejected)):
        rest = turns[shared:]
        if len(rest) != 1 or rest[0].role != ASSISTANT:
            issues.error(key, "without a prompt column, chosen and rejected must be the same "
                              "conversation differing only in the final assistant turn")
            return None
    if not check_order([*prompt, chosen[-1]], issues, ckey, ends_with=ASSISTANT):
        return None
    return _row(prompt, chosen[-1], rejected[-1], issues)


def normalise_preference_sharegpt(row: dict, mapping: Mapping, issues: RowIssues) -> dict | None:
    """``conversations`` ending with a human turn + ``chosen``/``rejected``.

    The answers may be strings (MedicalGPT) or turn objects such as
    ``{"from": "gpt", "value": ...}`` (LLaMA-Factory).
    """
    prompt = conversation_turns(row, mapping, issues, preferred="conversations", ends_with=USER)
    answers = _answers(row, mapping, issues)
    if prompt is None or answers is None:
        return None
    return _row(prompt, *answers, issues)


def normalise_preference_alpaca(row: dict, mapping: Mapping, issues: RowIssues) -> dict | None:
    """``instruction``/``input`` + ``chosen``/``rejected`` strings (LLaMA-Factory ranking).

    Older LLaMA-Factory files put the pair in ``output: [chosen, rejected]``; that
    is accepted when there is no ``chosen`` column.
    """
    prompt = alpaca_prompt(row, mapping, issues)
    out_key = mapping.col("output")
    if mapping.col("chosen") not in row and isinstance(row.get(out_key), list):
        pair = row[out_key]
        if len(pair) != 2:
            issues.error(out_key, "must be [chosen, rejected]")
            return None
        keys = {"chosen": f"{out_key}[0]", "rejected": f"{out_key}[1]"}
        answers = _answers({keys["chosen"]: pair[0], keys["rejected"]: pair[1]},
                           replace(mapping, columns=keys), issues)
    else:
        answers = _answers(row, mapping, issues)
    if prompt is None or answers is None:
        return None
    return _row(prompt, *answers, issues)
