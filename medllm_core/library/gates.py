"""The VRAM gate per model tier (the seed's MIN_CUDA_MEM_GB_7B / _14B).

Below the gate, training is skipped with written evidence when
ALLOW_SKIP_TRAINING is true, and the run stops with a clear message when not.
FORCE_SKIP_TRAINING skips training whatever the hardware.
"""

from __future__ import annotations

from typing import Any

from medllm_core.kernel.gate import GateVerdict
from medllm_core.kernel.hardware import HardwareInfo
from medllm_core.kernel.profile import Profile


def required_vram_gb(profile: Profile) -> float:
    tier = profile.model.tier
    if tier == "7b":
        return profile.gates.min_vram_gb_7b
    if tier == "14b":
        return profile.gates.min_vram_gb_14b
    return 0.0


def _memory_preview(profile: Profile, hardware: HardwareInfo) -> Any:
    from medllm_core.library.memory_preview import card_gib_for, preview_memory

    try:
        card, capability = card_gib_for(profile, hardware)
        return preview_memory(profile, card, "sft", None, capability)
    except Exception:  # an estimate must never stop the gate from answering
        return None


def evaluate_gate(profile: Profile, hardware: HardwareInfo) -> GateVerdict:
    gates = profile.gates
    required = required_vram_gb(profile)
    available = hardware.min_gpu_memory_gb
    facts = {
        "tier": profile.model.tier,
        "required_vram_gb": required,
        "available_vram_gb_per_gpu": available,
        "gpus": hardware.describe(),
        "allow_skip_training": gates.allow_skip_training,
        "force_skip_training": gates.force_skip_training,
    }
    if gates.force_skip_training:
        return GateVerdict("skip", "FORCE_SKIP_TRAINING=true: training skipped on request", facts)
    if required <= 0:
        return GateVerdict("pass", f"tier '{profile.model.tier}' has no VRAM gate", facts)
    preview = _memory_preview(profile, hardware)
    if preview is not None:
        facts["memory_estimate"] = preview.describe()
        facts["memory_estimate_gib"] = round(preview.estimate_gib, 1)
        facts["memory_card_gib"] = round(preview.card_gib, 1)
        facts["memory_fits"] = preview.fits
    if hardware.backend == "cuda" and available >= required:
        verdict = f"{available:.1f} GB per GPU >= {required:.0f} GB gate for {profile.model.tier}"
        if preview is not None:
            verdict += f"; SFT {preview.describe()}"
        return GateVerdict("pass", verdict, facts)
    shortfall = (
        "no CUDA GPU detected" if hardware.backend != "cuda"
        else f"{available:.1f} GB per GPU < {required:.0f} GB gate for {profile.model.tier}"
    )
    if gates.allow_skip_training:
        return GateVerdict("skip", f"{shortfall}; ALLOW_SKIP_TRAINING=true, training skipped", facts)
    return GateVerdict(
        "block",
        f"{shortfall}; set ALLOW_SKIP_TRAINING=true to record the skip and continue, "
        "or use a smaller tier / bigger card",
        facts,
    )
