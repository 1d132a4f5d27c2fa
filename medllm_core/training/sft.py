"""LoRA SFT through TRL's SFTTrainer + PEFT, with metrics and checkpoints per the output contract."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from medllm_core.atomic import replace_directory
from medllm_core.context import StageContext
from medllm_core.errors import ConfigError, Location
from medllm_core.stages import StageResult
from medllm_core.training.callbacks import EventCallback, peak_memory_gb
from medllm_core.training.data_inputs import load_stage_rows
from medllm_core.training.metrics import curve_problems, loss_curve_from_history, write_loss_curve, write_metrics
from medllm_core.training.model_loading import load_model, load_tokenizer, resolve_model_path
from medllm_core.training.precision import model_dtype, trainer_precision_kwargs
from medllm_core.training.settings import TrainingSettings


def sft_paths(ctx: StageContext) -> dict[str, Path]:
    slug = ctx.profile.model_slug
    training = ctx.run.reports_dir / "training"
    output = ctx.run.checkpoints_dir / "layer_b" / f"{slug}_sft"
    return {
        "metrics": training / f"layer_b_{slug}_sft_metrics.json",
        "curve_json": training / f"layer_b_{slug}_sft_loss_curve.json",
        "curve_png": training / f"layer_b_{slug}_sft_loss_curve.png",
        "output_dir": output,
        "final": output / "final",
    }


def lora_config(ctx: StageContext) -> Any:
    from peft import LoraConfig

    lora = ctx.profile.model.lora
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules, task_type="CAUSAL_LM")


def _base_metrics(ctx: StageContext, settings: TrainingSettings, paths: dict[str, Path]) -> dict[str, Any]:
    return {
        "stage": ctx.name,
        "method": "sft",
        "model": ctx.profile.model.name_or_path,
        "model_slug": ctx.profile.model_slug,
        "device": ctx.hardware.describe(),
        "precision": ctx.precision.dtype,
        "settings": {**vars(settings), "effective_batch_size": settings.effective_batch_size},
        "lora": vars(ctx.profile.model.lora),
        "checkpoint": str(paths["final"]),
    }


def write_skipped(ctx: StageContext, reason: str, metrics_path: Path, base: dict[str, Any]) -> StageResult:
    """A skip is still evidence: the metrics file says skipped, and why."""
    write_metrics(metrics_path, {**base, "skipped": True, "reason": reason, "steps": 0, "final_loss": None,
                                 "loss_curve_file": None, "decisions": ctx.stage_decisions()})
    return StageResult.skipped(reason, metrics_path=str(metrics_path))


def run_sft(ctx: StageContext) -> StageResult:
    settings: TrainingSettings = ctx.settings
    paths = sft_paths(ctx)
    base = _base_metrics(ctx, settings, paths)
    if not ctx.gate.training_allowed:
        return write_skipped(ctx, ctx.gate.reason, paths["metrics"], base)

    rows, data_facts = load_stage_rows(ctx, "sft", "sft")
    seed = settings.seed if settings.seed is not None else ctx.profile.run.seed
    model_path = resolve_model_path(ctx)
    ctx.log(f"loading {model_path} ({ctx.precision.dtype})")

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    tokenizer = load_tokenizer(model_path, ctx.profile.model.trust_remote_code)
    model = load_model(model_path, model_dtype(ctx.precision), ctx.profile.model.trust_remote_code)
    config = SFTConfig(
        output_dir=str(paths["output_dir"]),
        max_steps=settings.max_steps,
        num_train_epochs=settings.num_epochs,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.micro_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        max_length=settings.max_length,
        warmup_steps=settings.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
        lr_scheduler_type=settings.lr_scheduler,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        logging_steps=settings.logging_steps,
        gradient_checkpointing=settings.gradient_checkpointing,
        assistant_only_loss=settings.assistant_only_loss,
        seed=seed,
        data_seed=seed,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        **trainer_precision_kwargs(ctx.precision),
    )
    callback = EventCallback(ctx)
    try:
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora_config(ctx),
            callbacks=[callback],
        )
    except ValueError as exc:
        if "generation" in str(exc) and settings.assistant_only_loss:
            raise ConfigError(
                f"the model's chat template cannot mark assistant tokens: {exc}",
                Location(file=str(ctx.profile.source_path), key=f"stages.{ctx.name}.assistant_only_loss"),
                hint="set assistant_only_loss = false to train on whole conversations",
            ) from None
        raise
    # Progress reaches the user through events; the trainer's own printer would garble the display.
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    started = time.monotonic()
    train_output = trainer.train()
    wall = time.monotonic() - started

    staging = paths["final"].with_name(".final.staging")
    trainer.save_model(str(staging))
    tokenizer.save_pretrained(str(staging))
    replace_directory(staging, paths["final"])

    history = trainer.state.log_history
    points = loss_curve_from_history(history)
    write_loss_curve(points, paths["curve_json"], paths["curve_png"], f"SFT loss — {ctx.profile.model_slug}")
    tokens = max((e.get("num_tokens", 0) for e in history), default=0)
    problems = curve_problems(points)
    metrics = {
        **base,
        "skipped": False,
        "reason": "",
        "steps": trainer.state.global_step,
        "final_loss": points[-1]["loss"] if points else None,
        "train_loss": train_output.training_loss,
        "loss_curve_file": str(paths["curve_json"]),
        "loss_curve_png": str(paths["curve_png"]),
        "loss_curve_problems": problems,
        "stopped_by_request": callback.stopped_by_request,
        "train_rows": len(rows),
        "data": data_facts,
        "seed": seed,
        "wall_time_s": round(wall, 2),
        "train_tokens": tokens,
        "tokens_per_second": round(tokens / wall, 1) if wall > 0 and tokens else None,
        "peak_memory": peak_memory_gb(),
        "decisions": ctx.stage_decisions(),
    }
    write_metrics(paths["metrics"], metrics)
    return StageResult.trained(
        metrics_path=str(paths["metrics"]),
        checkpoint_path=str(paths["final"]),
        artifacts={"loss_curve_png": str(paths["curve_png"])},
        summary={"steps": metrics["steps"], "final_loss": metrics["final_loss"]},
    )
