"""Built-in report: reports/training/method_comparison.md|.json."""

from __future__ import annotations

from medllm_core.kernel.artifacts import ArtifactKind, consumes
from medllm_core.kernel.hookspecs import hookimpl
from medllm_core.kernel.stages import StageKind, StageResult, StageSpec


def run_method_comparison(ctx) -> StageResult:
    from medllm_core.kernel.atomic import write_json, write_text
    from medllm_core.library.method_comparison import build_comparison, render_markdown
    from medllm_core.library.report_paths import ReportPaths

    report = build_comparison(ctx.plan, ctx.results)
    if not report["methods"]:
        return StageResult.skipped("no training method (a stage that continues the SFT adapter) in this run")
    paths = ReportPaths.of(ctx.run)
    json_path = write_json(paths.method_comparison_json, report)
    md_path = write_text(paths.method_comparison_md, render_markdown(report))
    return StageResult.done(metrics_path=str(json_path), artifacts={"method_comparison_md": str(md_path)},
                            summary={"methods": len(report["methods"])})


@hookimpl
def register_stages(register) -> None:
    register(StageSpec(name="method_comparison", run=run_method_comparison, kind=StageKind.REPORT,
                       consumes=consumes(ArtifactKind.TRAINING_METRICS), produces=(ArtifactKind.COMPARISON,),
                       description="every training method side by side (steps, loss, rewards, speed, memory)",
                       required_by_default=False))
