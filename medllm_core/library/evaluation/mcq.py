"""Multiple-choice items (CMExam / MedQA / CMB style) and answer extraction.

Items come in many shapes: options as a dict, a list, or one string like
"(A) …\\n(B) …"; answers as "C", "(C)", "AC" or "A,C"; optional source and
subject. Every shape is normalised to ``McqItem``; the per-benchmark readers live
in ``benchmarks``. An item that cannot be read raises ``ItemProblem`` with a short,
stable reason, so dropped items can be counted by reason (``drop_summary``).
A model's free-text reply is mapped to option letters by a cascade of rules, most
explicit first; the rule that fired is recorded so extraction failures can be
reported and audited.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from medllm_core.library.data.model import ERROR, Problem

LETTERS = string.ascii_uppercase[:10]

QUESTION_KEYS = ("question", "Question", "stem", "题干")
OPTION_KEYS = ("options", "Options", "option", "choices", "选项")
ANSWER_KEYS = ("answer_idx", "answer", "Answer", "label", "答案")
SOURCE_KEYS = ("source", "exam_type", "dataset")
SUBJECT_KEYS = ("subject", "exam_subject", "exam_class", "meta_info", "department")

# Reasons an item is dropped. Kept short and fixed (details go after ": ") so drop
# summaries group by them.
MISSING_QUESTION = "missing question"
OPTIONS_UNREADABLE = "options unreadable"
LETTERS_OUT_OF_ORDER = "option letters out of order"
EMPTY_OPTION = "empty option"
MISSING_ANSWER = "missing answer"
ANSWER_UNREADABLE = "answer unreadable"
ANSWER_NOT_AMONG_OPTIONS = "answer not among options"
ANSWER_TEXT_MISMATCH = "answer text does not match its option"
NOT_AN_OBJECT = "item is not a JSON object"


@dataclass(frozen=True)
class McqItem:
    id: str
    question: str
    options: dict[str, str]  # letter -> text, in letter order
    answer: frozenset[str]
    source: str
    subject: str
    line: int
    # Added with the benchmark readers; defaults keep older constructors working.
    question_type: str = ""  # "single" | "multi" when the file says so, else ""
    explanation: str = ""
    language: str = ""  # "zh" | "en" (from the file, else guessed from the question)
    format: str = ""  # benchmark format the item was read as, e.g. "cmexam"
    file: str = ""  # the file it came from (a folder load reads several)

    @property
    def multiple(self) -> bool:
        return len(self.answer) > 1


class ItemProblem(ValueError):
    """Why one item cannot be used: ``key`` names the field, ``reason`` is one of the constants above."""

    def __init__(self, key: str | None, reason: str, detail: str = "") -> None:
        self.key = key
        self.reason = reason
        self.detail = detail
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


# An option marker must START a line: "A xxx", "A. xxx", "A、xxx", "A: xxx", "A．xxx",
# "(A) xxx", "（A）xxx". Inside a line a capital letter is option text ("Vitamin D
# deficiency", "Type A personality"), which is what the old split-anywhere rule got wrong.
_MARKER_LINE = re.compile(
    r"[ \t\u3000]*(?:[(（][ \t]*([A-J])[ \t]*[)）]|([A-J])(?:[.．、:：)）]|(?=[ \t\u3000]|$)))[ \t\u3000]*(.*)"
)


def _split_option_lines(text: str, key: str) -> list[tuple[str, str]]:
    """``"(A) x\\n(B) y"`` -> ``[("A", "x"), ("B", "y")]``; lines without a marker continue the option above."""
    pairs: list[tuple[str, list[str]]] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line.strip():
            continue
        marker = _MARKER_LINE.fullmatch(line)
        if marker:
            pairs.append((marker.group(1) or marker.group(2), [marker.group(3).strip()]))
        elif pairs:
            pairs[-1][1].append(line.strip())
        else:
            raise ItemProblem(key, OPTIONS_UNREADABLE, "text before the first option marker "
                              "(each option must start a line, e.g. 'A. …' or '(A) …')")
    if not pairs:
        raise ItemProblem(key, OPTIONS_UNREADABLE, "no option markers such as 'A. …' or '(A) …' at line starts")
    for letter, lines in pairs:
        if not lines[0] and len(lines) == 1:
            raise ItemProblem(key, EMPTY_OPTION, f"option {letter} has no text")
    return [(letter, "\n".join(part for part in lines if part)) for letter, lines in pairs]


def _mapping_pairs(value: Mapping[Any, Any], key: str) -> list[tuple[str, str]]:
    pairs = []
    for raw_letter, text in value.items():
        letter = str(raw_letter).strip().strip("()（）").strip().upper()
        if letter not in LETTERS or len(letter) != 1:
            raise ItemProblem(key, OPTIONS_UNREADABLE, f"key '{raw_letter}' is not an option letter A–J")
        # Unused letters are often present with empty text (CMB pads every item to A–E).
        if text is not None and str(text).strip():
            pairs.append((letter, str(text).strip()))
    return sorted(pairs)


def _check_letters(pairs: list[tuple[str, str]], key: str) -> dict[str, str]:
    letters = "".join(letter for letter, _ in pairs)
    if letters != LETTERS[: len(letters)]:
        raise ItemProblem(key, LETTERS_OUT_OF_ORDER,
                          f"got {letters or 'none'}; letters must run A, B, C… without gaps or repeats")
    if len(pairs) == 1:
        raise ItemProblem(key, OPTIONS_UNREADABLE, "only one option found (each option must start a line)")
    if not pairs:
        raise ItemProblem(key, OPTIONS_UNREADABLE, "no options with text")
    return dict(pairs)


def read_options(value: Any, key: str = "options") -> dict[str, str]:
    """Options as ``{letter: text}`` in letter order, or ``ItemProblem`` saying why not."""
    if value is None or value == "":
        raise ItemProblem(key, OPTIONS_UNREADABLE, "no options")
    if isinstance(value, Mapping):
        pairs = _mapping_pairs(value, key)
    elif isinstance(value, list):
        pairs = [(LETTERS[i], str(v).strip()) for i, v in enumerate(value[: len(LETTERS)])
                 if v is not None and str(v).strip()]
        if len(value) > len(LETTERS):
            raise ItemProblem(key, OPTIONS_UNREADABLE, f"{len(value)} options; at most {len(LETTERS)} are supported")
    elif isinstance(value, str):
        pairs = _split_option_lines(value, key)
    else:
        raise ItemProblem(key, OPTIONS_UNREADABLE, f"expected a dict, a list or '(A) …' lines, got "
                          f"{type(value).__name__}")
    return _check_letters(pairs, key)


def parse_options(value: Any) -> dict[str, str]:
    """``read_options`` without the reason: ``{}`` when the options cannot be read."""
    try:
        return read_options(value)
    except ItemProblem:
        return {}


_ANSWER_TEXT = re.compile(r"[\sA-J,，、;；/()（）]+")
_ANSWER_NOISE = re.compile(r"[\s,，、;；/()（）]")


def read_answer(value: Any, letters: Iterable[str], key: str = "answer") -> frozenset[str]:
    """Answer letters (one or several) that must all be among ``letters``, or ``ItemProblem``."""
    if isinstance(value, list):
        value = "".join(str(v) for v in value)
    text = "" if value is None else str(value).strip()
    if not text:
        raise ItemProblem(key, MISSING_ANSWER)
    bare = _ANSWER_NOISE.sub("", text)
    # One lower-case letter ("c") is a letter; a lower-case word ("bad") is answer text, not B, A, D.
    if len(bare) == 1 and bare.upper() in LETTERS:
        text = bare = bare.upper()
    if not bare or not _ANSWER_TEXT.fullmatch(text):
        shown = text if len(text) <= 40 else text[:37] + "…"
        raise ItemProblem(key, ANSWER_UNREADABLE, f"'{shown}' is not option letters")
    answer = frozenset(bare)
    allowed = set(letters)
    if not answer <= allowed:
        missing = "".join(sorted(answer - allowed))
        raise ItemProblem(key, ANSWER_NOT_AMONG_OPTIONS, f"{missing} not in {''.join(sorted(allowed))}")
    return answer


def parse_answer(value: Any, letters: set[str]) -> frozenset[str]:
    """``read_answer`` without the reason: an empty set when the answer cannot be used."""
    try:
        return read_answer(value, letters)
    except ItemProblem:
        return frozenset()


def load_mcq_file(path: str, fmt: str = "auto") -> tuple[list[McqItem], list[Problem]]:
    """Items of a benchmark file (or folder of CSVs) and a ``Problem`` for every item left out.

    ``fmt`` is "auto" (each item's fields decide) or a name from ``benchmarks.MCQ_FORMATS``.
    Raises ``DataError`` only when no item is usable.
    """
    # Imported here: the readers build McqItem from this module, so a top-level import would be circular.
    from medllm_core.library.evaluation.benchmarks import load_benchmark

    return load_benchmark(path, fmt)


def problem_reason(problem: Problem) -> str:
    """The stable part of a problem's message (before ": "), which drop summaries group by."""
    return problem.message.split(": ", 1)[0]


def drop_summary(problems: Iterable[Problem], examples: int = 20) -> dict[str, Any]:
    """Items left out of an evaluation: how many, how many per reason, and the first few with their place."""
    dropped = [p for p in problems if p.severity == ERROR]
    by_reason = Counter(problem_reason(p) for p in dropped)
    return {
        "count": len(dropped),
        "by_reason": dict(by_reason.most_common()),
        "examples": [{"file": p.file, "line": p.line, "key": p.key, "reason": problem_reason(p),
                      "message": p.message} for p in dropped[:examples]],
    }


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
# A reply that is nothing but option letters ("C", "ACD", "A, C, D") is an answer: what exam-tuned
# models and the loglik protocol's candidates look like.
_LETTERS_ONLY = re.compile(r"^\s*([A-J](?:\s*[,，、]?\s*[A-J])*)\s*[。.]?\s*$")


def extract_choice(text: str, letters: set[str]) -> tuple[frozenset[str] | None, str]:
    """(letters chosen, rule that decided) — (None, "none") when no rule is sure."""
    def valid(found: list[str]) -> frozenset[str] | None:
        chosen = frozenset(f.upper() for f in found)
        return chosen if chosen and chosen <= letters else None

    if (only := _LETTERS_ONLY.match(text)) and (chosen := valid(re.findall(r"[A-J]", only.group(1)))):
        return chosen, "letters_only"
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
