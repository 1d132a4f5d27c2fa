"""Registers the ``orpo`` training stage.

Kept import-light on purpose: ``medllm-tui plugins`` and profile validation load
this module on machines without a GPU stack, so torch and TRL are imported only
when the stage runs (in ``medllm_orpo.training``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from medllm_core.api import (
    ArtifactKind,
    StageContext,
    StageKind,
    StageResult,
    StageSpec,
    TrainingSettings,
    consumes,
    describe_training_plan,
    hookimpl,
)


@dataclass
class ORPOSettings(TrainingSettings):
    """``[stages.orpo]``: every training option of the built-in stages, plus ORPO's own."""

    learning_rate: float = 5e-5
    gradient_accumulation_steps: int = 4
    # The help text is data: the wizard's stage options and `medllm-tui options orpo` show it.
    beta: float = field(default=0.1, metadata={"help": "weight of the odds-ratio term (λ in the ORPO paper)"})


def _run(ctx: StageContext) -> StageResult:
    from medllm_orpo.training import run_orpo

    return run_orpo(ctx)


def _check_inputs(ctx: StageContext) -> None:
    # Same preference file as DPO/SimPO: reject a malformed one before any stage trains.
    if ctx.gate.training_allowed:
        from medllm_core.api import check_preference_inputs, check_training_settings

        check_training_settings(ctx)  # schedule and max_length against transformers and the model's config
        check_preference_inputs(ctx)


@hookimpl
def register_stages(register: Callable[[StageSpec], None]) -> None:
    register(StageSpec(
        name="orpo",
        run=_run,
        kind=StageKind.TRAINING,
        # Continues the SFT adapter and produces its own: that makes it a training method, so the evaluation,
        # the method comparison, the completion check and the reports include it. Not required: when SFT is
        # missing the stage still runs and writes why it skipped.
        consumes=consumes(ArtifactKind.ADAPTER, stage="sft"),
        produces=(ArtifactKind.ADAPTER, ArtifactKind.TRAINING_METRICS),
        settings=ORPOSettings,
        data=("preference",),  # the [data.*] table it reads: declared, so the profile loader accepts it
        description="ORPO from the SFT model (TRL ORPOTrainer; reference-free, plugin example)",
        describe_plan=describe_training_plan,
        check_inputs=_check_inputs,
    ))
