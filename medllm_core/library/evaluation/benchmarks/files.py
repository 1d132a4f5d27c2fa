"""Benchmark files -> rows that remember their file, line and the subject in the file name.

JSON / JSON Lines go through the shared ``read_records``. CSV (CMExam, CMMLU,
C-Eval) is read with the ``csv`` module because cells hold quoted newlines; the
line reported for a record is the physical line it starts on, which is what an
editor shows. A folder is read file by file (CMMLU ships one CSV per subject).
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medllm_core.kernel.errors import DataError, Location
from medllm_core.kernel.user_files import read_user_text
from medllm_core.library.data.model import ERROR, Problem
from medllm_core.library.data.readers import RawRow, read_records, screen_rows

FOLDER_SUFFIXES = (".csv", ".json", ".jsonl")
# C-Eval names its files "<subject>_val.csv" / "_dev" / "_test"; the split is not part of the subject.
_SPLIT_SUFFIX = re.compile(r"_(val|dev|test|train)$", re.IGNORECASE)


@dataclass(frozen=True)
class SourceRow:
    """One item of a benchmark file, before its format is read."""

    file: str
    line: int
    index: int  # 0-based position in its file: the id when the item has none
    value: Any
    stem: str  # file name without extension or split suffix: a CMMLU file's subject
    split_suffix: bool  # the file name ended in _val/_dev/_test/_train (C-Eval naming)
    in_folder: bool  # read as part of a folder: ids are prefixed with the stem to stay unique


def file_stem(path: Path) -> tuple[str, bool]:
    stem = _SPLIT_SUFFIX.sub("", path.stem)
    return stem, stem != path.stem


def _decode(path: Path) -> str:
    """UTF-8 text (the BOM Excel writes in front of CSVs is dropped); FIFOs refused unopened."""
    return read_user_text(path, "benchmark file", DataError)


def read_csv(path: Path) -> tuple[list[RawRow], list[Problem]]:
    """Header + records as dicts keyed by the header; a record's line is where it starts."""
    file = str(path)
    reader = csv.reader(io.StringIO(_decode(path), newline=""))
    header: list[str] | None = None
    rows: list[RawRow] = []
    problems: list[Problem] = []
    next_line = 1
    try:
        for cells in reader:
            line, next_line = next_line, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = [cell.strip() for cell in cells]
            elif len(cells) != len(header):
                problems.append(Problem(file, line, None, f"wrong number of columns: {len(cells)} cells, "
                                        f"the header has {len(header)}", ERROR))
            else:
                rows.append(RawRow(line, dict(zip(header, cells, strict=True))))
    except csv.Error as exc:
        raise DataError(f"invalid CSV: {exc}", Location(file, reader.line_num)) from exc
    return screen_rows(rows, problems, file)  # NUL characters: the same check as JSON data


def _read_one(path: Path, in_folder: bool) -> tuple[list[SourceRow], list[Problem]]:
    if path.suffix.lower() == ".csv":
        raw, problems = read_csv(path)
    else:
        raw, problems = read_records(path)
    stem, split_suffix = file_stem(path)
    rows = [SourceRow(str(path), r.line, i, r.value, stem, split_suffix, in_folder) for i, r in enumerate(raw)]
    return rows, problems


def read_benchmark_rows(path: str | os.PathLike[str]) -> tuple[list[SourceRow], list[Problem]]:
    """Rows of one file, or of every .csv/.json/.jsonl file directly inside a folder (sorted by name)."""
    target = Path(path)
    if not target.exists():
        raise DataError("benchmark file not found", Location(file=str(path)))
    if not target.is_dir():
        return _read_one(target, in_folder=False)
    files = sorted(p for p in target.iterdir() if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES)
    if not files:
        raise DataError("folder holds no .csv, .json or .jsonl files", Location(file=str(path)))
    rows: list[SourceRow] = []
    problems: list[Problem] = []
    for file in files:
        more_rows, more_problems = _read_one(file, in_folder=True)
        rows.extend(more_rows)
        problems.extend(more_problems)
    return rows, problems
