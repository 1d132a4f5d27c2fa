"""KTO input formats -> ``{"prompt": [...], "completion": [...], "label": bool}``.

Also derives KTO rows from preference pairs, so a user with only DPO data can
still run KTO (chosen = desirable, rejected = undesirable).
"""

from __future__ import annotations

from dataclasses import replace

from medllm_core.kernel.errors import DataError, Location
from medllm_core.library.data.conversation import (
    ASSISTANT,
    Mapping,
    Turn,
    completion_turn,
    parse_text,
    prompt_turns,
    to_messages,
    type_name,
)
from medllm_core.library.data.model import LoadedData, RowIssues
from medllm_core.library.data.sft import alpaca_prompt, conversation_turns

LABEL_KEYS = ("label", "kto_tag")  # TRL name, LLaMA-Factory name


def _label(row: dict, mapping: Mapping, issues: RowIssues) -> bool | None:
    """The desirable flag must be a real JSON boolean: ``"false"`` is truthy in Python."""
    key = next((mapping.col(k) for k in LABEL_KEYS if mapping.col(k) in row), None)
    if key is None:
        issues.error(mapping.col("label"), "missing required key (label or kto_tag)")
        return None
    value = row[key]
    if not isinstance(value, bool):
        issues.error(key, f"must be true or false, got {type_name(value)}")
        return None
    return value


def _row(prompt: list[Turn], completion: Turn, label: bool) -> dict:
    return {"prompt": to_messages(prompt), "completion": to_messages([completion]),
            "label": label}


def normalise_kto(row: dict, mapping: Mapping, issues: RowIssues) -> dict | None:
    """TRL style ``{"prompt", "completion", "label"}`` (strings or messages)."""
    prompt = prompt_turns(row, mapping.col("prompt"), mapping, issues)
    completion = completion_turn(row, mapping.col("completion"), mapping, issues)
    label = _label(row, mapping, issues)
    if prompt is None or completion is None or label is None:
        return None
    return _row(prompt, completion, label)


def _normalise_conversation(row: dict, mapping: Mapping, issues: RowIssues,
                            preferred: str) -> dict | None:
    turns = conversation_turns(row, mapping, issues, preferred=preferred, ends_with=ASSISTANT)
    label = _label(row, mapping, issues)
    if turns is None or label is None:
        return None
    return _row(turns[:-1], turns[-1], label)


def normalise_kto_messages(row: dict, mapping: Mapping, issues: RowIssues) -> dict | None:
    """LLaMA-Factory style ``{"messages": [...ending with assistant], "label"}``."""
    return _normalise_conversation(row, mapping, issues, "messages")


def normalise_kto_sharegpt(row: dict, mapping: Mapping, issues: RowIssues) -> dict | None:
    """LLaMA-Factory style ``{"conversations": [...ending with gpt], "kto_tag"}``."""
    return _normalise_conversation(row, mapping, issues, "conversations")


def normalise_kto_alpaca(row: dict, mapping: Mapping, issues: RowIssues) -> dict | None:
    """LLaMA-Factory alpaca with a ``kto_tag`` column."""
    prompt = alpaca_prompt(row, mapping, issues)
    output = parse_text(row, mapping.col("output"), issues)
    label = _label(row, mapping, issues)
    if prompt is None or output is None or label is None:
        return None
    return _row(prompt, Turn(ASSISTANT, output, mapping.col("output")), label)


def derive_kto_from_preference(data: LoadedData) -> LoadedData:
    """Unpair preference rows: chosen -> ``label=True``, rejected -> ``label=False``.

    Pairs stay adjacent so any prefix of the data is balanced between desirable
    and undesirable examples (KTO wants both).
    """
    if data.stage != "preference":
        raise DataError(f"cannot derive KTO rows from {data.stage} data; need preference "
                        "data (prompt/chosen/rejected)", Location(file=data.path))
    rows: list[dict] = []
    lines: list[int] = []
    for row, line in zip(data.rows, data.source_lines, strict=True):
        for answer, label in ((row["chosen"], True), (row["rejected"], False)):
            rows.append({"prompt": [dict(m) for m in row["prompt"]],
                         "completion": [dict(m) for m in answer], "label": label})
            lines.append(line)
    return replace(data, stage="kto", rows=rows, source_lines=lines,
                   problems=list(data.problems), derived_from_preference=True)
