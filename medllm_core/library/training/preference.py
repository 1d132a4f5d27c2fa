"""DPO, SimPO and KTO from the same SFT model, seed and data split (TRL trainers).

Each method continues training the SFT LoRA adapter. DPO and KTO keep a frozen
copy of it as the reference, so the reference model is the SFT model.
SimPO (CPO with loss_type="simpo", cpo_alpha=0) is reference-free.
"""

from __future__ import annotations

from typing import Any

from medllm_core.kernel.context import StageContext
from medllm_core.kernel.errors import MedllmError
from medllm_core.kernel.stages import StageResult
from medllm_core.library.report_paths import ReportPaths
from medllm_core.library.training.engine import TrainingMethod, TrainingPaths, run_training_stage, skip, stage_seed
from medllm_core.library.training.fast_path import prepare_model, prepare_trainer, stage_speed_plan
from medllm_core.library.training.model_loading import resolve_model_path
from medllm_core.library.training.preference_data import kto_train_rows, preference_train_rows
from medllm_core.library.training.recovery import Attempt
from medllm_core.library.training.trl_common import config_kwargs, load_sft_policy

SFT_STAGE = "sft"


def preference_paths(ctx: StageContext, method: str) -> TrainingPaths:
    paths = ReportPaths.of(ctx.run)
    return TrainingPaths.under(paths, method, paths.method_checkpoints(method))


def sft_adapter(ctx: StageContext) -> str:
    result = ctx.results.get(SFT_STAGE)
    if result is None or not result.checkpoint_path:
        raise MedllmError(f"stage '{ctx.name}' needs the SFT checkpoint, but SFT left none")
    return result.checkpoint_path


def _dataset(rows: list[dict]) -> Any:
    from datasets import Dataset

    return Dataset.from_list(rows)


def reference_kwargs(attempt: Attempt) -> dict[str, Any]:
    """Reference log-probs computed once before training, in no-grad batches larger than the training ones."""
    if not attempt.precompute_ref:
        return {}
    return {"precompute_ref_log_probs": True, "precompute_ref_batch_size": attempt.micro_batch_size * 2}


def build_dpo(ctx: StageContext, attempt: Attempt, rows: list[dict], callbacks: list[Any]) -> Any:
    from trl import DPOConfig, DPOTrainer

    s = ctx.settings
    model, tokenizer = load_sft_policy(ctx, attempt, sft_adapter(ctx))
    prepare_model(model, attempt)
    args = DPOConfig(**config_kwargs(ctx, attempt, preference_paths(ctx, "dpo").output_dir, stage_seed(ctx)),
                     beta=s.beta, loss_type=s.loss_type, **reference_kwargs(attempt))
    return prepare_trainer(DPOTrainer(model=model, args=args, train_dataset=_dataset(rows),
                                      processing_class=tokenizer, callbacks=callbacks), attempt)


def build_simpo(ctx: StageContext, attempt: Attempt, rows: list[dict], callbacks: list[Any]) -> Any:
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    s = ctx.settings
    model, tokenizer = load_sft_policy(ctx, attempt, sft_adapter(ctx))
    prepare_model(model, attempt)
    args = CPOConfig(**config_kwargs(ctx, attempt, preference_paths(ctx, "simpo").output_dir, stage_seed(ctx)),
                     loss_type="simpo", cpo_alpha=0.0, beta=s.beta, simpo_gamma=s.simpo_gamma,
                     remove_unused_columns=False)
    return prepare_trainer(CPOTrainer(model=model, args=args, train_dataset=_dataset(rows),
                                      processing_class=tokenizer, callbacks=callbacks), attempt)


def build_kto(ctx: StageContext, attempt: Attempt, rows: list[dict], callbacks: list[Any]) -> Any:
    from trl import KTOConfig, KTOTrainer

    s = ctx.settings
    model, tokenizer = load_sft_policy(ctx, attempt, sft_adapter(ctx))
    prepare_model(model, attempt)
    args = KTOConfig(**config_kwargs(ctx, attempt, preference_paths(ctx, "kto").output_dir, stage_seed(ctx)),
                     beta=s.beta, desirable_weight=s.desirable_weight, undesirable_weight=s.undesirable_weight,
                     **reference_kwargs(attempt))
    return prepare_trainer(KTOTrainer(model=model, args=args, train_dataset=_dataset(rows),
                                      processing_class=tokenizer, callbacks=callbacks), attempt)


METHODS = {
    "dpo": ("DPO", build_dpo, preference_train_rows, 1, "SFT model (frozen copy of the SFT adapter)"),
    "simpo": ("SimPO", build_simpo, preference_train_rows, 1, "none (SimPO is reference-free)"),
    "kto": ("KTO", build_kto, kto_train_rows, 2, "SFT model (frozen copy of the SFT adapter)"),
}


def run_preference(ctx: StageContext, method: str) -> StageResult:
    title, build, load_rows, min_batch, reference = METHODS[method]
    training = TrainingMethod(
        method=method,
        title=title,
        paths=preference_paths(ctx, method),
        load_rows=load_rows,
        build_trainer=build,
        plan_speed=lambda c, rows: stage_speed_plan(c, method, rows, resolve_model_path(c)),
        min_micro_batch=min_batch,
        extra_facts={"reference_model": reference, "starts_from": "sft",
                     "sft_checkpoint": ctx.results[SFT_STAGE].checkpoint_path
                     if ctx.results.get(SFT_STAGE) else None},
    )
    sft = ctx.results.get(SFT_STAGE)
    if ctx.gate.training_allowed and (sft is None or not sft.ok):
        why = "SFT did not run" if sft is None else f"SFT was {sft.status}" + (f": {sft.reason}" if sft.reason else "")
        return skip(ctx, training, f"needs the SFT model; {why}")
    return run_training_stage(ctx, training)
