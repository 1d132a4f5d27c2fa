"""Load one data file for one stage: read, detect the format, normalise, report.

Whole-file problems (missing, not JSON, unknown format, nothing usable) raise
``DataError`` because nothing can proceed; row problems are collected so a user
sees all of them at once, and ``require_valid`` decides whether they are fatal.
"""

from __future__ import annotations

import os
from pathlib import Path

from medllm_core.kernel.errors import DataError, Location
from medllm_core.library.data.conversation import Mapping, type_name
from medllm_core.library.data.dataset_info import read_entry
from medllm_core.library.data.formats import (
    BY_NAME,
    FORMATS,
    Format,
    accepted_stages,
    detect,
    resolve,
    supported_text,
)
from medllm_core.library.data.kto import derive_kto_from_preference
from medllm_core.library.data.model import STAGES, LoadedData, Problem, RowIssues
from medllm_core.library.data.readers import RawRow, read_records

PathArg = str | os.PathLike[str] | None


def load_dataset_file(path: PathArg, stage: str, fmt: str = "auto", *,
                      dataset_info: str | None = None,
                      dataset_name: str | None = None) -> LoadedData:
    """Load ``path`` as ``stage`` data ("sft", "preference" or "kto").

    ``fmt`` forces a format (see ``formats.FORMATS``; short names like
    "sharegpt" resolve per stage). With ``dataset_info`` + ``dataset_name`` the
    LLaMA-Factory entry decides format and column names, and its ``file_name``
    is used unless ``path`` names a file. KTO stage accepts preference data and
    derives KTO rows from it (``derived_from_preference=True``).
    """
    if stage not in STAGES:
        raise DataError(f"unknown stage '{stage}'", hint=f"expected one of: {', '.join(STAGES)}")
    fmt = fmt or "auto"
    mapping = Mapping()
    problems: list[Problem] = []
    declared: Format | None = None
    if dataset_info or dataset_name:
        if not (dataset_info and dataset_name):
            raise DataError("dataset_info and dataset_name must be given together",
                            Location(file=dataset_info or None, key=dataset_name or None))
        entry = read_entry(dataset_info, dataset_name)
        if not path or Path(path).is_dir():
            if entry.data_file is None:
                raise DataError("the dataset entry has no file_name and no data path was given",
                                Location(entry.info_file, key=dataset_name))
            path = entry.data_file
        mapping, declared = entry.mapping, BY_NAME[entry.format_name]
        problems.extend(entry.problems)
        if fmt != "auto" and declared not in (resolve(fmt, stage), resolve(fmt, entry.stage)):
            raise DataError(f"format '{fmt}' conflicts with dataset_info.json, which makes this "
                            f"'{declared.name}' data", Location(entry.info_file, key=dataset_name))
    elif fmt != "auto":
        declared = resolve(fmt, stage)
        if declared is None:
            raise DataError(f"unknown data format '{fmt}'", Location(file=str(path or "") or None),
                            hint=f"supported: auto, {', '.join(f.name for f in FORMATS)}")
    if not path:
        raise DataError("no data file given")
    file = str(path)

    raw, read_problems = read_records(path)
    if not raw and not read_problems:
        raise DataError("empty data file: no rows", Location(file))
    if not raw:  # every row was refused while reading (bad JSON line, lone surrogate, NUL, too deep)
        first = read_problems[0]
        raise DataError(f"no usable rows: all {len(read_problems)} rows have errors; first: {first.message}",
                        first.location)
    chosen = declared or _detect(raw, stage, file)
    if chosen.stage not in accepted_stages(stage):
        raise DataError(f"this is {chosen.stage} data (format '{chosen.name}') but stage "
                        f"'{stage}' needs {stage} data", Location(file),
                        hint=f"{stage} formats: {supported_text(stage)}")

    rows, lines, row_problems = _normalise(raw, chosen, mapping, file)
    row_problems.extend(read_problems)
    row_problems.sort(key=lambda p: p.line or 0)
    problems.extend(row_problems)
    if not rows:
        errors = [p for p in problems if p.severity == "error"]
        first = errors[0]
        raise DataError(f"no usable rows: all {len(raw) + len(read_problems)} rows have errors "
                        f"({len(errors)} errors); first: {first.message}", first.location)
    data = LoadedData(file, chosen.name, chosen.stage, rows, lines, problems)
    if stage == "kto" and chosen.stage == "preference":
        return derive_kto_from_preference(data)
    return data


def _normalise(raw: list[RawRow], fmt: Format, mapping: Mapping,
               file: str) -> tuple[list[dict], list[int], list[Problem]]:
    rows: list[dict] = []
    lines: list[int] = []
    problems: list[Problem] = []
    for item in raw:
        issues = RowIssues()
        out = None
        if isinstance(item.value, dict):
            out = fmt.normalise(item.value, mapping, issues)
        else:
            issues.error(None, f"row must be a JSON object, got {type_name(item.value)}")
        problems.extend(issues.to_problems(file, item.line))
        if out is not None and not issues.has_errors:
            rows.append(out)
            lines.append(item.line)
    return rows, lines, problems


def _detect(raw: list[RawRow], stage: str, file: str) -> Format:
    """Format of the first object row whose keys match one; else a clear error."""
    objects = [item for item in raw if isinstance(item.value, dict)]
    for item in objects:
        found = detect(item.value.keys(), stage)
        if found is not None:
            return found
    if not objects:
        raise DataError(f"rows must be JSON objects, got {type_name(raw[0].value)}",
                        Location(file, raw[0].line))
    first = objects[0]
    raise DataError(f"unknown data format: found keys {sorted(first.value)}, which match no "
                    f"supported {stage} format", Location(file, first.line),
                    hint=f"supported {stage} formats: {supported_text(stage)}; or map your "
                         "columns with a LLaMA-Factory dataset_info.json")


def require_valid(data: LoadedData) -> LoadedData:
    """Raise ``DataError`` for the first error problem (strict mode); else return ``data``."""
    errors = data.errors
    if errors:
        first = errors[0]
        total = f"{len(errors)} error{'s' if len(errors) != 1 else ''} in total"
        valid = f"{len(data.rows)} valid row{'s' if len(data.rows) != 1 else ''}"
        raise DataError(f"{first.message} ({total}; {valid})", first.location)
    return data
