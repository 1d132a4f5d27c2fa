"""The VRAM gate of a model that is not its tier's known model (issue 15 item 5).

``model.tier`` names a known model (tiny: the locally built tiny model; 7b/14b: Qwen2.5-7B/14B). A profile whose
``name_or_path`` was changed (``--model /my/folder``, ``--set model.name_or_path=...``) keeps the old tier, so
a 7B folder under a cpu_tiny profile used to pass the tiny tier's "no gate". Here such a model gets its gate
from its own ``config.json``: shape → parameter count → the memory estimator's least LoRA SFT peak (every
layer checkpointed, one row of max_length, fused loss). No config reachable (a hub id not in the local HF
cache; we never go to the network for a gate): the size is unknown and the gate says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medllm_core.library.memory_estimate import (
    GIB,
    TrainingShape,
    estimate_peak,
    shape_from_config,
)
from medllm_core.library.tiny_model import is_tiny_model

# Which name belongs to which tier: a name that matches none is a custom model for the gate.
TIER_MODEL_KEYS = {"7b": "qwen2.5-7b", "14b": "qwen2.5-14b"}
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "fp32": 4, "fp16": 2, "bf16": 2}


@dataclass
class CustomModelSize:
    """What the gate knows about a custom model's size; ``required_gb`` None: unknown."""

    config_path: str | None
    required_gb: float | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def is_known_tier_model(name_or_path: str, tier: str) -> bool:
    """Whether the profile's model is the one its tier stands for (its gate then comes from the tier)."""
    if tier == "tiny":
        return is_tiny_model(name_or_path)
    key = TIER_MODEL_KEYS.get(tier)
    return key is not None and key in name_or_path.lower() and not name_or_path.startswith((".", "/", "~"))


def find_config(profile: Any) -> Path | None:
    """The model's config.json: in its local folder, or in the local HF cache for a hub id (no network)."""
    name = profile.model.name_or_path
    local = profile.resolve_path(name)
    if (local / "config.json").is_file():
        return local / "config.json"
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # no huggingface_hub, a malformed id: the size is simply unknown
        return None
    return Path(found) if isinstance(found, str) else None


def _weight_bytes(config: dict[str, Any]) -> int:
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16").replace("torch.", "")
    # Training loads in the run's 16-bit precision unless the checkpoint is fp32-only.
    return DTYPE_BYTES.get(dtype, 2)


def custom_model_size(profile: Any, max_length: int = 2048) -> CustomModelSize:
    config_path = find_config(profile)
    name = profile.model.name_or_path
    if config_path is None:
        return CustomModelSize(None, reason=f"model size unknown: no config.json for '{name}' locally or in the "
                                            "HF cache (offline); the gate cannot check VRAM")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        shape = shape_from_config(config, name)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return CustomModelSize(str(config_path), reason=f"model size unknown: {config_path} is not a usable "
                                                        f"config.json ({type(error).__name__}: {error})")
    weight_bytes = _weight_bytes(config)
    train = TrainingShape("sft", tokens_per_micro_step=max_length, checkpointed_layers=shape.layers,
                          fused_loss=True, lora_rank=int(profile.model.lora.r),
                          lora_dropout=profile.model.lora.dropout > 0, weight_bytes=weight_bytes)
    estimate = estimate_peak(shape, train)
    required_gb = estimate.total_gib * GIB / 1e9  # the gate compares decimal GB per GPU
    facts = {
        "config_path": str(config_path),
        "hidden_size": shape.hidden, "num_hidden_layers": shape.layers, "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.kv_heads, "vocab_size": shape.vocab, "intermediate_size": shape.intermediate,
        "weight_bytes": weight_bytes, "parameters": shape.total_params,
        "estimate": estimate.as_dict(), "estimate_max_length": max_length,
    }
    reason = (f"custom model ({shape.total_params / 1e9:.2f}B parameters from {config_path}): least LoRA SFT peak "
              f"{estimate.describe()}")
    return CustomModelSize(str(config_path), round(required_gb, 2), facts, reason)

