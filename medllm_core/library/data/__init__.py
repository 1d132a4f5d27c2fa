"""Data loading: JSON/JSONL files in SFT, preference and KTO formats -> TRL rows.

Every loader returns normalised conversational rows plus located problems; see
``load_dataset_file`` for the entry point and ``formats.FORMATS`` for what is
understood.
"""

from __future__ import annotations

from medllm_core.library.data.formats import FORMATS
from medllm_core.library.data.kto import derive_kto_from_preference
from medllm_core.library.data.loader import load_dataset_file, require_valid
from medllm_core.library.data.model import STAGES, LoadedData, Problem
from medllm_core.library.data.sources import DataSource, data_source, data_sources

FORMAT_NAMES: tuple[str, ...] = tuple(f.name for f in FORMATS)

__all__ = [
    "FORMAT_NAMES",
    "DataSource",
    "STAGES",
    "LoadedData",
    "Problem",
    "data_source",
    "data_sources",
    "derive_kto_from_preference",
    "load_dataset_file",
    "require_valid",
]
