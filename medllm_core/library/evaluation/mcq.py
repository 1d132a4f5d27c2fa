"""Multiple-choice items (CMExam / MedQA / CMB style) and answer extraction.

Items come in many shapes: options as a dict, a list, or one string like
"(A) …\\n(B) …"; answers as "C", "(C)", "AC" or "A,C"; optional source and
subject. Every shape is normalised to ``McqItem``. A model's free-text reply is
mapped to option letters by a cascade of rules, most explicit first; the rule
that fired is recorded so extraction failures can be reported and audited.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medllm_core.kernel.errors import DataError, Location
from medllm_core.library.data.model import ERROR, Problem
from medllm_core.library.data.readers import read_records

LETTERS = string.ascii_uppercase[:10]

QUESTION_KEYS = ("question", "Question", "stem", "题干")
OPTION_KEYS = ("options", "Options", "option", "choices", "选项")
ANSWER_KEYS = ("answer_idx", "answer", "Answer", "label", "答案")
SOURCE_KEYS = ("source", "exam_type", "dataset")
SUBJECT_KEYS = ("subject", "exam_subject", "exam_class", "meta_info", "department")


@dataclass(frozen=True)
class McqItem:
    id: str
    question: str
    options: dict[str, str]  # letter -> text, in letter order
    answer: frozenset[str]
    source: str
    subject: str
    line: int

    @property
    def multiple(self) -> bool:
        return len(self.answer) > 1


_OPTION_SPLIT = re.compile(r"(?:^|\n|\s)[\(（]?([A-J])[\)）\.．、:：\s]\s*")


def parse_options(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        options = {str(k).strip().strip("()（）").upper(): str(v).strip() for k, v in value.items()}
    elif isinstance(value, list):
        options = {LETTERS[i]: str(v).strip() for i, v in enumerate(value)}
    elif isinstance(value, str):
        parts = _OPTION_SPLIT.split("\n" + value.strip())
        # split() yields [prefix, letter, text, letter, text, ...]
        options = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    else:
        return {}
    if not options or any(k not in LETTERS for k in options) or any(not v for v in options.values()):
        return {}
    return dict(sorted(options.items()))


def parse_answer(value: Any, letters: set[str]) -> frozenset[str]:
    if isinstance(value, list):
        value = "".join(str(v) for v in value)
    text = str(value).strip().upper()
    found = re.findall(r"[A-J]", re.sub(r"[\s,，、()（）]", "", text)) if re.fullmatch(r"[\sA-J,，、()（）]+", text) \
        else []
    answer = frozenset(found)
    return answer if answer and answer <= letters else frozenset()


def _first(row: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    return next((row[k] for k in keys if k in row and row[k] not in (None, "")), None)


def load_mcq_file(path: str, fmt: str = "auto") -> tuple[list[McqItem], list[Problem]]:
    raw_rows, problems = read_records(path)
    items: list[McqItem] = []
    for index, raw in enumerate(raw_rows):
        row = raw.value
        where = {"file": str(path), "line": raw.line}
        if not isinstance(row, dict):
            problems.append(Problem(**where, key=None, message="item is not a JSON object", severity=ERROR))
            continue
        question = _first(row, QUESTION_KEYS)
        if not isinstance(question, str) or not question.strip():
            problems.append(Problem(**where, key="question", message="missing question text", severity=ERROR))
            continue
        options = parse_options(_first(row, OPTION_KEYS))
        if len(options) < 2:
            problems.append(Problem(**where, key="options", severity=ERROR,
                                    message="options missing or unreadable (need a dict, a list, or '(A) …' lines)"))
            continue
        answer = parse_answer(_first(row, ANSWER_KEYS), set(options))
        if not answer:
            problems.append(Problem(**where, key="answer", severity=ERROR,
                                    message=f"answer must be option letter(s) among {''.join(options)}"))
            continue
        items.append(McqItem(
            id=str(row.get("id", index)),
            question=question.strip(),
            options=options,
            answer=answer,
            source=str(_first(row, SOURCE_KEYS) or "unknown"),
            subject=str(_first(row, SUBJECT_KEYS) or "unknown"),
            line=raw.line,
        ))
    if not items:
        first = next((p for p in problems if p.severity == ERROR), None)
        raise DataError("no usable multiple-choice items" + (f" (first problem: {first.message})" if first else ""),
                        Location(file=str(path), line=first.line if first else None))
    return items, problems


def format_prompt(item: McqItem) -> str:
    """The same prompt for every model: question, lettered options, an instruction to answer with letters."""
    options = "\n".join(f"{letter}. {text}" for letter, text in item.options.items())
    kind = "one or more letters" if item.multiple else "the letter"
    return (f"{item.question}\n{options}\n"
            f"请只回答正确选项的字母 / Answer with {kind} of the correct option only.")


# --- answer extraction -------------------------------------------------------------

_MARKER = re.compile(
    r"(?:正确答案|答案|选项|answer\s+is|answer|correct\s+option\s+is|correct\s+option)\s*(?:是|为|应为|:|：|is)?\s*"
    r"[\(（\[]?\s*([A-J](?:\s*[,，、和/&]?\s*[A-J])*)(?![A-Za-z])",
    re.IGNORECASE,
)
_PAREN = re.compile(r"[\(（\[]([A-J])[\)）\]]")
_LEADING = re.compile(r"^\s*\**([A-J])([\.\)、:：\*]|\s|$)")
_LONE = re.compile(r"(?<![A-Za-z])([A-J])(?![A-Za-z])")


def extract_choice(text: str, letters: set[str]) -> tuple[frozenset[str] | None, str]:
    """(letters chosen, rule that decided) — (None, "none") when no rule is sure."""
    def valid(found: list[str]) -> frozenset[str] | None:
        chosen = frozenset(f.upper() for f in found)
        return chosen if chosen and chosen <= letters else None

    marker = _MARKER.search(text)
    if marker and (chosen := valid(re.findall(r"[A-J]", marker.group(1).upper()))):
        return chosen, "marker"
    lone = {m for m in _LONE.findall(text) if m in letters}
    leading = _LEADING.match(text)
    # "B. …" is an answer; "A or B …" is not: a bare leading letter counts only when it is the only one.
    if leading and (chosen := valid([leading.group(1)])) and (leading.group(2).strip() or lone == set(chosen)):
        return chosen, "leading_letter"
    parens = {m.upper() for m in _PAREN.findall(text)}
    if len(parens) == 1 and (chosen := valid(list(parens))):
        return chosen, "parenthesised_letter"
    if len(lone) == 1:
        return frozenset(lone), "single_letter"
    return None, "none"


def extract_by_option_text(text: str, options: dict[str, str]) -> frozenset[str] | None:
    """Last resort: exactly one option's full text appears in the reply."""
    hits = [letter for letter, option in options.items() if len(option) >= 2 and option in text]
    return frozenset(hits) if len(hits) == 1 else None


def drop_summary(problems: list[Problem]) -> dict[str, Any]:
    """How many items were dropped, grouped by reason, with the first examples (file, line, key, reason)."""
    by_reason: dict[str, int] = {}
    for p in problems:
        by_reason[p.message] = by_reason.get(p.message, 0) + 1
    return {"count": len(problems), "by_reason": by_reason,
            "examples": [{"file": p.file, "line": p.line, "key": p.key, "reason": p.message} for p in problems[:20]]}
