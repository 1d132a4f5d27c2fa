"""The memory estimate before anything loads: the dry run, the gate and the wizard show it.

It plans the SFT stage's fast path for a card (the detected one, or the profile's ``min_vram_gb``)
without importing torch, and says what the estimator predicts and whether it fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medllm_core.library.memory_estimate import shape_for_model


@dataclass(frozen=True)
class MemoryPreview:
    card_gib: float
    estimate_gib: float
    fits: bool
    checkpointing: str
    micro_batch: int
    method: str = "sft"
    quantization: str = "none"  # "4bit": a QLoRA base (library/quantization.py)
    shards: int = 1  # > 1: FSDP across this many GPUs, the estimate is per GPU (library/sharding.py)

    def describe(self) -> str:
        verdict = "fits" if self.fits else "does NOT fit even with every layer checkpointed"
        unit = "packed row(s)" if self.method == "sft" else "example(s)"
        base = ", 4-bit base" if self.quantization == "4bit" else ""
        if self.shards > 1:
            base += f" per GPU, FSDP across {self.shards} GPUs"
        return (f"estimated peak {self.estimate_gib:.1f} GiB{base} on a {self.card_gib:.0f} GiB card ({verdict}; "
                f"checkpointing {self.checkpointing}, {self.micro_batch} {unit} per micro-step)")


GB_TO_GIB = 1e9 / 2**30


def card_gib_for(profile: Any, hardware: Any) -> tuple[float, int]:
    """The card to plan for: the detected GPU, else the profile's ``hardware.min_vram_gb`` (a CPU box
    preparing a run for a rented GPU)."""
    if hardware is not None and getattr(hardware, "backend", "") == "cuda" and hardware.gpus:
        return hardware.min_gpu_memory_gb, min(g.capability[0] for g in hardware.gpus)
    capability = float(getattr(profile.hardware, "compute_capability", 0) or 0)
    return float(getattr(profile.hardware, "min_vram_gb", 0) or 0) * GB_TO_GIB, int(capability) if capability else 9


def _setting(settings: Any, name: str, default: Any) -> Any:
    if isinstance(settings, dict):
        return settings.get(name, default)
    return getattr(settings, name, default)


def preview_memory(profile: Any, card_gib: float, stage: str = "sft", settings: Any = None,
                   capability_major: int = 9, quantization: str | None = None,
                   processes: int | None = None) -> MemoryPreview | None:
    """Plan ``stage`` on a CUDA card of ``card_gib``; None when the model's shape is unknown.
    ``quantization`` None: the profile's ``model.quantization``, with ``auto`` resolved as training resolves it."""
    from medllm_core.library.sharding import sharding_for

    if processes is None:  # a dry run elsewhere plans for the profile's machine: as many GPUs as it names
        processes = max(1, int(getattr(profile.hardware, "gpu_count", 0) or 0))
    sharding = sharding_for(profile, card_gib, capability_major, processes)
    if sharding.sharded:
        return plan_preview(profile, card_gib, stage, settings, capability_major, quantization or "none",
                            shards=sharding.shards)
    if quantization is not None:
        return plan_preview(profile, card_gib, stage, settings, capability_major, quantization)
    from medllm_core.library.quantization import decide_quantization

    full = plan_preview(profile, card_gib, stage, settings, capability_major, "none")
    choice = getattr(profile.model, "quantization", "none")
    if choice == "none" or (choice == "auto" and (full is None or full.fits)):
        return full
    four = plan_preview(profile, card_gib, stage, settings, capability_major, "4bit")
    if choice == "4bit":
        return four  # a card too old for 4-bit is refused when the stage starts (quantization.check_capability)
    # only the major version is known here: 7.x counts as 7.0 (no 4-bit), the conservative side for a V100
    decision = decide_quantization(profile, full=full, four_bit=four, card_gib=card_gib,
                                   capability=(capability_major, 0), on_gpu=True)
    return four if decision.four_bit else full


def plan_preview(profile: Any, card_gib: float, stage: str, settings: Any, capability_major: int,
                 quantization: str, shards: int = 1) -> MemoryPreview | None:
    from medllm_core.library.training.speed import SpeedHardware, plan_speed

    shape = shape_for_model(profile.model.name_or_path, profile.model.tier)
    if shape is None or card_gib <= 0:
        return None
    if settings is None:
        settings = (getattr(profile, "stages", {}) or {}).get(stage, {})
    lora = profile.model.lora
    plan = plan_speed(stage, SpeedHardware("cuda", card_gib, capability_major), shape,
                      max_length=int(_setting(settings, "max_length", 2048)),
                      micro_batch_size=int(_setting(settings, "micro_batch_size", 2)),
                      gradient_accumulation_steps=int(_setting(settings, "gradient_accumulation_steps", 8)),
                      lora_rank=lora.r, lora_dropout=lora.dropout, dtype="bf16" if capability_major >= 8 else "fp16",
                      memory_budget_gib=float(_setting(settings, "memory_budget_gib", 0.0)),
                      probe=False, assume_liger=True, quantization=quantization, shards=shards)
    if plan.estimate is None:
        return None
    fits = plan.estimate.total_gib <= (plan.budget_gib or card_gib)
    return MemoryPreview(card_gib, plan.estimate.total_gib, fits, plan.checkpointed_layers_label,
                         plan.micro_batch_size, stage, quantization, shards)
