"""The ``[stages.<training stage>]`` options every training stage accepts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from medllm_core.kernel.schema import SchemaError, closest, option
from medllm_core.library.training.library_names import dpo_loss_types, scheduler_names

LossGuardFallback = Literal["fp32", "lower_lr", "auto", "none"]
Optimize = Literal["auto", "off"]


def require_known_name(value: str, known: tuple[str, ...] | None, key: str, library: str) -> None:
    """``value`` must be one of the names the installed ``library`` accepts (no check without the library)."""
    if known is not None and value not in known:
        guess = closest(value, known)
        raise SchemaError(key, f"{library} has no '{value}'; known: {', '.join(known)}",
                          f"did you mean '{guess}'?" if guess else None)


def require_positive(instance: Any, prefix: str, *names: str) -> None:
    """Each named number must be finite and > 0."""
    for name in names:
        value = getattr(instance, name)
        if not (math.isfinite(value) and value > 0):
            raise SchemaError(f"{prefix}.{name}", "must be > 0")


@dataclass
class TrainingSettings:
    max_steps: int = option(-1, "optimizer steps; > 0 overrides num_epochs, -1 trains num_epochs")
    num_epochs: float = option(1.0, "passes over the training data (used when max_steps is -1)")
    learning_rate: float = option(2e-4, "peak learning rate of the LoRA adapter")
    micro_batch_size: int = option(2, "examples per GPU per forward pass")
    gradient_accumulation_steps: int = option(8, "micro-batches summed before each optimizer step")
    max_length: int = option(2048, "longest example in tokens; longer ones are truncated")
    seed: int | None = option(None, "random seed; unset: the profile's run.seed (same seed across methods)")
    warmup_ratio: float = option(0.03, "fraction of the steps spent warming the learning rate up, in [0, 1)")
    lr_scheduler: str = option("cosine", "learning-rate schedule after warm-up (transformers' SchedulerType)",
                               choices=scheduler_names)
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float = option(1.0, "gradient clipping norm")
    save_steps: int = option(100, "write a checkpoint every this many steps")
    save_total_limit: int = option(2, "checkpoints kept (older ones are deleted)")
    logging_steps: int = option(1, "log the loss every this many steps")
    gradient_checkpointing: bool = option(True, "recompute activations to save memory (slower)")
    oom_max_retries: int = option(3, "out of memory: retries with micro-batch halved / accumulation doubled, "
                                     "then checkpointing")
    allow_shorter_max_length: bool = option(False, "out of memory at micro-batch 1 with checkpointing: "
                                                   "may halve max_length")
    loss_guard: bool = option(True, "stop on NaN/inf loss or grad norm, or a loss stuck at exactly 0")
    loss_guard_fallback: LossGuardFallback = option("fp32", "what a fired loss guard retries with "
                                                            "(auto: fp32, then a lower learning rate)")
    loss_guard_max_retries: int = option(1, "retries after the loss guard fires")
    optimize: Optimize = option("auto", "auto: the fast path on CUDA (packing, varlen attention, Liger, planned "
                                        "checkpointing); off: plain TRL")
    memory_budget_gib: float = option(0.0, "> 0: plan for this much GPU memory instead of the whole card "
                                           "(shared cards)")

    def validate(self, prefix: str) -> None:
        for name in ("micro_batch_size", "gradient_accumulation_steps", "max_length", "save_steps", "logging_steps"):
            if getattr(self, name) <= 0:
                raise SchemaError(f"{prefix}.{name}", "must be > 0")
        if self.max_steps == 0 or self.max_steps < -1:
            raise SchemaError(f"{prefix}.max_steps", "must be -1 (use num_epochs) or > 0")
        require_positive(self, prefix, "learning_rate", "num_epochs")
        if self.oom_max_retries < 0 or self.loss_guard_max_retries < 0:
            raise SchemaError(f"{prefix}.oom_max_retries", "retry counts must be >= 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise SchemaError(f"{prefix}.warmup_ratio", "must be in [0, 1)")
        require_known_name(self.lr_scheduler, scheduler_names(), f"{prefix}.lr_scheduler",
                           "transformers' SchedulerType")
        if self.memory_budget_gib < 0:
            raise SchemaError(f"{prefix}.memory_budget_gib", "must be >= 0 (0 = the whole card)")

    @property
    def effective_batch_size(self) -> int:
        return self.micro_batch_size * self.gradient_accumulation_steps


@dataclass
class SFTSettings(TrainingSettings):
    assistant_only_loss: bool = option(True, "loss on assistant tokens only (LLaMA-Factory's default)")


@dataclass
class PreferenceSettings(TrainingSettings):
    """What the preference methods change from the SFT defaults."""

    learning_rate: float = option(5e-5, "peak learning rate of the LoRA adapter")
    gradient_accumulation_steps: int = option(4, "micro-batches summed before each optimizer step")
    beta: float = option(0.1, "strength of the preference term (how far the policy may move)")
    max_prompt_length: int | None = option(None, "prompts longer than this are cut, keeping their end; "
                                                 "unset: half of max_length")

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        require_positive(self, prefix, "beta")
        if self.max_prompt_length is not None and not 0 < self.max_prompt_length < self.max_length:
            raise SchemaError(f"{prefix}.max_prompt_length", f"must be > 0 and < max_length ({self.max_length})")

    def prompt_budget(self, max_length: int | None = None) -> int:
        """Tokens a prompt may keep (``max_length`` may be an attempt's halved one)."""
        budget = self.max_prompt_length or self.max_length // 2
        if max_length is not None and max_length < self.max_length:  # OOM recovery halved max_length
            budget = min(budget, max_length // 2)
        return max(1, budget)


@dataclass
class DPOSettings(PreferenceSettings):
    loss_type: str = option("sigmoid", "TRL's DPO loss variant (DPOConfig.loss_type)", choices=dpo_loss_types)

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        require_known_name(self.loss_type, dpo_loss_types(), f"{prefix}.loss_type", "TRL's DPOConfig.loss_type")


@dataclass
class SimPOSettings(PreferenceSettings):
    beta: float = option(2.0, "reward scale of SimPO")
    simpo_gamma: float = option(0.5, "target reward margin of SimPO")


@dataclass
class KTOSettings(PreferenceSettings):
    desirable_weight: float = option(1.0, "weight of the desirable (thumbs-up) examples")
    undesirable_weight: float = option(1.0, "weight of the undesirable (thumbs-down) examples")

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        require_positive(self, prefix, "desirable_weight", "undesirable_weight")
        if self.micro_batch_size < 2:
            raise SchemaError(f"{prefix}.micro_batch_size", "KTO needs at least 2 examples per device")


def describe_training_plan(ctx: Any) -> str:
    """One dry-run line for a training stage (kept import-light: no torch here)."""
    s: TrainingSettings = ctx.settings
    steps = f"{s.max_steps} steps" if s.max_steps > 0 else f"{s.num_epochs:g} epoch(s)"
    verdict = {"pass": "train", "skip": f"skip ({ctx.gate.reason})",
               "block": f"BLOCKED, the run would stop ({ctx.gate.reason})"}[ctx.gate.verdict]
    away = profile_card_elsewhere(ctx)
    line = (f"{verdict}: {steps}, micro-batch {s.micro_batch_size} × accumulation {s.gradient_accumulation_steps}, "
            f"max length {s.max_length}, lr {s.learning_rate:g}, LoRA r{ctx.profile.model.lora.r}, "
            f"{away or ctx.precision.dtype}")
    preview = stage_memory_preview(ctx)
    line = f"{line}; {preview.describe()}" if preview else line
    from medllm_core.library.training.length_preview import stage_length_line

    lengths = stage_length_line(ctx)
    return f"{line}; {lengths}" if lengths else line


def profile_card_elsewhere(ctx: Any) -> str:
    """On a machine without the profile's GPUs: the precision and processes the profile's own card would get."""
    hardware = ctx.profile.hardware
    if getattr(ctx.hardware, "backend", "cpu") == "cuda" or not (hardware.gpu_count or hardware.min_vram_gb):
        return ""
    capability = hardware.compute_capability or 8.0
    dtype = "bf16" if capability >= 8 else "fp16 with loss scaling (no fast bf16 below compute capability 8.0)"
    count = max(1, hardware.gpu_count)
    processes = ""
    if count > 1:
        from medllm_core.library.sharding import run_sharding

        how = "FSDP2, weights sharded" if run_sharding(ctx.profile, ctx.hardware, count).sharded else "DDP"
        processes = f", {how} over {count} GPUs (accelerate launch)"
    return (f"this machine lacks the profile's GPU; on the profile's card ({count} × {hardware.min_vram_gb:g} GB"
            + (f", compute capability {hardware.compute_capability:g}" if hardware.compute_capability else "")
            + f"): {dtype}{processes}")


def stage_memory_preview(ctx: Any) -> Any:
    """The estimator's verdict for this stage on the detected card (or the profile's card on a CPU box)."""
    from medllm_core.library.memory_preview import card_gib_for, preview_memory
    from medllm_core.library.sharding import planned_processes

    if getattr(ctx.settings, "optimize", "auto") == "off":
        return None
    card, capability = card_gib_for(ctx.profile, ctx.hardware)
    method = ctx.name if ctx.name in ("sft", "dpo", "simpo", "kto") else "sft"
    return preview_memory(ctx.profile, card, method, ctx.settings, capability,
                          processes=planned_processes(ctx.profile, ctx.hardware))
