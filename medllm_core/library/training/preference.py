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
from medllm_core.library.training.long_rows import describe, fit_rows
from medllm_core.library.training.model_loading import resolve_model_path
from medllm_core.library.training.preference_data import kto_train_rows, preference_train_rows
from medllm_core.library.training.recovery import Attempt
from medllm_core.library.training.trl_common import config_kwargs, load_sft_policy


def starting_stage(ctx: StageContext) -> str:
    """The stage whose adapter this method continues: the one its StageSpec consumes an adapter from."""
    start = ctx.stage.spec.starts_from()
    if start is None:
        raise MedllmError(f"stage '{ctx.name}' declares no adapter to start from (consumes ADAPTER from a stage)")
    return start


def preference_paths(ctx: StageContext, method: str) -> TrainingPaths:
    paths = ReportPaths.of(ctx.run)
    return TrainingPaths.under(paths, method, paths.method_checkpoints(method))


def sft_adapter(ctx: StageContext) -> str:
    start = starting_stage(ctx)
    result = ctx.results.get(start)
    if result is None or not result.checkpoint_path:
        raise MedllmError(f"stage '{ctx.name}' needs the {start} checkpoint, but {start} left none")
    return result.checkpoint_path


def reference_kwargs(attempt: Attempt) -> dict[str, Any]:
    """Reference log-probs computed once before training, in no-grad batches larger than the training ones."""
    if not attempt.precompute_ref:
        return {}
    return {"precompute_ref_log_probs": True, "precompute_ref_batch_size": attempt.micro_batch_size * 2}


def _trainer(ctx: StageContext, attempt: Attempt, rows: list[dict], callbacks: list[Any], trainer_class: Any,
             config_class: Any, **method_options: Any) -> Any:
    """One TRL preference trainer on the starting adapter (trainable), prepared for the fast path."""
    from datasets import Dataset

    model, tokenizer = load_sft_policy(ctx, attempt, sft_adapter(ctx))
    rows = fit_to_length(ctx, tokenizer, rows, attempt.max_length)
    prepare_model(model, attempt)
    output_dir = preference_paths(ctx, ctx.name).output_dir
    args = config_class(**config_kwargs(ctx, attempt, output_dir, stage_seed(ctx)), **method_options)
    return prepare_trainer(trainer_class(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                         processing_class=tokenizer, callbacks=callbacks), attempt)


def fit_to_length(ctx: StageContext, tokenizer: Any, rows: list[dict], max_length: int) -> list[dict]:
    """Prompts cut to the prompt budget (keeping the end), completions to the rest; rows left empty dropped."""
    budget = ctx.settings.prompt_budget(max_length)
    fitted, counts = fit_rows(tokenizer, rows, max_length, budget)
    if counts.prompts_cut or counts.completions_cut or counts.dropped:
        ctx.decide("long_rows", describe(counts, max_length, budget), rows=counts.rows,
                   prompts_cut=counts.prompts_cut, completions_cut=counts.completions_cut, dropped=counts.dropped,
                   max_length=max_length, max_prompt_length=budget)
    if not fitted:
        raise MedllmError(f"stage '{ctx.name}': every row is too long for max length {max_length} "
                          f"(prompt budget {budget}); raise max_length or shorten the prompts")
    return fitted


def build_dpo(ctx: StageContext, attempt: Attempt, rows: list[dict], callbacks: list[Any]) -> Any:
    from trl import DPOConfig, DPOTrainer

    s = ctx.settings
    return _trainer(ctx, attempt, rows, callbacks, DPOTrainer, DPOConfig, beta=s.beta, loss_type=s.loss_type,
                    **reference_kwargs(attempt))


def build_simpo(ctx: StageContext, attempt: Attempt, rows: list[dict], callbacks: list[Any]) -> Any:
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    s = ctx.settings
    trainer_class = CPOTrainer
    if attempt.liger:
        # the fast path with Liger installed: the plan chose the fused LM head + chunked SimPO loss
        from medllm_core.library.training.simpo_fused import fused_simpo_trainer_class

        trainer_class = fused_simpo_trainer_class()
    return _trainer(ctx, attempt, rows, callbacks, trainer_class, CPOConfig, loss_type="simpo", cpo_alpha=0.0,
                    beta=s.beta, simpo_gamma=s.simpo_gamma, remove_unused_columns=False)


def build_kto(ctx: StageContext, attempt: Attempt, rows: list[dict], callbacks: list[Any]) -> Any:
    from trl import KTOConfig, KTOTrainer

    s = ctx.settings
    return _trainer(ctx, attempt, rows, callbacks, KTOTrainer, KTOConfig, beta=s.beta,
                    desirable_weight=s.desirable_weight, undesirable_weight=s.undesirable_weight,
                    **reference_kwargs(attempt))


METHODS = {
    "dpo": ("DPO", build_dpo, preference_train_rows, 1, "SFT model (frozen copy of the SFT adapter)"),
    "simpo": ("SimPO", build_simpo, preference_train_rows, 1, "none (SimPO is reference-free)"),
    "kto": ("KTO", build_kto, kto_train_rows, 2, "SFT model (frozen copy of the SFT adapter)"),
}
# Shown under the method comparison table, where a column means something else for one method.
COMPARISON_NOTES = {
    "kto": "KTO's trainer logs no reward accuracy (its examples are unpaired); its margin is mean desirable reward "
           "minus mean undesirable reward. Without a [data.kto] file its examples are the preference pairs, split "
           "into desirable (chosen) and undesirable (rejected).",
}


def run_preference(ctx: StageContext, method: str) -> StageResult:
    title, build, load_rows, min_batch, reference = METHODS[method]
    start = starting_stage(ctx)
    started = ctx.results.get(start)
    training = TrainingMethod(
        method=method,
        title=title,
        paths=preference_paths(ctx, method),
        load_rows=load_rows,
        build_trainer=build,
        plan_speed=lambda c, rows: stage_speed_plan(c, method, rows, resolve_model_path(c)),
        min_micro_batch=min_batch,
        extra_facts={"title": title, "reference_model": reference, "starts_from": start,
                     **({"comparison_note": COMPARISON_NOTES[method]} if method in COMPARISON_NOTES else {}),
                     "sft_checkpoint": started.checkpoint_path if started else None},
    )
    if ctx.gate.training_allowed and (started is None or not started.ok):
        why = f"stage '{start}' did not run" if started is None else f"stage '{start}' was {started.status}" + (
            f": {started.reason}" if started.reason else "")
        return skip(ctx, training, f"needs the model of stage '{start}'; {why}")
    return run_training_stage(ctx, training)
