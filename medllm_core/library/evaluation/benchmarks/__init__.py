"""Load the multiple-choice benchmark files people download: CMExam, CMB, MedQA, MedMCQA, CMMLU / C-Eval, Apollo.

``load_benchmark`` reads a file (JSON, JSON Lines or CSV) or a folder of them,
picks each row's format from its fields (or uses the one forced), and returns
the items plus a located ``Problem`` for every row it left out, so nothing is
dropped silently.
"""

from __future__ import annotations

import os

from medllm_core.kernel.errors import DataError, Location
from medllm_core.library.data.model import ERROR, Problem
from medllm_core.library.evaluation.benchmarks.files import read_benchmark_rows
from medllm_core.library.evaluation.benchmarks.formats import READERS, detect
from medllm_core.library.evaluation.mcq import NOT_AN_OBJECT, ItemProblem, McqItem

# "auto" plus every reader; [data.eval_mcq] format accepts these (see kernel.profile.DATA_FORMATS).
MCQ_FORMATS = ("auto", *READERS)

__all__ = ["MCQ_FORMATS", "detect", "load_benchmark"]


def load_benchmark(path: str | os.PathLike[str], fmt: str = "auto") -> tuple[list[McqItem], list[Problem]]:
    """Items and problems of a benchmark file or folder; ``DataError`` when no item is usable."""
    fmt = fmt or "auto"
    if fmt not in MCQ_FORMATS:
        raise DataError(f"unknown multiple-choice format '{fmt}'", Location(file=str(path)),
                        hint=f"supported: {', '.join(MCQ_FORMATS)}")
    rows, problems = read_benchmark_rows(path)
    items: list[McqItem] = []
    for row in rows:
        if not isinstance(row.value, dict):
            problems.append(Problem(row.file, row.line, None, NOT_AN_OBJECT, ERROR))
            continue
        reader = READERS[detect(row.value) if fmt == "auto" else fmt]
        try:
            items.append(reader(row.value, row))
        except ItemProblem as exc:
            problems.append(Problem(row.file, row.line, exc.key, exc.message, ERROR))
    # Reading problems (bad JSON lines, short CSV records) and item problems, in file order.
    problems.sort(key=lambda p: (p.file, p.line or 0))
    if not items:
        first = next((p for p in problems if p.severity == ERROR), None)
        detail = f" (first problem: {first.message})" if first else " (the file holds no items)"
        raise DataError("no usable multiple-choice items" + detail,
                        Location(file=first.file if first else str(path), line=first.line if first else None))
    return items, problems
