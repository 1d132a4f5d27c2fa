"""LoRA SFT through TRL's SFTTrainer + PEFT (paths per the output contract)."""

from __future__ import annotations

from typing import Any

from medllm_core.kernel.context import StageContext
from medllm_core.kernel.errors import ConfigError, Location, MedllmError
from medllm_core.kernel.stages import StageResult
from medllm_core.library.report_paths import ReportPaths, sft_prefix
from medllm_core.library.training.data_inputs import load_stage_rows
from medllm_core.library.training.engine import TrainingMethod, TrainingPaths, run_training_stage, stage_seed
from medllm_core.library.training.fast_path import prepare_model, prepare_trainer, stage_speed_plan
from medllm_core.library.training.long_rows import fit_sft_rows
from medllm_core.library.training.model_loading import resolve_model_path
from medllm_core.library.training.recovery import Attempt
from medllm_core.library.training.trl_common import config_kwargs, load_base, lora_config


def sft_paths(ctx: StageContext) -> TrainingPaths:
    slug = ctx.profile.model_slug
    paths = ReportPaths.of(ctx.run)
    return TrainingPaths.under(paths, sft_prefix(slug), paths.sft_checkpoints(slug))


def drop_untrainable(ctx: StageContext, tokenizer: Any, rows: list[dict], max_length: int) -> list[dict]:
    """Rows over max_length are truncated by TRL; with assistant-only loss, drop those cut before any answer."""
    if not ctx.settings.assistant_only_loss:
        return rows  # the loss covers the whole conversation: a truncated row still trains
    kept, over, dropped = fit_sft_rows(tokenizer, rows, max_length)
    if over:
        ctx.decide("long_rows", f"{over} of {len(rows)} rows are longer than max length {max_length} and are "
                   f"truncated by TRL; {dropped} dropped (the cut leaves no assistant token to train on)",
                   rows=len(rows), over_max_length=over, dropped=dropped, max_length=max_length)
    if not kept:
        raise MedllmError(f"stage '{ctx.name}': no row keeps an assistant token within max length {max_length}; "
                          "raise max_length")
    return kept


def build_sft_trainer(ctx: StageContext, attempt: Attempt, rows: list[dict], callbacks: list[Any]) -> Any:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = load_base(ctx, attempt)
    rows = drop_untrainable(ctx, tokenizer, rows, attempt.max_length)
    prepare_model(model, attempt)
    config = SFTConfig(**config_kwargs(ctx, attempt, sft_paths(ctx).output_dir, stage_seed(ctx)),
                       assistant_only_loss=ctx.settings.assistant_only_loss, packing=attempt.packing)
    try:
        return prepare_trainer(SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                                          processing_class=tokenizer, peft_config=lora_config(ctx),
                                          callbacks=callbacks), attempt)
    except ValueError as exc:
        if "generation" in str(exc) and ctx.settings.assistant_only_loss:
            raise ConfigError(
                f"the model's chat template cannot mark assistant tokens: {exc}",
                Location(file=str(ctx.profile.source_path), key=f"stages.{ctx.name}.assistant_only_loss"),
                hint="set assistant_only_loss = false to train on whole conversations",
            ) from None
        raise


def run_sft(ctx: StageContext) -> StageResult:
    return run_training_stage(ctx, TrainingMethod(
        method="sft",
        title="SFT",
        paths=sft_paths(ctx),
        load_rows=lambda c: load_stage_rows(c, "sft", "sft"),
        build_trainer=build_sft_trainer,
        plan_speed=lambda c, rows: stage_speed_plan(c, "sft", rows, resolve_model_path(c)),
    ))
