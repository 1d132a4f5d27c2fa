"""LLaMA-Factory ``dataset_info.json`` entries -> file, format and column mapping.

Users coming from LLaMA-Factory already describe their data this way; reading
the same entry saves them from renaming columns in their files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medllm_core.kernel.errors import DataError, Location
from medllm_core.library.data.conversation import Mapping
from medllm_core.library.data.model import WARNING, Problem
from medllm_core.library.data.readers import read_json_document

# LLaMA-Factory column name -> the canonical name our normalisers read.
_ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output",
                   "system": "system", "history": "history"}
_SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system"}
_COMMON_COLUMNS = {"chosen": "chosen", "rejected": "rejected", "kto_tag": "kto_tag"}
_TAGS = ("role_tag", "content_tag", "user_tag", "assistant_tag", "system_tag")
_FORMAT_NAMES = {  # (formatting, stage) -> format name
    ("alpaca", "sft"): "alpaca", ("alpaca", "preference"): "preference_alpaca",
    ("alpaca", "kto"): "kto_alpaca", ("sharegpt", "sft"): "sharegpt",
    ("sharegpt", "preference"): "preference_sharegpt", ("sharegpt", "kto"): "kto_sharegpt",
}

_Fail = Callable[[str, str], DataError]


@dataclass(frozen=True)
class DatasetEntry:
    """What one ``dataset_info.json`` entry says about its data file."""

    name: str
    info_file: str
    data_file: Path | None  # None: the entry has no file_name
    format_name: str
    stage: str
    mapping: Mapping
    problems: tuple[Problem, ...]  # warnings about settings we ignore


def read_entry(info_path: str | os.PathLike[str], name: str) -> DatasetEntry:
    """Read entry ``name``; a folder means ``<folder>/dataset_info.json``.

    Raises ``DataError`` for a missing file or entry and for settings we cannot
    honour (remote datasets, unknown ``formatting``).
    """
    path = Path(info_path)
    if path.is_dir():
        path = path / "dataset_info.json"
    info_file = str(path)
    document = read_json_document(path, "dataset_info.json")
    if not isinstance(document, dict):
        raise DataError("dataset_info.json must be a JSON object of dataset entries",
                        Location(info_file))
    if name not in document:
        names = ", ".join(sorted(document)[:20]) or "none"
        raise DataError(f"dataset '{name}' not found in dataset_info.json",
                        Location(info_file, key=name), hint=f"entries: {names}")
    entry = document[name]

    def fail(key: str, message: str) -> DataError:
        return DataError(message, Location(info_file, key=f"{name}.{key}" if key else name))

    if not isinstance(entry, dict):
        raise fail("", "dataset entry must be a JSON object")
    data_file = _data_file(entry, path.parent, fail)
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt"):
        raise fail("formatting", f"unsupported formatting '{formatting}' "
                                 "(expected alpaca or sharegpt)")
    columns = _str_dict(entry.get("columns", {}), "columns", fail)
    tags = _str_dict(entry.get("tags", {}), "tags", fail)
    ranking = entry.get("ranking", False)
    if not isinstance(ranking, bool):
        raise fail("ranking", "must be true or false")
    stage = "preference" if ranking else "kto" if "kto_tag" in columns else "sft"
    warnings: list[Problem] = []

    def warn(key: str, message: str) -> None:
        warnings.append(Problem(info_file, None, f"{name}.{key}", message, WARNING))

    known = {**(_ALPACA_COLUMNS if formatting == "alpaca" else _SHAREGPT_COLUMNS),
             **_COMMON_COLUMNS}
    mapped: dict[str, str] = {}
    for lf_name, column in columns.items():
        if lf_name in known:
            mapped[known[lf_name]] = column
        else:
            warn(f"columns.{lf_name}", f"ignored: column '{lf_name}' is not supported for "
                                       f"{formatting} data")
    for tag in tags:
        if tag not in _TAGS:
            warn(f"tags.{tag}", "ignored: only role, content, user, assistant and system "
                                "tags are supported; turns with other roles are rejected")
    mapping = Mapping(columns=mapped, **{t: tags[t] for t in _TAGS if t in tags})
    return DatasetEntry(name, info_file, data_file, _FORMAT_NAMES[(formatting, stage)], stage,
                        mapping, tuple(warnings))


def _data_file(entry: dict, folder: Path, fail: _Fail) -> Path | None:
    file_name = entry.get("file_name")
    if file_name is None:
        if any(k in entry for k in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url")):
            raise fail("file_name", "only local datasets (file_name) are supported, not hub "
                                    "or script datasets")
        return None
    if not isinstance(file_name, str) or not file_name:
        raise fail("file_name", "must be a non-empty string")
    return folder / file_name


def _str_dict(value: Any, key: str, fail: _Fail) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise fail(key, "must be an object of string values")
    return value
