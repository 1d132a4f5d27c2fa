"""One reader per benchmark format, and the field signatures that pick one automatically.

Each reader turns one row into an ``McqItem`` or raises ``ItemProblem``. They
differ in where the options and answer live (an options dict, one string, one
column per letter, ``opa``…``opd``), how the answer is written (letters, a
1-based index, the option text next to the letter) and which fields name the
source and subject. An explicit ``source`` / ``subject`` field always wins: a
converted file that sets them means them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from medllm_core.library.evaluation.benchmarks.files import SourceRow
from medllm_core.library.evaluation.mcq import (
    ANSWER_KEYS,
    ANSWER_NOT_AMONG_OPTIONS,
    ANSWER_TEXT_MISMATCH,
    ANSWER_UNREADABLE,
    LETTERS,
    MISSING_ANSWER,
    MISSING_QUESTION,
    OPTION_KEYS,
    QUESTION_KEYS,
    SOURCE_KEYS,
    SUBJECT_KEYS,
    ItemProblem,
    McqItem,
    read_answer,
    read_options,
)

Row = Mapping[str, Any]
Reader = Callable[[Row, SourceRow], McqItem]

EXPLANATION_KEYS = ("explanation", "Explanation", "exp", "analysis")
ID_KEYS = ("id", "ID", "qid")
# CMExam's annotation columns: their presence marks a CMExam row even without "Options".
CMEXAM_COLUMNS = ("Disease Group", "Clinical Department", "Medical Discipline", "Competency", "Difficulty level")
MEDMCQA_OPTIONS = ("opa", "opb", "opc", "opd", "ope")

_SINGLE = {"single", "单项选择题", "单选题", "单选"}
_MULTI = {"multi", "multiple", "多项选择题", "多选题", "多选"}
_CJK = re.compile(r"[\u3400-\u9fff]")


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def first(row: Row, keys: tuple[str, ...]) -> tuple[str | None, Any]:
    """(key, value) of the first key with a non-empty value, else ``(None, None)``."""
    return next(((k, row[k]) for k in keys if k in row and _present(row[k])), (None, None))


def _text(row: Row, keys: tuple[str, ...]) -> str:
    return str(first(row, keys)[1] or "").strip()


def _question(row: Row, keys: tuple[str, ...]) -> str:
    _, value = first(row, keys)
    if not isinstance(value, str) or not value.strip():
        raise ItemProblem(keys[0], MISSING_QUESTION)
    return value.strip()


def question_type(value: Any) -> str:
    """"single" / "multi" for the labels benchmarks use; other labels are kept as they are."""
    label = str(value or "").strip()
    lowered = label.lower()
    return "single" if lowered in _SINGLE else "multi" if lowered in _MULTI else label


def _item(row: Row, where: SourceRow, fmt: str, question: str, options: dict[str, str], answer: frozenset[str],
          *, source: tuple[str, ...], subject: tuple[str, ...], default_source: str,
          default_subject: str = "unknown", qtype: Any = None) -> McqItem:
    """The fields every reader fills the same way once it has question, options and answer."""
    _, given_id = first(row, ID_KEYS)
    raw_id = str(where.index if given_id is None else given_id).strip()
    language = _text(row, ("language", "lang")) or ("zh" if _CJK.search(question) else "en")
    return McqItem(
        id=f"{where.stem}/{raw_id}" if where.in_folder else raw_id,
        question=question,
        options=options,
        answer=answer,
        source=_text(row, ("source", *source)) or default_source,
        subject=_text(row, ("subject", *subject)) or default_subject,
        line=where.line,
        question_type=question_type(qtype if qtype is not None else first(row, ("question_type",))[1]),
        explanation=_text(row, EXPLANATION_KEYS),
        language=language,
        format=fmt,
        file=where.file,
    )


def read_generic(row: Row, where: SourceRow) -> McqItem:
    """Any row with a question, options (dict, list or lines) and answer letters under common names."""
    question = _question(row, QUESTION_KEYS)
    key, value = first(row, OPTION_KEYS)
    options = read_options(value, key or "options")
    answer_key, answer_value = first(row, ANSWER_KEYS)
    answer = read_answer(answer_value, options, answer_key or "answer")
    return _item(row, where, "mcq", question, options, answer, source=SOURCE_KEYS, subject=SUBJECT_KEYS,
                 default_source="unknown", qtype=first(row, ("question_type", "choice_type"))[1])


def read_cmexam(row: Row, where: SourceRow) -> McqItem:
    """CMExam: ``Question``, ``Options`` as "A xxx" lines, ``Answer`` letters ("ACD" for multi-answer)."""
    question = _question(row, ("Question", "question"))
    key, value = first(row, ("Options", "options"))
    options = read_options(value, key or "Options")
    answer_key, answer_value = first(row, ("Answer", "answer"))
    answer = read_answer(answer_value, options, answer_key or "Answer")
    return _item(row, where, "cmexam", question, options, answer, source=SOURCE_KEYS,
                 subject=("Clinical Department", "Medical Discipline", *SUBJECT_KEYS), default_source="cmexam")


def read_cmb(row: Row, where: SourceRow) -> McqItem:
    """CMB: ``option`` dict A–E padded with empty strings, ``answer`` letters, ``question_type`` in Chinese."""
    question = _question(row, ("question",))
    key, value = first(row, ("option", "options"))
    options = read_options(value, key or "option")
    answer = read_answer(row.get("answer"), options, "answer")
    return _item(row, where, "cmb", question, options, answer, source=("exam_type",),
                 subject=("exam_subject", "exam_class"), default_source="cmb")


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def read_medqa(row: Row, where: SourceRow) -> McqItem:
    """MedQA (US and Mainland): ``answer_idx`` is the letter; ``answer`` is the option's TEXT, only cross-checked."""
    question = _question(row, ("question",))
    options = read_options(row.get("options"), "options")
    answer = read_answer(row.get("answer_idx"), options, "answer_idx")
    text = row.get("answer")
    if _present(text) and len(answer) == 1:
        expected = options[next(iter(answer))]
        if not _same_text(str(text), expected):
            raise ItemProblem("answer", ANSWER_TEXT_MISMATCH,
                              f"answer_idx {next(iter(answer))} is '{expected[:40]}' but answer is '{str(text)[:40]}'")
    return _item(row, where, "medqa", question, options, answer, source=(), subject=("meta_info",),
                 default_source="medqa")


def _cop_letter(value: Any, letters: dict[str, str]) -> frozenset[str]:
    """MedMCQA's ``cop`` is 1-based: 1 -> A … 4 -> D (as an int or a digit string)."""
    if not _present(value):
        raise ItemProblem("cop", MISSING_ANSWER)
    if isinstance(value, bool) or not re.fullmatch(r"\s*-?\d+(\.0+)?\s*", str(value)):
        raise ItemProblem("cop", ANSWER_UNREADABLE, f"cop '{value}' is not an option number (1 -> A)")
    number = int(float(str(value)))
    if not 1 <= number <= len(letters):
        raise ItemProblem("cop", ANSWER_NOT_AMONG_OPTIONS,
                          f"cop {number} with {len(letters)} options (cop is 1-based: 1 -> A)")
    return frozenset(LETTERS[number - 1])


def read_medmcqa(row: Row, where: SourceRow) -> McqItem:
    """MedMCQA: options in ``opa``…``opd``, ``cop`` the 1-based correct option, ``exp`` the explanation."""
    question = _question(row, ("question",))
    columns = [k for k in MEDMCQA_OPTIONS if k in row]
    options = read_options({LETTERS[i]: row[k] for i, k in enumerate(columns)}, "/".join(columns) or "opa")
    answer = _cop_letter(row.get("cop"), options)
    return _item(row, where, "medmcqa", question, options, answer, source=(), subject=("subject_name",),
                 default_source="medmcqa", qtype=row.get("choice_type"))


def read_cmmlu(row: Row, where: SourceRow) -> McqItem:
    """CMMLU / C-Eval CSV: one column per option letter; the subject is the file name."""
    question = _question(row, ("Question", "question"))
    columns = [letter for letter in LETTERS if letter in row]
    options = read_options({letter: row[letter] for letter in columns}, "/".join(columns) or "A")
    answer_key, answer_value = first(row, ("Answer", "answer"))
    answer = read_answer(answer_value, options, answer_key or "Answer")
    # CMMLU's index column has no header name; C-Eval's is "id".
    unnamed = {"id": row[""]} if _present(row.get("")) and not first(row, ID_KEYS)[0] else {}
    return _item({**row, **unnamed}, where, "cmmlu", question, options, answer, source=(), subject=(),
                 default_source="ceval" if where.split_suffix else "cmmlu", default_subject=where.stem)


def read_apollo(row: Row, where: SourceRow) -> McqItem:
    """Apollo / XMedBench: ``options`` is one string of "(A) …" lines, ``answer`` like "(D)" or "(ACE)"."""
    question = _question(row, ("question",))
    options = read_options(row.get("options"), "options")
    answer = read_answer(row.get("answer"), options, "answer")
    return _item(row, where, "apollo", question, options, answer, source=(), subject=(), default_source="apollo")


READERS: dict[str, Reader] = {
    "mcq": read_generic,
    "cmexam": read_cmexam,
    "cmb": read_cmb,
    "medqa": read_medqa,
    "medmcqa": read_medmcqa,
    "cmmlu": read_cmmlu,
    "apollo": read_apollo,
}


def detect(row: Row) -> str:
    """The format a row's fields point to, most distinctive fields first; "mcq" when none does."""
    if "cop" in row or "opa" in row:
        return "medmcqa"
    if "answer_idx" in row:
        return "medqa"
    if "option" in row:  # singular: CMB's name
        return "cmb"
    if "A" in row and "B" in row:
        return "cmmlu"
    if "Options" in row or any(column in row for column in CMEXAM_COLUMNS):
        return "cmexam"
    if isinstance(row.get("options"), str) and "answer" in row:
        return "apollo"
    return "mcq"
