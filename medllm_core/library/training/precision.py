"""Turn a precision choice into TrainingArguments flags and a model dtype TRL accepts."""

from __future__ import annotations

from typing import Any


def trainer_precision_kwargs(dtype: str, on_gpu: bool) -> dict[str, Any]:
    # TRL configs default to bf16=True, which raises on CPU: always set both flags explicitly.
    return {"bf16": dtype == "bf16", "fp16": dtype == "fp16", "use_cpu": not on_gpu}


def model_dtype(dtype: str) -> Any:
    import torch

    # fp16: base weights in fp16 (a 7B model must fit a V100), LoRA weights stay fp32
    # (PEFT's autocast_adapter_dtype) and AMP scales the loss.
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype, torch.float32)
