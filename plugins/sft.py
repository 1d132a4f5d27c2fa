"""Built-in LoRA SFT stage (TRL SFTTrainer + PEFT)."""

from __future__ import annotations

from medllm_core.kernel.artifacts import ArtifactKind
from medllm_core.kernel.hookspecs import hookimpl
from medllm_core.kernel.stages import StageKind, StageSpec
from medllm_core.library.training.launch import training_launch_plan
from medllm_core.library.training.settings import SFTSettings, describe_training_plan


def _run(ctx):
    from medllm_core.library.training.sft import run_sft  # heavy imports only when the stage runs

    return run_sft(ctx)


def _check_inputs(ctx) -> None:
    if ctx.gate.training_allowed:
        from medllm_core.library.training.data_inputs import check_stage_data
        from medllm_core.library.training.settings_check import check_training_settings

        check_training_settings(ctx)
        check_stage_data(ctx, "sft", "sft")


@hookimpl
def register_stages(register) -> None:
    register(StageSpec(
        name="sft",
        run=_run,
        kind=StageKind.TRAINING,
        produces=(ArtifactKind.ADAPTER, ArtifactKind.TRAINING_METRICS),
        settings=SFTSettings,
        data=("sft",),
        description="LoRA supervised fine-tuning (TRL SFTTrainer + PEFT)",
        describe_plan=describe_training_plan,
        check_inputs=_check_inputs,
        launch_plan=training_launch_plan,
    ))
