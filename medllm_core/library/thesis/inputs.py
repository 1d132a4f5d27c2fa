"""Everything the report writers read, gathered once from the run's own files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medllm_core.kernel.events import StageFinished, read_records
from medllm_core.kernel.smoke import smoke_notice, smoke_reason
from medllm_core.library.report_paths import MCQ_PREDICTIONS_SUFFIX, TRAINING, ReportPaths
from medllm_core.library.training.metrics import TrainingMetrics


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


@dataclass
class ReportInputs:
    reports_dir: Path
    eval_results: dict[str, Any] | None
    judge_results: dict[str, Any] | None
    risk_results: dict[str, Any] | None
    method_comparison: dict[str, Any] | None
    completion: dict[str, Any] | None
    training_metrics: dict[str, TrainingMetrics] = field(default_factory=dict)  # stage -> metrics
    mcq_predictions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # variant -> records
    stage_durations: dict[str, float] = field(default_factory=dict)
    smoke_reason: str | None = None  # why this run is a smoke test (None: a real model)

    @property
    def smoke_notice(self) -> str | None:
        """The line every report page opens with on a smoke-test run."""
        return smoke_notice(self.smoke_reason)

    @classmethod
    def gather(cls, context: Any) -> ReportInputs:
        reports = context.run.reports_dir
        paths = ReportPaths.of(context.run)
        inputs = cls(
            reports_dir=reports,
            eval_results=load_json(paths.eval_results),
            judge_results=load_json(paths.judge_results),
            risk_results=load_json(paths.risk_results),
            method_comparison=load_json(paths.method_comparison_json),
            completion=load_json(paths.completion_check_json),
            smoke_reason=smoke_reason(context.profile),
        )
        for name, result in context.results.items():
            if result.metrics_path and TRAINING in Path(result.metrics_path).parts:
                try:
                    metrics = TrainingMetrics.from_file(Path(result.metrics_path))
                except (OSError, ValueError):
                    continue
                if metrics.method:
                    inputs.training_metrics[name] = metrics
        for path in sorted(paths.predictions.glob(f"*{MCQ_PREDICTIONS_SUFFIX}")):
            lines = path.read_text(encoding="utf-8").splitlines()
            inputs.mcq_predictions[path.name.removesuffix(MCQ_PREDICTIONS_SUFFIX)] = [json.loads(x) for x in lines if x]
        for event in read_records(context.run.events_path):
            if isinstance(event, StageFinished) and event.duration_s is not None and event.stage:
                inputs.stage_durations[event.stage] = event.duration_s
        return inputs
