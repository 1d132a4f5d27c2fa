"""The dry run's line per training stage: how many rows training will cut (before any model loads)."""

from __future__ import annotations

from typing import Any

from medllm_core.library.data.lengths import count_lengths, local_tokenizer, skipped
from medllm_core.library.tiny_model import is_tiny_model

DATA_KEYS = {"sft": ("sft", "sft"), "dpo": ("preference", "preference"), "simpo": ("preference", "preference"),
             "kto": ("kto", "kto")}


def stage_length_line(ctx: Any) -> str | None:
    from medllm_core.library.training.data_inputs import load_stage_rows
    from medllm_core.library.training.model_loading import resolve_model_path

    if ctx.name not in DATA_KEYS:
        return None
    key, loader = DATA_KEYS[ctx.name]
    if key == "kto" and not ("kto" in ctx.profile.data and (ctx.profile.data["kto"].path
                                                          or ctx.profile.data["kto"].dataset_info)):
        key, loader = "preference", "preference"  # KTO rows derived from the pairs: same prompts
    if key not in ctx.profile.data:
        return None
    name = ctx.profile.model.name_or_path
    # the tiny model is built locally from the data (seconds); a hub model is only read from the cache
    tokenizer = local_tokenizer(resolve_model_path(ctx) if is_tiny_model(name) else name)
    if tokenizer is None:
        return skipped(name)
    rows, _ = load_stage_rows(ctx, key, loader)
    s = ctx.settings
    budget = s.prompt_budget() if hasattr(s, "prompt_budget") else None
    return count_lengths(tokenizer, rows, s.max_length, budget).describe()
