"""Turn the run's precision decision into TrainingArguments flags TRL accepts."""

from __future__ import annotations

from typing import Any

from medllm_core.hardware import PrecisionDecision


def trainer_precision_kwargs(decision: PrecisionDecision) -> dict[str, Any]:
    # TRL configs default to bf16=True, which raises on CPU: always set both flags explicitly.
    return {
        "bf16": decision.dtype == "bf16",
        "fp16": decision.dtype == "fp16",
        "use_cpu": decision.dtype == "fp32" and not decision.facts.get("gpus"),
    }


def model_dtype(decision: PrecisionDecision) -> Any:
    import torch

    # fp16 training keeps master weights in fp32 (AMP + loss scaling), so load fp32 then.
    return torch.bfloat16 if decision.dtype == "bf16" else torch.float32
