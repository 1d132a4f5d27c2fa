"""Pieces every TRL-based method shares: config arguments, LoRA, model loading per attempt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medllm_core.kernel.context import StageContext
from medllm_core.library.training.model_loading import load_model, load_tokenizer, resolve_model_path
from medllm_core.library.training.precision import model_dtype, trainer_precision_kwargs
from medllm_core.library.training.quantized_base import load_kwargs, prepare_base, run_quantization
from medllm_core.library.training.recovery import Attempt
from medllm_core.library.training.settings import TrainingSettings


def config_kwargs(ctx: StageContext, attempt: Attempt, output_dir: Path, seed: int) -> dict[str, Any]:
    """TrainingArguments shared by SFTConfig, DPOConfig, CPOConfig and KTOConfig."""
    s: TrainingSettings = ctx.settings
    return {
        "output_dir": str(output_dir),
        "max_steps": s.max_steps,
        "num_train_epochs": s.num_epochs,
        "learning_rate": attempt.learning_rate,
        "warmup_steps": s.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
        "lr_scheduler_type": s.lr_scheduler,
        "weight_decay": s.weight_decay,
        "max_grad_norm": s.max_grad_norm,
        "save_strategy": "steps",
        "save_steps": s.save_steps,
        "save_total_limit": s.save_total_limit,
        "logging_steps": s.logging_steps,
        "seed": seed,
        "data_seed": seed,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        **attempt_kwargs(attempt),
        **trainer_precision_kwargs(attempt.dtype, ctx.hardware.backend == "cuda"),
    }


def attempt_kwargs(attempt: Attempt) -> dict[str, Any]:
    """The TrainingArguments an attempt (and so the fast path) decides: shared with bench/."""
    kwargs = {
        "per_device_train_batch_size": attempt.micro_batch_size,
        "gradient_accumulation_steps": attempt.gradient_accumulation_steps,
        "max_length": attempt.sequence_length,
        checkpointing_argument(): attempt.gradient_checkpointing,
        "use_liger_kernel": attempt.liger,
    }
    if attempt.offload_checkpoints and attempt.gradient_checkpointing and _on_cuda():
        # transformers 5.x: checkpointed layer inputs wait in pinned host memory (training/host_embedding.py).
        # On a CPU-only machine they are in host memory already, and transformers' pinned copy would fail there.
        kwargs["activation_checkpointing_kwargs"] = {"offload": True}
    return kwargs


def _on_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def checkpointing_argument() -> str:
    """transformers 5.x renamed ``gradient_checkpointing`` to ``activation_checkpointing`` (the old name warns
    and goes in v6); older releases know only the old one."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def lora_config(ctx: StageContext) -> Any:
    from peft import LoraConfig

    lora = ctx.profile.model.lora
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules, task_type="CAUSAL_LM")


def load_base(ctx: StageContext, attempt: Attempt) -> tuple[Any, Any]:
    path = resolve_model_path(ctx)
    trust = ctx.profile.model.trust_remote_code
    if attempt.attention:
        from medllm_core.library.training.padding_free import register_varlen_attention

        register_varlen_attention()
    quantization = run_quantization(ctx)
    model = load_model(path, model_dtype(attempt.dtype), trust, attn_implementation=attempt.attention,
                       **load_kwargs(quantization, attempt.dtype))
    if quantization.four_bit:
        model = prepare_base(model, attempt.dtype, attempt.gradient_checkpointing)
    return model, load_tokenizer(path, trust)


def load_sft_policy(ctx: StageContext, attempt: Attempt, sft_adapter: str) -> tuple[Any, Any]:
    """The SFT model as a trainable PEFT model.

    TRL's DPO/KTO trainers copy a pretrained adapter into a frozen "ref"
    adapter, so the reference is the SFT model (not the base), with no merged
    copy of the weights on disk.
    """
    from peft import PeftModel

    base, tokenizer = load_base(ctx, attempt)
    model = PeftModel.from_pretrained(base, sft_adapter, is_trainable=True)
    return model, tokenizer
