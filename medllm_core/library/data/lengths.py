"""Rows over ``max_length`` and prompts over the prompt budget, counted with the model's tokenizer.

Shared by ``data check`` and the dry run, so both say before any GPU time how
many rows training will cut or drop (see training/long_rows.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LengthCounts:
    rows: int
    over_max_length: int
    prompts_over_budget: int
    max_length: int
    prompt_budget: int | None

    def describe(self) -> str:
        line = f"lengths: {self.over_max_length} of {self.rows} rows exceed max length {self.max_length}"
        if self.prompt_budget is not None:
            line += f", {self.prompts_over_budget} prompts alone exceed the prompt budget {self.prompt_budget}"
        return line


def local_tokenizer(name_or_path: str) -> Any | None:
    """The tokenizer from a folder or the local HF cache, or None: never downloads."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
    except Exception:  # missing from the cache, no network, broken folder: all mean "not available locally"
        return None


def skipped(name_or_path: str) -> str:
    return f"length check skipped: tokenizer for {name_or_path} not available locally"


def _tokens(tokenizer: Any, value: Any, *, generation_prompt: bool = False) -> int:
    if isinstance(value, str):
        return len(tokenizer(value, add_special_tokens=False)["input_ids"])
    text = tokenizer.apply_chat_template(list(value), tokenize=False, add_generation_prompt=generation_prompt)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _messages(value: Any, role: str) -> list[dict]:
    return [{"role": role, "content": value}] if isinstance(value, str) else list(value)


def _joined(prompt: Any, completion: Any) -> Any:
    if isinstance(prompt, str) and isinstance(completion, str):
        return prompt + completion
    return _messages(prompt, "user") + _messages(completion, "assistant")


def count_lengths(tokenizer: Any, rows: list[dict], max_length: int, prompt_budget: int | None) -> LengthCounts:
    """SFT rows (``messages``) count whole; preference/KTO rows count prompt + their longest completion."""
    over = prompts_over = 0
    for row in rows:
        if "messages" in row:
            over += _tokens(tokenizer, row["messages"]) > max_length
            continue
        prompt = row.get("prompt", "")
        completions = [row[k] for k in ("chosen", "rejected", "completion") if k in row]
        longest = max((_tokens(tokenizer, _joined(prompt, c)) for c in completions), default=0)
        over += longest > max_length
        if prompt_budget is not None:
            prompts_over += _tokens(tokenizer, prompt, generation_prompt=True) > prompt_budget
    return LengthCounts(len(rows), over, prompts_over, max_length, prompt_budget)
