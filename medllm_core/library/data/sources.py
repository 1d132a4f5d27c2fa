"""Where a ``[data.<key>]`` table's rows come from: one code path for every table.

A table names its file either as ``path`` or as ``dataset_info`` +
``dataset_name`` (a LLaMA-Factory ``dataset_info.json`` entry). Each caller
used to test ``section.path`` itself, so a table given the second way was
silently ignored (``[data.kto]`` fell back to rows derived from the preference
pairs). Every reader of ``profile.data`` goes through ``data_source`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medllm_core.kernel.errors import DataError, Location
from medllm_core.library.data.dataset_info import read_entry
from medllm_core.library.data.loader import load_dataset_file
from medllm_core.library.data.model import LoadedData


@dataclass(frozen=True)
class DataSource:
    """A ``[data.<key>]`` table with its paths resolved against the profile's folder."""

    key: str
    path: str  # "" when the dataset_info entry's file_name names the file
    format: str
    dataset_info: str | None
    dataset_name: str | None

    @property
    def file(self) -> str:
        """The data file itself: ``path``, or the entry's ``file_name`` (may raise ``DataError``)."""
        if self.path and not self.dataset_info:
            return self.path
        if not (self.dataset_info and self.dataset_name):
            raise DataError("dataset_info and dataset_name must be given together",
                            Location(file=self.dataset_info, key=f"data.{self.key}"))
        entry = read_entry(self.dataset_info, self.dataset_name)
        if self.path and not Path(self.path).is_dir():
            return self.path  # like load_dataset_file: a named file wins over file_name
        if entry.data_file is None:
            raise DataError("the dataset entry has no file_name and no data path was given",
                            Location(entry.info_file, key=self.dataset_name))
        return str(entry.data_file)

    def load(self, loader_stage: str) -> LoadedData:
        """Rows as ``loader_stage`` data ("sft", "preference" or "kto"), problems collected."""
        return load_dataset_file(self.path, loader_stage, self.format, dataset_info=self.dataset_info,
                                 dataset_name=self.dataset_name)


def data_source(profile: Any, key: str) -> DataSource | None:
    """The table ``[data.<key>]`` of ``profile``, or ``None`` when it names no data at all.

    A table with only ``dataset_name`` (or only ``dataset_info``) is returned, so
    loading it says what is missing instead of the table being skipped.
    """
    section = profile.data.get(key)
    if section is None or not (section.path or section.dataset_info or section.dataset_name):
        return None
    return DataSource(
        key=key,
        path=str(profile.resolve_path(section.path)) if section.path else "",
        format=section.format,
        dataset_info=str(profile.resolve_path(section.dataset_info)) if section.dataset_info else None,
        dataset_name=section.dataset_name or None,
    )


def data_sources(profile: Any) -> list[DataSource]:
    """Every table of the profile that names data, in profile order."""
    return [source for key in profile.data if (source := data_source(profile, key)) is not None]
