"""Glue between a training stage and the fast path: plan it from the stage's hardware, model and data,
and apply the attempt's choices to the model and trainer (hooks and callbacks only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medllm_core.kernel.context import StageContext
from medllm_core.kernel.distributed import fsdp_shards
from medllm_core.library.memory_estimate import shape_for_model
from medllm_core.library.training.quantized_base import keep_adapters_fp32, run_quantization
from medllm_core.library.training.recovery import Attempt
from medllm_core.library.training.settings import TrainingSettings
from medllm_core.library.training.speed import SpeedHardware, SpeedPlan, plan_speed

TOKEN_SAMPLE_ROWS = 256  # SFT rows tokenized to learn the data's mean length (preference stages count all)


def stage_hardware(ctx: StageContext) -> SpeedHardware:
    hw = ctx.hardware
    gpus = hw.gpus
    return SpeedHardware(backend=hw.backend, total_gib=hw.min_gpu_memory_gb,
                         capability_major=min((g.capability[0] for g in gpus), default=0),
                         name=gpus[0].name if gpus else "")


def _row_tokens(tokenizer: Any, row: dict, keys: tuple[str, ...]) -> list[int]:
    """Token counts of a row's sequences: messages (SFT) or prompt+chosen / prompt+rejected (pairs)."""
    def count(messages: Any) -> int:
        if isinstance(messages, str):
            return len(tokenizer(messages)["input_ids"])
        ids = tokenizer.apply_chat_template(messages, tokenize=True)
        # transformers 5 returns a BatchEncoding here; 4.x returned the id list
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)
    if "messages" in row:
        return [count(row["messages"])]
    prompt = row.get("prompt", [])
    return [count(prompt + row[k]) if isinstance(prompt, list) else count(prompt) + count(row[k])
            for k in keys if k in row]


def row_token_totals(tokenizer: Any, rows: list[dict], keys: tuple[str, ...], cap: int, *, sample: bool) -> list[int]:
    """Tokens per row (its sequences together, each capped at ``cap``), largest first; ``sample``: only the
    first TOKEN_SAMPLE_ROWS rows."""
    counted = rows[:TOKEN_SAMPLE_ROWS] if sample else rows
    return sorted((sum(min(n, cap) for n in _row_tokens(tokenizer, row, keys)) for row in counted), reverse=True)


def longest_sequence(tokenizer: Any, rows: list[dict], keys: tuple[str, ...], cap: int) -> int:
    """Tokens of the longest single sequence (an SFT conversation, or a prompt with one completion) over all
    rows, capped at ``cap`` (TRL truncates there anyway): stops at the first row that reaches the cap."""
    longest = 0
    for row in rows:
        longest = max(longest, *(min(n, cap) for n in _row_tokens(tokenizer, row, keys)), 0)
        if longest >= cap:
            break
    return longest


def stage_speed_plan(ctx: StageContext, method: str, rows: list[dict], model_path: str | None = None) -> SpeedPlan:
    s: TrainingSettings = ctx.settings
    hw = stage_hardware(ctx)
    lora = ctx.profile.model.lora
    local = Path(model_path) if model_path and Path(model_path).exists() else None
    shape = shape_for_model(ctx.profile.model.name_or_path, ctx.profile.model.tier, local)
    common = {"max_length": s.max_length, "micro_batch_size": s.micro_batch_size,
              "gradient_accumulation_steps": s.gradient_accumulation_steps, "lora_rank": lora.r,
              "lora_dropout": lora.dropout, "dtype": ctx.precision.dtype, "optimize": s.optimize,
              "memory_budget_gib": s.memory_budget_gib, "quantization": run_quantization(ctx).mode,
              "shards": fsdp_shards()}
    if shape is None:
        plan = SpeedPlan(enabled=False, micro_batch_size=s.micro_batch_size,
                         gradient_accumulation_steps=s.gradient_accumulation_steps)
        plan.decide("path", "plain TRL path: the model's shape is unknown (no config.json), so no memory estimate")
        return plan
    if hw.backend != "cuda" or s.optimize == "off":
        return plan_speed(method, hw, shape, **common)
    from medllm_core.library.training.model_loading import load_tokenizer

    tokenizer = load_tokenizer(model_path or ctx.profile.model.name_or_path, ctx.profile.model.trust_remote_code)
    keys = ("chosen", "rejected") if method in ("dpo", "simpo") else ("completion",)
    # Preference stages size micro-batches by their longest rows, so every row is counted: a longer pair past a
    # sample would be a micro-step the estimate never saw (an out-of-memory mid-run). SFT packs rows of
    # max_length, so a sample gives its mean; its longest sequence is found over all rows below.
    per_row = row_token_totals(tokenizer, rows, keys, s.max_length, sample=method == "sft")
    mean = sum(per_row) / len(per_row) if per_row else None
    # SFT: packed rows may be shorter than max_length only if no example is longer; fused SimPO: one pair's
    # logits over the padded length. Both need the longest single sequence of every row, not of the sample.
    longest = longest_sequence(tokenizer, rows, keys, s.max_length) if method in ("sft", "simpo") else None

    def worst_tokens(micro_batch: int) -> int:
        # the longest rows, as many as a micro-batch holds (a bound for this data, not a guess)
        longest = per_row[:micro_batch]
        return int(sum(longest) + (micro_batch - len(longest)) * (longest[0] if longest else s.max_length))

    return plan_speed(method, hw, shape, worst_tokens=worst_tokens, mean_tokens_per_example=mean,
                      longest_example_tokens=longest, **common)


def prepare_model(model: Any, attempt: Attempt) -> list[Any]:
    """Apply the attempt's model-level choices before the trainer is built (the DPO/KTO reference
    pass runs inside the trainer's constructor). Returns the hooks to keep alive."""
    from medllm_core.library.training.padding_free import PaddingFreeBackbone, disable_lora_input_upcast

    keep: list[Any] = []
    if attempt.host_offload:
        from medllm_core.library.training.host_embedding import install_host_embedding

        install_host_embedding(model)
    if attempt.lora_upcast_off:
        disable_lora_input_upcast(model)
    if attempt.padding_free:
        keep.append(PaddingFreeBackbone(model))
    return keep


def prepare_trainer(trainer: Any, attempt: Attempt) -> Any:
    """Apply the attempt's choices that need the built trainer (PEFT layers exist only after it)."""
    from medllm_core.library.training.padding_free import disable_lora_input_upcast
    from medllm_core.library.training.selective_checkpointing import selective_checkpointing_callback

    keep_adapters_fp32(trainer.model)  # a 4-bit base: undo TRL's bf16 cast of the LoRA weights
    if attempt.lora_upcast_off:
        disable_lora_input_upcast(trainer.model)
    if attempt.gradient_checkpointing and attempt.uncheckpointed_layers:
        trainer.add_callback(selective_checkpointing_callback(attempt.uncheckpointed_layers))
    return trainer
