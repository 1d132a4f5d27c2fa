"""Shared shape of the built-in DPO, SimPO and KTO stage registrations.

Each method stays its own plugin module (so it can be blocked on its own with
MEDLLM_BLOCK_PLUGINS); only the StageSpec construction is shared.
"""

from __future__ import annotations

from collections.abc import Callable

from medllm_core.stages import StageKind, StageSpec
from medllm_core.training.settings import describe_training_plan


def preference_stage_spec(method: str, settings: type, description: str,
                          check: Callable[[object], None]) -> StageSpec:
    def run(ctx):
        from medllm_core.training.preference import run_preference  # heavy imports only when it runs

        return run_preference(ctx, method)

    def check_inputs(ctx) -> None:
        if ctx.gate.training_allowed:
            check(ctx)

    return StageSpec(name=method, run=run, kind=StageKind.TRAINING, after=("sft",), settings=settings,
                     description=description, describe_plan=describe_training_plan, check_inputs=check_inputs)
