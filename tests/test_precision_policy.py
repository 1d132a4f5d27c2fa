"""Precision policy: bf16 on compute capability >= 8.0, fp16 on 7.x (V100), fp32 on CPU."""

from __future__ import annotations

import torch

from medllm_core.kernel.hardware import GpuInfo, HardwareInfo, choose_precision
from medllm_core.library.training.precision import model_dtype, trainer_precision_kwargs


def _gpus(*capabilities: tuple[int, int]) -> HardwareInfo:
    return HardwareInfo(backend="cuda", gpus=[GpuInfo(i, "GPU", 32.0, c) for i, c in enumerate(capabilities)])


def test_v100_dual_gets_fp16_with_fp32_master_weights():
    decision = choose_precision(_gpus((7, 0), (7, 0)))
    assert decision.dtype == "fp16" and "pre-Ampere" in decision.reason
    assert trainer_precision_kwargs("fp16", on_gpu=True) == {"bf16": False, "fp16": True, "use_cpu": False}
    assert model_dtype("fp16") == torch.float16  # base weights; LoRA weights stay fp32 (PEFT autocast)


def test_ampere_and_hopper_get_bf16_and_a_mixed_box_takes_the_weakest_card():
    assert choose_precision(_gpus((8, 0))).dtype == "bf16"
    assert choose_precision(_gpus((9, 0), (9, 0))).dtype == "bf16"
    assert choose_precision(_gpus((8, 6), (7, 5))).dtype == "fp16"


def test_cpu_is_fp32_and_never_asks_trl_for_bf16():
    decision = choose_precision(HardwareInfo(backend="cpu"))
    assert decision.dtype == "fp32"
    assert trainer_precision_kwargs("fp32", on_gpu=False) == {"bf16": False, "fp16": False, "use_cpu": True}
    assert model_dtype("fp32") == torch.float32
