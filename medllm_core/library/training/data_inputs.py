"""Load and validate a stage's ``[data.<key>]`` input before any GPU time is spent."""

from __future__ import annotations

from typing import Any

from medllm_core.kernel.context import StageContext
from medllm_core.kernel.errors import ConfigError, Location
from medllm_core.library.data import data_source, require_valid


def load_stage_rows(ctx: StageContext, data_key: str, loader_stage: str) -> tuple[list[dict], dict[str, Any]]:
    profile = ctx.profile
    source = data_source(profile, data_key)
    if source is None:
        raise ConfigError(
            f"stage '{ctx.name}' needs training data but the profile has no [data.{data_key}] path "
            "(or dataset_info + dataset_name)",
            Location(file=str(profile.source_path), key=f"data.{data_key}.path"),
        )
    loaded = require_valid(source.load(loader_stage))
    facts = {
        "path": loaded.path,
        "format": loaded.format,
        "rows": len(loaded.rows),
        "warnings": len([p for p in loaded.problems if p.severity == "warning"]),
    }
    return loaded.rows, facts


def has_data(ctx: StageContext, data_key: str) -> bool:
    """Whether ``[data.<data_key>]`` names data, as ``path`` or through ``dataset_info``."""
    return data_source(ctx.profile, data_key) is not None


def check_stage_data(ctx: StageContext, data_key: str, loader_stage: str) -> None:
    """Fail fast (exit code 2) on bad data, naming file and line."""
    load_stage_rows(ctx, data_key, loader_stage)
