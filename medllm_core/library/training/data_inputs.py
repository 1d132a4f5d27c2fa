"""Load and validate a stage's ``[data.<key>]`` input before any GPU time is spent."""

from __future__ import annotations

from typing import Any

from medllm_core.kernel.context import StageContext
from medllm_core.kernel.errors import ConfigError, Location
from medllm_core.library.data import load_dataset_file, require_valid


def load_stage_rows(ctx: StageContext, data_key: str, loader_stage: str) -> tuple[list[dict], dict[str, Any]]:
    profile = ctx.profile
    section = profile.data.get(data_key)
    if section is None or not section.path and not section.dataset_info:
        raise ConfigError(
            f"stage '{ctx.name}' needs training data but the profile has no [data.{data_key}] path",
            Location(file=str(profile.source_path), key=f"data.{data_key}.path"),
        )
    dataset_info = str(profile.resolve_path(section.dataset_info)) if section.dataset_info else None
    path = str(profile.resolve_path(section.path)) if section.path else ""
    loaded = require_valid(load_dataset_file(
        path, loader_stage, section.format, dataset_info=dataset_info, dataset_name=section.dataset_name or None,
    ))
    facts = {
        "path": loaded.path,
        "format": loaded.format,
        "rows": len(loaded.rows),
        "warnings": len([p for p in loaded.problems if p.severity == "warning"]),
    }
    return loaded.rows, facts


def check_stage_data(ctx: StageContext, data_key: str, loader_stage: str) -> None:
    """Fail fast (exit code 2) on bad data, naming file and line."""
    load_stage_rows(ctx, data_key, loader_stage)
