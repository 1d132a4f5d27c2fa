"""Shared shape of the built-in DPO, SimPO and KTO stage registrations.

Each method stays its own plugin module (so it can be blocked on its own with
MEDLLM_BLOCK_PLUGINS); only the StageSpec construction is shared.
"""

from __future__ import annotations

from collections.abc import Callable

from medllm_core.kernel.artifacts import ArtifactKind, consumes
from medllm_core.kernel.stages import StageKind, StageSpec
from medllm_core.library.training.launch import training_launch_plan
from medllm_core.library.training.settings import describe_training_plan


def preference_stage_spec(method: str, settings: type, description: str,
                          check: Callable[[object], None], data: tuple[str, ...] = ("preference",)) -> StageSpec:
    def run(ctx):
        from medllm_core.library.training.preference import run_preference  # heavy imports only when it runs

        return run_preference(ctx, method)

    def check_inputs(ctx) -> None:
        if ctx.gate.training_allowed:
            from medllm_core.library.training.settings_check import check_training_settings

            check_training_settings(ctx)
            check(ctx)

    # Consumes the SFT adapter without requiring it: with SFT missing the stage still runs and records why
    # it skipped (evidence for the completion check).
    return StageSpec(name=method, run=run, kind=StageKind.TRAINING,
                     consumes=consumes(ArtifactKind.ADAPTER, stage="sft"),
                     produces=(ArtifactKind.ADAPTER, ArtifactKind.TRAINING_METRICS), settings=settings,
                     description=description, data=data, describe_plan=describe_training_plan,
                     check_inputs=check_inputs, launch_plan=training_launch_plan)
