"""Built-in evaluation stage: base model and every trained variant on the same items."""

from __future__ import annotations

from medllm_core.kernel.artifacts import ArtifactKind, consumes
from medllm_core.kernel.hookspecs import hookimpl
from medllm_core.kernel.stages import StageKind, StageSpec
from medllm_core.library.evaluation.settings import DEV_DATA_KEY, EVAL_DATA_KEYS, EvalSettings
from medllm_core.library.judges.settings import endpoint_aliases


def _run(ctx):
    from medllm_core.library.evaluation.run_eval import run_evaluation

    return run_evaluation(ctx)


def _check(ctx) -> None:
    from medllm_core.library.evaluation.run_eval import check_eval_inputs

    check_eval_inputs(ctx)


@hookimpl
def register_stages(register) -> None:
    register(StageSpec(name="eval", run=_run, kind=StageKind.EVALUATION, settings=EvalSettings,
                       env={"ENABLE_V2_LLM_FALLBACK": "llm_fallback", "OPENAI_BASE_URL": "fallback_judge.base_url"},
                       aliases={"judges.v2_llm_fallback": "llm_fallback", **endpoint_aliases("fallback_judge.")},
                       consumes=consumes(ArtifactKind.ADAPTER),  # every trained variant
                       produces=(ArtifactKind.EVAL_RESULTS, ArtifactKind.EVAL_ANSWERS),
                       description="multiple-choice accuracy with intervals and paired tests; answers to open "
                                   "and safety prompts for the judges",
                       data=(*EVAL_DATA_KEYS, DEV_DATA_KEY),
                       check_inputs=_check, required_by_default=False))
