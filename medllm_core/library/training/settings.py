"""The ``[stages.<training stage>]`` options every training stage accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medllm_core.kernel.schema import SchemaError


@dataclass
class TrainingSettings:
    max_steps: int = -1  # > 0 overrides num_epochs
    num_epochs: float = 1.0
    learning_rate: float = 2e-4
    micro_batch_size: int = 2
    gradient_accumulation_steps: int = 8
    max_length: int = 2048
    seed: int | None = None  # None: the profile's run.seed (same seed across methods)
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    save_steps: int = 100
    save_total_limit: int = 2
    logging_steps: int = 1
    gradient_checkpointing: bool = True
    oom_max_retries: int = 3  # OOM: halve micro-batch / double accumulation, then checkpointing
    allow_shorter_max_length: bool = False  # OOM at micro-batch 1 with checkpointing: may halve max_length
    loss_guard: bool = True  # stop on NaN/inf loss or grad norm, or loss stuck at exactly 0
    loss_guard_fallback: str = "fp32"  # fp32 | lower_lr | auto | none
    loss_guard_max_retries: int = 1
    # auto: the fast path on CUDA (packing, varlen attention, Liger, planned checkpointing); off: plain TRL
    optimize: str = "auto"
    memory_budget_gib: float = 0.0  # > 0: plan for this much GPU memory instead of the whole card (shared cards)

    def validate(self, prefix: str) -> None:
        for name in ("micro_batch_size", "gradient_accumulation_steps", "max_length", "save_steps", "logging_steps"):
            if getattr(self, name) <= 0:
                raise SchemaError(f"{prefix}.{name}", "must be > 0")
        if self.max_steps == 0 or self.max_steps < -1:
            raise SchemaError(f"{prefix}.max_steps", "must be -1 (use num_epochs) or > 0")
        if self.learning_rate <= 0:
            raise SchemaError(f"{prefix}.learning_rate", "must be > 0")
        if self.loss_guard_fallback not in ("fp32", "lower_lr", "auto", "none"):
            raise SchemaError(f"{prefix}.loss_guard_fallback", "must be one of fp32, lower_lr, auto, none")
        if self.oom_max_retries < 0 or self.loss_guard_max_retries < 0:
            raise SchemaError(f"{prefix}.oom_max_retries", "retry counts must be >= 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise SchemaError(f"{prefix}.warmup_ratio", "must be in [0, 1)")
        if self.num_epochs <= 0:
            raise SchemaError(f"{prefix}.num_epochs", "must be > 0")
        if self.optimize not in ("auto", "off"):
            raise SchemaError(f"{prefix}.optimize", "must be auto or off")
        if self.memory_budget_gib < 0:
            raise SchemaError(f"{prefix}.memory_budget_gib", "must be >= 0 (0 = the whole card)")

    @property
    def effective_batch_size(self) -> int:
        return self.micro_batch_size * self.gradient_accumulation_steps


@dataclass
class SFTSettings(TrainingSettings):
    assistant_only_loss: bool = True  # loss on assistant tokens only (LLaMA-Factory's default)


@dataclass
class DPOSettings(TrainingSettings):
    learning_rate: float = 5e-5
    gradient_accumulation_steps: int = 4
    beta: float = 0.1
    loss_type: str = "sigmoid"


@dataclass
class SimPOSettings(TrainingSettings):
    learning_rate: float = 5e-5
    gradient_accumulation_steps: int = 4
    beta: float = 2.0
    simpo_gamma: float = 0.5


@dataclass
class KTOSettings(TrainingSettings):
    learning_rate: float = 5e-5
    gradient_accumulation_steps: int = 4
    beta: float = 0.1
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        if self.micro_batch_size < 2:
            raise SchemaError(f"{prefix}.micro_batch_size", "KTO needs at least 2 examples per device")


def describe_training_plan(ctx: Any) -> str:
    """One dry-run line for a training stage (kept import-light: no torch here)."""
    s: TrainingSettings = ctx.settings
    steps = f"{s.max_steps} steps" if s.max_steps > 0 else f"{s.num_epochs:g} epoch(s)"
    verdict = {"pass": "train", "skip": f"skip ({ctx.gate.reason})",
               "block": f"BLOCKED, the run would stop ({ctx.gate.reason})"}[ctx.gate.verdict]
    line = (f"{verdict}: {steps}, micro-batch {s.micro_batch_size} × accumulation {s.gradient_accumulation_steps}, "
            f"max length {s.max_length}, lr {s.learning_rate:g}, LoRA r{ctx.profile.model.lora.r}, "
            f"{ctx.precision.dtype}")
    preview = stage_memory_preview(ctx)
    return f"{line}; {preview.describe()}" if preview else line


def stage_memory_preview(ctx: Any) -> Any:
    """The estimator's verdict for this stage on the detected card (or the profile's card on a CPU box)."""
    from medllm_core.library.memory_preview import card_gib_for, preview_memory

    if getattr(ctx.settings, "optimize", "auto") == "off":
        return None
    card, capability = card_gib_for(ctx.profile, ctx.hardware)
    method = ctx.name if ctx.name in ("sft", "dpo", "simpo", "kto") else "sft"
    return preview_memory(ctx.profile, card, method, ctx.settings, capability)
