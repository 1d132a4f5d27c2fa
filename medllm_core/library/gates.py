"""The VRAM gate per model tier (the seed's MIN_CUDA_MEM_GB_7B / _14B).

Below the gate, training is skipped with written evidence when
ALLOW_SKIP_TRAINING is true, and the run stops with a clear message when not.
FORCE_SKIP_TRAINING skips training whatever the hardware.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from medllm_core.kernel.gate import GateVerdict
from medllm_core.kernel.hardware import HardwareInfo
from medllm_core.kernel.profile import Profile
from medllm_core.kernel.schema import SchemaError, option
from medllm_core.library.model_gate import custom_model_size, is_known_tier_model


@dataclass
class PreflightSettings:
    """``[stages.preflight]``: the gate and the disk check (the older ``[gates]`` table)."""

    min_vram_gb_7b: float = option(18.0, "GB per GPU a 7B run needs, else training is skipped or the run stops "
                                         "(MIN_CUDA_MEM_GB_7B)")
    min_vram_gb_14b: float = option(36.0, "GB per GPU a 14B run needs (MIN_CUDA_MEM_GB_14B)")
    allow_skip_training: bool = option(False, "below the gate: skip training with written evidence instead of "
                                              "stopping (ALLOW_SKIP_TRAINING)")
    force_skip_training: bool = option(False, "skip training whatever the hardware (FORCE_SKIP_TRAINING)")
    min_free_disk_gb: float = option(50.0, "free disk wanted at the output folder (the tiny tier wants 1 GB)")

    def validate(self, prefix: str) -> None:
        for name in ("min_vram_gb_7b", "min_vram_gb_14b", "min_free_disk_gb"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise SchemaError(f"{prefix}.{name}", "must be >= 0")


PREFLIGHT_ENV = {
    "ALLOW_SKIP_TRAINING": "allow_skip_training",
    "FORCE_SKIP_TRAINING": "force_skip_training",
    "MIN_CUDA_MEM_GB_7B": "min_vram_gb_7b",
    "MIN_CUDA_MEM_GB_14B": "min_vram_gb_14b",
}
PREFLIGHT_ALIASES = {f"gates.{name}": name for name in PreflightSettings.__dataclass_fields__}


def required_vram_gb(profile: Profile, settings: PreflightSettings | None = None) -> float:
    settings = settings or PreflightSettings()
    tier = profile.model.tier
    if not is_known_tier_model(profile.model.name_or_path, tier):
        size = custom_model_size(profile, _sft_max_length(profile))
        if size.required_gb is not None:
            return size.required_gb
    if tier == "7b":
        return settings.min_vram_gb_7b
    if tier == "14b":
        return settings.min_vram_gb_14b
    return 0.0


def _sft_max_length(profile: Profile) -> int:
    sft = (getattr(profile, "stages", {}) or {}).get("sft", {})
    value = sft.get("max_length", 2048) if isinstance(sft, dict) else getattr(sft, "max_length", 2048)
    return int(value or 2048)


def _memory_preview(profile: Profile, hardware: HardwareInfo) -> Any:
    from medllm_core.library.memory_preview import card_gib_for, preview_memory
    from medllm_core.library.sharding import planned_processes

    try:
        card, capability = card_gib_for(profile, hardware)
        return preview_memory(profile, card, "sft", None, capability,
                              processes=planned_processes(profile, hardware))
    except Exception:  # an estimate must never stop the gate from answering
        return None


def evaluate_gate(profile: Profile, hardware: HardwareInfo, settings: PreflightSettings | None = None) -> GateVerdict:
    gates = settings or PreflightSettings()
    required = required_vram_gb(profile, gates)
    available = hardware.min_gpu_memory_gb
    custom = None if is_known_tier_model(profile.model.name_or_path, profile.model.tier) \
        else custom_model_size(profile, _sft_max_length(profile))
    facts: dict[str, Any] = {
        "tier": profile.model.tier,
        "required_vram_gb": required,
        "available_vram_gb_per_gpu": available,
        "gpus": hardware.describe(),
        "allow_skip_training": gates.allow_skip_training,
        "force_skip_training": gates.force_skip_training,
    }
    label = profile.model.tier
    if custom is not None:
        # The tier names another model: say where the gate's number comes from, or that there is none.
        facts["custom_model"] = {"name_or_path": profile.model.name_or_path, "size_known": custom.required_gb
                                 is not None, "reason": custom.reason, **custom.facts}
        facts["gate_source"] = "config.json estimate" if custom.required_gb is not None else f"tier {label}"
        label = "this model" if custom.required_gb is not None else label
    if gates.force_skip_training:
        return GateVerdict("skip", "FORCE_SKIP_TRAINING=true: training skipped on request", facts)
    if custom is not None and custom.required_gb is None:
        facts["model_size_unknown"] = True
        if required <= 0:
            return GateVerdict("pass", f"WARNING {custom.reason}; tier '{label}' has no VRAM gate", facts)
    if required <= 0:
        return GateVerdict("pass", f"tier '{profile.model.tier}' has no VRAM gate", facts)
    if custom is not None and custom.required_gb is not None and profile.hardware.device == "cpu":
        # The profile trains a model of known size on CPU on purpose: no card to gate, but the size is on record.
        # An unknown size keeps its tier's gate (a 7b tier on CPU still blocks).
        return GateVerdict("pass", f"hardware.device = cpu: no VRAM gate; {custom.reason}", facts)
    gate_gb = f"{required:.1f}" if custom is not None else f"{required:.0f}"
    preview = _memory_preview(profile, hardware)
    if preview is not None:
        facts["memory_estimate"] = preview.describe()
        facts["memory_estimate_gib"] = round(preview.estimate_gib, 1)
        facts["memory_card_gib"] = round(preview.card_gib, 1)
        facts["memory_fits"] = preview.fits
        facts["memory_quantization"] = preview.quantization
        facts["memory_shards"] = preview.shards
    if hardware.backend == "cuda" and available >= required:
        verdict = f"{available:.1f} GB per GPU >= {gate_gb} GB gate for {label}"
        if custom is not None:
            verdict += f" ({custom.reason})"
        elif preview is not None:
            verdict += f"; SFT {preview.describe()}"
        return GateVerdict("pass", verdict, facts)
    if hardware.backend == "cuda" and preview is not None and preview.shards > 1 and preview.fits:
        # The tier's gate is for one card holding the whole model; FSDP shards it across the GPUs.
        return GateVerdict("pass", f"{available:.1f} GB per GPU < {gate_gb} GB gate for {label} on one GPU, but "
                                   f"sharded across {preview.shards} GPUs it fits: SFT {preview.describe()}", facts)
    if hardware.backend == "cuda" and preview is not None and preview.quantization == "4bit" and preview.fits:
        # The tier's gate is for a 16-bit base; model.quantization (auto or 4bit) trains a 4-bit one that fits.
        return GateVerdict("pass", f"{available:.1f} GB per GPU < {gate_gb} GB gate for {label} in 16-bit, but a "
                                   f"4-bit QLoRA base fits: SFT {preview.describe()}", facts)
    shortfall = (
        "no CUDA GPU detected" if hardware.backend != "cuda"
        else f"{available:.1f} GB per GPU < {gate_gb} GB gate for {label}"
    )
    if custom is not None:
        shortfall += f" ({custom.reason})"
    if gates.allow_skip_training:
        return GateVerdict("skip", f"{shortfall}; ALLOW_SKIP_TRAINING=true, training skipped", facts)
    return GateVerdict(
        "block",
        f"{shortfall}; set ALLOW_SKIP_TRAINING=true to record the skip and continue, "
        "or use a smaller tier / bigger card",
        facts,
    )
