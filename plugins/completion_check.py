"""Built-in strict completion check: reports/migration/gpu_completion_check.json|.md."""

from __future__ import annotations

from medllm_core.kernel.artifacts import ArtifactKind, consumes
from medllm_core.kernel.hookspecs import hookimpl
from medllm_core.kernel.stages import StageKind, StageResult, StageSpec


def run_completion_check_stage(ctx) -> StageResult:
    from medllm_core.kernel.atomic import write_json, write_text
    from medllm_core.library.completion import render_markdown, run_completion_check
    from medllm_core.library.report_paths import ReportPaths

    report = run_completion_check(ctx.run_context)
    for criterion in report["criteria"]:
        ctx.check(f"{criterion['stage']}.{criterion['name']}", criterion["passed"], criterion["detail"])
    ctx.check("strict_pass", report["strict_pass"], "; ".join(report["failures"]) or "all criteria pass")
    paths = ReportPaths.of(ctx.run)
    json_path = write_json(paths.completion_check_json, report)
    md_path = write_text(paths.completion_check_md, render_markdown(report))
    return StageResult.done(
        metrics_path=str(json_path),
        artifacts={"report_md": str(md_path)},
        summary={"strict_pass": report["strict_pass"], "failures": report["failures"]},
        verdict=report["strict_pass"],
        reason="" if report["strict_pass"] else "strict_pass=false: " + "; ".join(report["failures"]),
    )


@hookimpl
def register_stages(register) -> None:
    register(StageSpec(
        name="completion_check",
        run=run_completion_check_stage,
        kind=StageKind.CHECK,
        consumes=consumes(ArtifactKind.ADAPTER, ArtifactKind.TRAINING_METRICS),
        produces=(ArtifactKind.VERDICT,),
        description="strict_pass: every required training stage trained and left a loadable checkpoint",
        required_by_default=False,
    ))
