"""Open-ended and safety prompt files (JSON/JSONL, one prompt per item)."""

from __future__ import annotations

from dataclasses import dataclass

from medllm_core.kernel.errors import DataError, Location
from medllm_core.library.data.model import ERROR, Problem
from medllm_core.library.data.readers import read_records


@dataclass(frozen=True)
class PromptItem:
    id: str
    prompt: str
    category: str  # safety category, or the topic of an open question
    reference: str  # reference answer points / expected behaviour ("" when absent)
    language: str
    line: int


def load_prompt_file(path: str) -> list[PromptItem]:
    raw_rows, problems = read_records(path)
    items: list[PromptItem] = []
    for index, raw in enumerate(raw_rows):
        row = raw.value
        text = row.get("prompt") or row.get("question") if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            problems.append(Problem(str(path), raw.line, "prompt", "needs a non-empty 'prompt' or 'question'", ERROR))
            continue
        items.append(PromptItem(
            id=str(row.get("id", index)),
            prompt=text.strip(),
            category=str(row.get("category") or row.get("topic") or "general"),
            reference=str(row.get("reference") or row.get("expected_behaviour") or ""),
            language=str(row.get("language", "")),
            line=raw.line,
        ))
    errors = [p for p in problems if p.severity == ERROR]
    if errors:
        first = errors[0]
        raise DataError(f"{first.message} ({len(errors)} problem(s) in total)",
                        Location(file=first.file, line=first.line, key=first.key))
    if not items:
        raise DataError("no prompts in file", Location(file=str(path)))
    return items
