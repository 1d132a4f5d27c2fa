"""Fit preference / KTO rows into ``max_length`` before TRL sees them.

TRL 1.16's DPOConfig, CPOConfig and KTOConfig have no ``max_prompt_length``:
a prompt that fills ``max_length`` leaves the completion zero tokens, and
SimPO's length-normalised log-probs then divide by zero (NaN at step 1). So,
like LLaMA-Factory and older TRL, we cut the prompt to ``max_prompt_length``
keeping its END (the question sits last), cut completions to the rest keeping
their START, and drop rows that would still leave nothing to train on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COMPLETION_KEYS = ("chosen", "rejected", "completion")


@dataclass
class FitCounts:
    rows: int = 0
    prompts_cut: int = 0
    completions_cut: int = 0
    dropped: int = 0


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _text(tokenizer: Any, value: Any, *, prompt: Any = None) -> str:
    """What TRL tokenises for this field: the chat template for conversational rows."""
    if isinstance(value, str):
        return value
    if prompt is None:
        return tokenizer.apply_chat_template(value, tokenize=False, add_generation_prompt=True)
    whole = tokenizer.apply_chat_template(list(prompt) + list(value), tokenize=False)
    head = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
    return whole[len(head):] if whole.startswith(head) else whole


def _length(tokenizer: Any, value: Any, *, prompt: Any = None) -> int:
    return len(_ids(tokenizer, _text(tokenizer, value, prompt=prompt)))


def _cut_content(tokenizer: Any, text: str, excess: int, *, keep_end: bool) -> str:
    ids = _ids(tokenizer, text)
    kept = ids[excess:] if keep_end else ids[:max(0, len(ids) - excess)]
    return tokenizer.decode(kept, skip_special_tokens=False)


def _cut(tokenizer: Any, value: Any, budget: int, *, keep_end: bool, prompt: Any = None) -> Any:
    """``value`` shortened to at most ``budget`` tokens, or None when nothing of it would be left."""
    for _ in range(8):  # re-measure: the chat template and merges across the cut shift a few tokens
        excess = _length(tokenizer, value, prompt=prompt) - budget
        if excess <= 0:
            return value
        if isinstance(value, str):
            value = _cut_content(tokenizer, value, excess, keep_end=keep_end)
            if not value:
                return None
            continue
        order = range(len(value)) if keep_end else range(len(value) - 1, -1, -1)
        messages = [dict(m) for m in value]
        for i in order:  # take tokens from the earliest (prompt) or latest (completion) message first
            content = messages[i].get("content")
            if not isinstance(content, str) or not content:
                continue
            have = len(_ids(tokenizer, content))
            take = min(have, excess)
            messages[i]["content"] = _cut_content(tokenizer, content, take, keep_end=keep_end)
            excess -= take
            if excess <= 0:
                break
        if all(not m.get("content") for m in messages if isinstance(m.get("content"), str)):
            return None
        value = messages
    return value if _length(tokenizer, value, prompt=prompt) <= budget else None


def fit_rows(tokenizer: Any, rows: list[dict], max_length: int, max_prompt_length: int) -> tuple[list[dict], FitCounts]:
    """Rows cut to fit, and how many prompts / completions were cut and rows dropped."""
    counts = FitCounts(rows=len(rows))
    kept: list[dict] = []
    for row in rows:
        if "prompt" not in row:
            kept.append(row)
            continue
        prompt = _cut(tokenizer, row["prompt"], max_prompt_length, keep_end=True)
        if prompt is None:
            counts.dropped += 1
            continue
        new = dict(row, prompt=prompt)
        prompt_cut = prompt is not row["prompt"]
        budget = max_length - _length(tokenizer, prompt)
        completion_cut = False
        for key in COMPLETION_KEYS:
            if key not in row:
                continue
            fitted = _cut(tokenizer, row[key], budget, keep_end=False, prompt=prompt) if budget > 0 else None
            if fitted is None:
                break
            completion_cut = completion_cut or fitted is not row[key]
            new[key] = fitted
        else:
            counts.prompts_cut += prompt_cut
            counts.completions_cut += completion_cut
            kept.append(new)
            continue
        counts.dropped += 1
    return kept, counts


def describe(counts: FitCounts, max_length: int, max_prompt_length: int) -> str:
    return (f"{counts.prompts_cut} of {counts.rows} prompts cut to {max_prompt_length} tokens (keeping the end), "
            f"{counts.completions_cut} completions cut to fit max length {max_length}, "
            f"{counts.dropped} rows dropped (nothing left to train on)")


def fit_sft_rows(tokenizer: Any, rows: list[dict], max_length: int) -> tuple[list[dict], int, int]:
    """TRL truncates SFT rows to ``max_length`` itself; rows whose first assistant turn starts past the cut
    have no assistant token left (nothing to train on with assistant-only loss), so they are dropped here.
    Returns the kept rows, how many are longer than ``max_length``, and how many were dropped."""
    kept: list[dict] = []
    over = dropped = 0
    for row in rows:
        messages = row.get("messages")
        if not isinstance(messages, list):
            kept.append(row)
            continue
        over += _whole(tokenizer, messages) > max_length
        first = next((i for i, m in enumerate(messages) if m.get("role") == "assistant"), None)
        if first is not None and _length(tokenizer, messages[:first]) >= max_length:
            dropped += 1
            continue
        kept.append(row)
    return kept, over, dropped


def _whole(tokenizer: Any, messages: list[dict]) -> int:
    return len(_ids(tokenizer, tokenizer.apply_chat_template(messages, tokenize=False)))
