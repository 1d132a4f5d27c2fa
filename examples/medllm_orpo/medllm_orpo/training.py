"""ORPO through the host's training engine.

The engine owns everything that is not ORPO-specific (gate skip, resume, OOM
retries, loss guard, atomic checkpoint, loss curve, metrics file); this module
only loads the data and builds TRL's trainer for one attempt.
"""

from __future__ import annotations

import warnings
from typing import Any

from medllm_core.api import (
    Attempt,
    ReportPaths,
    StageContext,
    StageResult,
    TrainingMethod,
    TrainingPaths,
    config_kwargs,
    load_sft_policy,
    preference_train_rows,
    run_training_stage,
    skip,
    stage_seed,
)

SFT_STAGE = "sft"


def orpo_paths(ctx: StageContext) -> TrainingPaths:
    # The same layout as DPO/SimPO/KTO, so reports and tools find ORPO where they find those.
    paths = ReportPaths.of(ctx.run)
    return TrainingPaths.under(paths, "orpo", paths.method_checkpoints("orpo"))


def sft_checkpoint(ctx: StageContext) -> str | None:
    result = ctx.results.get(SFT_STAGE)
    return result.checkpoint_path if result is not None and result.ok else None


def build_orpo(ctx: StageContext, attempt: Attempt, rows: list[dict], callbacks: list[Any]) -> Any:
    from datasets import Dataset

    with warnings.catch_warnings():
        # TRL warns on every trl.experimental import; the metrics record the trainer instead.
        warnings.filterwarnings("ignore", message="You are importing from 'trl.experimental'")
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    adapter = sft_checkpoint(ctx)
    assert adapter is not None  # run_orpo skips before the engine builds a trainer without one
    # ORPO has no reference model: the policy is the SFT adapter, trained further.
    model, tokenizer = load_sft_policy(ctx, attempt, adapter)
    args = ORPOConfig(**config_kwargs(ctx, attempt, orpo_paths(ctx).output_dir, stage_seed(ctx)),
                      beta=ctx.settings.beta, remove_unused_columns=False)
    return ORPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                       callbacks=callbacks)


def run_orpo(ctx: StageContext) -> StageResult:
    method = TrainingMethod(
        method="orpo",
        title="ORPO",
        paths=orpo_paths(ctx),
        load_rows=preference_train_rows,  # the DPO/SimPO split: same seed, same pairs
        build_trainer=build_orpo,
        extra_facts={"trainer": "trl.experimental.orpo.ORPOTrainer",
                     "reference_model": "none (ORPO is reference-free)", "starts_from": SFT_STAGE,
                     "sft_checkpoint": sft_checkpoint(ctx)},
    )
    sft = ctx.results.get(SFT_STAGE)
    if ctx.gate.training_allowed and (sft is None or not sft.ok):
        why = "SFT did not run" if sft is None else f"SFT was {sft.status}" + (f": {sft.reason}" if sft.reason else "")
        return skip(ctx, method, f"needs the SFT model; {why}")
    return run_training_stage(ctx, method)
