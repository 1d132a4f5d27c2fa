"""Built-in evaluation stage: base model and every trained variant on the same items."""

from __future__ import annotations

from medllm_core.evaluation.settings import EvalSettings
from medllm_core.hookspecs import hookimpl
from medllm_core.stages import StageKind, StageSpec


def _run(ctx):
    from medllm_core.evaluation.run_eval import run_evaluation

    return run_evaluation(ctx)


def _check(ctx) -> None:
    from medllm_core.evaluation.run_eval import check_eval_inputs

    check_eval_inputs(ctx)


@hookimpl
def register_stages(register) -> None:
    register(StageSpec(name="eval", run=_run, kind=StageKind.EVALUATION, settings=EvalSettings,
                       description="multiple-choice accuracy with intervals and paired tests; answers to open "
                                   "and safety prompts for the judges",
                       check_inputs=_check, required_by_default=False))
