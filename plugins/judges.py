"""Built-in judge stages: LLM judge and medical-risk judge (rule-based pre-screen always runs)."""

from __future__ import annotations

from medllm_core.kernel.artifacts import ArtifactKind, consumes
from medllm_core.kernel.hookspecs import hookimpl
from medllm_core.kernel.stages import StageKind, StageSpec
from medllm_core.library.judges.settings import JudgeStageSettings, judge_stage_aliases


def _llm_judge(ctx):
    from medllm_core.library.judges.stages import run_llm_judge

    return run_llm_judge(ctx)


def _check_llm_judge(ctx) -> None:
    from medllm_core.library.judges.stages import check_judge_inputs

    check_judge_inputs(ctx)


def _risk_judge(ctx):
    from medllm_core.library.judges.stages import run_risk_judge

    return run_risk_judge(ctx)


@hookimpl
def register_stages(register) -> None:
    register(StageSpec(name="llm_judge", run=_llm_judge, kind=StageKind.JUDGE, settings=JudgeStageSettings,
                       env={"ENABLE_LLM_JUDGE": "use_llm", "OPENAI_BASE_URL": "base_url"},
                       aliases=judge_stage_aliases("llm_judge"),
                       consumes=consumes(ArtifactKind.EVAL_ANSWERS), produces=(ArtifactKind.JUDGE_RESULTS,),
                       required_by_default=False, check_inputs=_check_llm_judge,
                       description="rubric grading and pairwise comparison against SFT (ENABLE_LLM_JUDGE)"))
    register(StageSpec(name="risk_judge", run=_risk_judge, kind=StageKind.JUDGE, settings=JudgeStageSettings,
                       env={"ENABLE_LLM_RISK_JUDGE": "use_llm", "OPENAI_BASE_URL": "base_url"},
                       aliases=judge_stage_aliases("risk_judge"),
                       consumes=consumes(ArtifactKind.EVAL_ANSWERS), produces=(ArtifactKind.JUDGE_RESULTS,),
                       required_by_default=False,
                       description="medical-risk categories and over-refusal: rule-based pre-screen, plus the "
                                   "LLM risk judge (ENABLE_LLM_RISK_JUDGE)"))
