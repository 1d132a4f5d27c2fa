"""Checks of a training stage's settings that need the training libraries or the model's config.

The profile loader checks ranges and names without importing torch; what only
the libraries can answer is asked here, in the stages' ``check_inputs`` (dry
run included), still before any model loads: whether transformers can build
the chosen schedule with the arguments this tool passes, and whether
``max_length`` fits the model's position embeddings.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from medllm_core.kernel.context import StageContext
from medllm_core.kernel.errors import ConfigError
from medllm_core.kernel.profile import Profile, profile_location


def check_training_settings(ctx: StageContext) -> None:
    settings = ctx.settings
    problem = scheduler_problem(settings.lr_scheduler)
    if problem:
        raise ConfigError(f"transformers cannot build the '{settings.lr_scheduler}' schedule with the arguments "
                          f"medllm passes: {problem}",
                          profile_location(ctx.profile, f"stages.{ctx.name}.lr_scheduler"),
                          hint="nearest valid value: 'cosine'")
    positions = model_max_positions(ctx.profile)
    if positions is not None and settings.max_length > positions:
        raise ConfigError(f"max_length = {settings.max_length} is longer than the model's "
                          f"{positions} positions (max_position_embeddings in its config.json)",
                          profile_location(ctx.profile, f"stages.{ctx.name}.max_length"),
                          hint=f"nearest valid value: {positions}")


@cache
def scheduler_problem(name: str) -> str | None:
    """Why transformers cannot build schedule ``name`` without scheduler arguments (None: it can)."""
    try:
        import torch
        from transformers.optimization import get_scheduler
    except ImportError:
        return None  # no training libraries: the stage cannot run, and says so itself
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
    try:
        get_scheduler(name, optimizer, num_warmup_steps=1, num_training_steps=10)
    except (ValueError, TypeError, KeyError) as exc:
        return str(exc).strip() or type(exc).__name__
    return None


def model_max_positions(profile: Profile) -> int | None:
    """``max_position_embeddings`` of the profile's model, when its config is on this machine (else None)."""
    from medllm_core.library.tiny_model import MAX_POSITIONS, is_tiny_model

    name = profile.model.name_or_path
    if is_tiny_model(name):
        return MAX_POSITIONS
    local = profile.resolve_path(name) if name.startswith((".", "/", "~")) else Path(name)
    config: Path | None = local / "config.json" if (local / "config.json").is_file() else None
    if config is None and "/" in name and not local.exists():
        config = _cached_hub_config(name)
    if config is None:
        return None
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and value > 0 else None


def _cached_hub_config(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id the hub library rejects: the model load reports it properly
        return None
    return Path(found) if isinstance(found, str) else None
