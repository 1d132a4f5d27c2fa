"""What a training stage does when the hardware or the numbers misbehave.

OOM: halve the micro-batch and double gradient accumulation (effective batch
unchanged); at the smallest micro-batch turn on activation checkpointing; then
shorten max length only if the profile allows it. Loss guard: NaN/inf loss or
gradient norm, or a loss stuck at exactly 0, stops the stage; under fp16 it is
retried in fp32 (or with a lower learning rate, per profile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from transformers import TrainerCallback

GIB = 1024**3
ZERO_LOSS_PATIENCE = 3  # consecutive logged losses of exactly 0.0


@dataclass(frozen=True)
class Attempt:
    """The knobs a retry may change; everything else stays as the profile says."""

    number: int
    micro_batch_size: int
    gradient_accumulation_steps: int
    gradient_checkpointing: bool
    max_length: int
    dtype: str  # bf16 | fp16 | fp32
    learning_rate: float
    # The fast path (training/speed.py); all off = plain TRL.
    attention: str | None = None
    packing: bool = False
    padding_free: bool = False
    liger: bool = False
    lora_upcast_off: bool = False
    uncheckpointed_layers: int = 0
    precompute_ref: bool = False
    packed_length: int | None = None  # SFT: packed rows shorter than max_length (every example still fits)
    host_offload: bool = False  # 4-bit: embedding table in host memory (training/host_embedding.py)
    offload_checkpoints: bool = False  # checkpointed layer inputs in host memory (transformers' offload=True)

    @property
    def effective_batch_size(self) -> int:
        return self.micro_batch_size * self.gradient_accumulation_steps

    @property
    def sequence_length(self) -> int:
        """The length TRL packs (SFT) or truncates to: a shorter packed row never outgrows a halved max_length."""
        return min(self.packed_length, self.max_length) if self.packed_length else self.max_length

    def describe(self) -> dict[str, Any]:
        return {
            "micro_batch_size": self.micro_batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "effective_batch_size": self.effective_batch_size,
            "gradient_checkpointing": self.gradient_checkpointing,
            "max_length": self.max_length,
            "dtype": self.dtype,
            "learning_rate": self.learning_rate,
            **({"attention": self.attention, "packing": self.packing, "padding_free": self.padding_free,
                "liger": self.liger, "uncheckpointed_layers": self.uncheckpointed_layers,
                "precompute_ref": self.precompute_ref} if self.attention else {}),
            **({"packed_length": self.sequence_length} if self.packed_length else {}),
            **({"host_offload": True, "offload_checkpoints": self.offload_checkpoints} if self.host_offload else {}),
        }


def next_after_oom(attempt: Attempt, *, min_micro_batch: int, allow_shorter_max_length: bool,
                   min_max_length: int = 256) -> tuple[Attempt, str] | None:
    """The next setting to try after an OOM, and why; None when nothing is left."""
    if attempt.micro_batch_size // 2 >= min_micro_batch:
        new = replace(attempt, number=attempt.number + 1, micro_batch_size=attempt.micro_batch_size // 2,
                      gradient_accumulation_steps=attempt.gradient_accumulation_steps * 2)
        return new, "halved micro-batch, doubled gradient accumulation (effective batch unchanged)"
    if not attempt.gradient_checkpointing or attempt.uncheckpointed_layers:
        new = replace(attempt, number=attempt.number + 1, gradient_checkpointing=True, uncheckpointed_layers=0)
        return new, f"micro-batch already {attempt.micro_batch_size}: activation checkpointing on every layer"
    # halve the length TRL really uses (a packed row may already be shorter than max_length)
    if allow_shorter_max_length and attempt.sequence_length // 2 >= min_max_length:
        new = replace(attempt, number=attempt.number + 1, max_length=attempt.sequence_length // 2,
                      packed_length=None)
        return new, f"halved max length to {new.max_length} (allowed by the profile)"
    return None


def cuda_memory_facts() -> dict[str, Any]:
    try:
        import torch

        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            return {
                "allocated_gb": round(torch.cuda.memory_allocated() / GIB, 2),
                "reserved_gb": round(torch.cuda.memory_reserved() / GIB, 2),
                "peak_allocated_gb": round(torch.cuda.max_memory_allocated() / GIB, 2),
                "free_gb": round(free / GIB, 2),
                "total_gb": round(total / GIB, 2),
            }
    except Exception as exc:  # reading memory must never hide the OOM itself
        return {"memory": f"unavailable: {exc}"}
    return {"memory": "no CUDA device (CPU run)"}


def release_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    except Exception:
        pass


class LossGuardTripped(RuntimeError):
    def __init__(self, step: int, reason: str, values: dict[str, Any]):
        self.step = step
        self.reason = reason
        self.values = values
        super().__init__(f"loss guard at step {step}: {reason}")


class LossGuardCallback(TrainerCallback):
    """Stops training (by raising out of ``trainer.train``) when the numbers stop meaning anything."""

    def __init__(self) -> None:
        self.zero_run = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        loss = logs.get("loss")
        grad_norm = logs.get("grad_norm")
        values = {"loss": loss, "grad_norm": grad_norm}
        if loss is not None and not math.isfinite(float(loss)):
            raise LossGuardTripped(state.global_step, f"loss is {loss}", values)
        if grad_norm is not None and not math.isfinite(float(grad_norm)):
            raise LossGuardTripped(state.global_step, f"gradient norm is {grad_norm}", values)
        if loss is not None:
            self.zero_run = self.zero_run + 1 if float(loss) == 0.0 else 0
            if self.zero_run >= ZERO_LOSS_PATIENCE:
                raise LossGuardTripped(state.global_step,
                                       f"loss exactly 0 for {self.zero_run} consecutive logs", values)


def next_after_loss_guard(attempt: Attempt, fallback: str, tries_left: int) -> tuple[Attempt, str] | None:
    """fp16 → fp32 first (the usual cause is fp16 overflow), then a 10× lower learning rate if allowed."""
    if tries_left <= 0 or fallback == "none":
        return None
    if attempt.dtype == "fp16" and fallback in ("fp32", "auto"):
        return replace(attempt, number=attempt.number + 1, dtype="fp32"), "retrying in fp32 (fp16 overflow suspected)"
    if fallback in ("lower_lr", "auto"):
        new_lr = attempt.learning_rate / 10
        return replace(attempt, number=attempt.number + 1, learning_rate=new_lr), f"retrying with lr {new_lr:g}"
    return None
