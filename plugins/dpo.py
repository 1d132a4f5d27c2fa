"""Built-in DPO stage (TRL DPOTrainer), starting from the SFT model."""

from __future__ import annotations

from medllm_core.hookspecs import hookimpl
from medllm_core.stages import StageKind, StageSpec
from medllm_core.training.settings import DPOSettings, describe_training_plan


def _run(ctx):
    from medllm_core.training.preference import run_preference

    return run_preference(ctx, "dpo")


def _check(ctx) -> None:
    if ctx.gate.training_allowed:
        from medllm_core.training.preference_data import check_preference_inputs

        check_preference_inputs(ctx)


@hookimpl
def register_stages(register) -> None:
    register(StageSpec(name="dpo", run=_run, kind=StageKind.TRAINING, after=("sft",), settings=DPOSettings,
                       description="DPO from the SFT model (reference = SFT model)",
                       describe_plan=describe_training_plan, check_inputs=_check))
