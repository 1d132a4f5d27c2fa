"""Built-in report stages: the evaluation reports and the thesis readiness verdict."""

from __future__ import annotations

from medllm_core.kernel.artifacts import ArtifactKind, consumes
from medllm_core.kernel.hookspecs import hookimpl
from medllm_core.kernel.stages import StageKind, StageResult, StageSpec
from medllm_core.library.thesis.settings import ThesisReportSettings


def run_thesis_reports(ctx) -> StageResult:
    from medllm_core.kernel.atomic import write_json, write_text
    from medllm_core.library.report_paths import ReportPaths
    from medllm_core.library.thesis.eval_report import render_eval_report, write_accuracy_plot
    from medllm_core.library.thesis.inputs import ReportInputs
    from medllm_core.library.thesis.other_reports import render_draft_material, render_error_analysis, render_sota
    from medllm_core.library.thesis.record import build_experiment_record

    inputs = ReportInputs.gather(ctx.run_context)
    paths = ReportPaths.of(ctx.run)
    record = build_experiment_record(ctx.run_context, inputs)
    setup = {"Model": ctx.profile.model.name_or_path, "Device": ctx.hardware.describe(),
             "Precision": ctx.precision.dtype, "Run": ctx.run.run_id}
    written = {
        "eval_default": write_text(paths.eval_default_md, render_eval_report(inputs, setup)),
        "sota_compare": write_text(paths.sota_compare_md, render_sota(inputs, ctx.profile.model.name_or_path)),
        "error_analysis": write_text(paths.error_analysis_md, render_error_analysis(inputs)),
        "experiment_record": write_json(paths.experiment_record, record),
        "thesis_draft_material": write_text(paths.thesis_draft_material, render_draft_material(inputs, record)),
    }
    if inputs.eval_results and inputs.eval_results.get("variants"):
        written["accuracy_plot"] = write_accuracy_plot(inputs.eval_results, paths.accuracy_plot)
    return StageResult.done(artifacts={k: str(v) for k, v in written.items()}, summary={"reports": len(written)})


def run_readiness(ctx) -> StageResult:
    from medllm_core.kernel.atomic import write_json, write_text
    from medllm_core.library.report_paths import ReportPaths
    from medllm_core.library.thesis.inputs import ReportInputs
    from medllm_core.library.thesis.readiness import evaluate_readiness, render_readiness

    report = evaluate_readiness(ctx.run_context, ReportInputs.gather(ctx.run_context))
    for condition in report["conditions"]:
        ctx.check(f"readiness.{condition['name']}", condition["met"], condition["reason"])
    paths = ReportPaths.of(ctx.run)
    json_path = write_json(paths.thesis_readiness_json, report)
    write_text(paths.thesis_readiness_md, render_readiness(report))
    return StageResult.done(metrics_path=str(json_path),
                            summary={"ready_for_writing": report["ready_for_writing"]})


@hookimpl
def register_stages(register) -> None:
    # The readiness stage reads the thesis-report settings too (its degenerate-evaluation thresholds).
    register(StageSpec(name="thesis_reports", run=run_thesis_reports, kind=StageKind.REPORT,
                       settings=ThesisReportSettings,
                       consumes=consumes(ArtifactKind.TRAINING_METRICS, ArtifactKind.EVAL_RESULTS,
                                         ArtifactKind.JUDGE_RESULTS, ArtifactKind.COMPARISON, ArtifactKind.VERDICT),
                       produces=(ArtifactKind.REPORT,), required_by_default=False,
                       description="eval_default.md, sota_compare.md, error_analysis.md, draft material, "
                                   "experiment record"))
    register(StageSpec(name="readiness", run=run_readiness, kind=StageKind.REPORT,
                       consumes=consumes(ArtifactKind.REPORT, ArtifactKind.VERDICT, ArtifactKind.EVAL_RESULTS,
                                         ArtifactKind.JUDGE_RESULTS),
                       produces=("thesis_readiness",), required_by_default=False,
                       description="thesis_readiness.json|.md with ready_for_writing and every unmet reason"))
