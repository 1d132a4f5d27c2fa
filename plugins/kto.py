"""Built-in KTO stage (TRL KTOTrainer), starting from the SFT model."""

from __future__ import annotations

from medllm_core.hookspecs import hookimpl
from medllm_core.stages import StageKind, StageSpec
from medllm_core.training.settings import KTOSettings, describe_training_plan


def _run(ctx):
    from medllm_core.training.preference import run_preference

    return run_preference(ctx, "kto")


def _check(ctx) -> None:
    if ctx.gate.training_allowed:
        from medllm_core.training.preference_data import check_kto_inputs

        check_kto_inputs(ctx)


@hookimpl
def register_stages(register) -> None:
    register(StageSpec(name="kto", run=_run, kind=StageKind.TRAINING, after=("sft",), settings=KTOSettings,
                       description="KTO from the SFT model (reference = SFT model; rows derived from "
                                   "preference pairs unless [data.kto] is given)",
                       describe_plan=describe_training_plan, check_inputs=_check))
