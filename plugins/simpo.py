"""Built-in SimPO stage (TRL CPOTrainer, loss_type="simpo"), starting from the SFT model."""

from __future__ import annotations

from medllm_core.hookspecs import hookimpl
from medllm_core.stages import StageKind, StageSpec
from medllm_core.training.settings import SimPOSettings, describe_training_plan


def _run(ctx):
    from medllm_core.training.preference import run_preference

    return run_preference(ctx, "simpo")


def _check(ctx) -> None:
    if ctx.gate.training_allowed:
        from medllm_core.training.preference_data import check_preference_inputs

        check_preference_inputs(ctx)


@hookimpl
def register_stages(register) -> None:
    register(StageSpec(name="simpo", run=_run, kind=StageKind.TRAINING, after=("sft",), settings=SimPOSettings,
                       description="SimPO from the SFT model (reference-free)",
                       describe_plan=describe_training_plan, check_inputs=_check))
