"""``[stages.thesis_reports]`` options (kept import-light: plugin registration must not pull matplotlib)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medllm_core.kernel.schema import SchemaError, option


@dataclass
class ThesisReportSettings:
    min_eval_items: int = option(100, "fewest multiple-choice items an evaluation needs before a thesis may cite "
                                      "it (readiness)")
    max_extraction_failure_rate: float = option(0.2, "highest share of replies of any variant that may fail answer "
                                                     "extraction before the evaluation counts as degenerate "
                                                     "(readiness)")

    def validate(self, prefix: str) -> None:
        if self.min_eval_items < 0:
            raise SchemaError(f"{prefix}.min_eval_items", "must be >= 0")
        if not 0.0 <= self.max_extraction_failure_rate <= 1.0:
            raise SchemaError(f"{prefix}.max_extraction_failure_rate", "must be in [0, 1]")


def thesis_settings(context: Any) -> ThesisReportSettings:
    """The run's thesis-report settings, found by type in the plan (the readiness stage reads them too)."""
    for planned in getattr(context, "plan", None) or []:
        if isinstance(getattr(planned, "settings", None), ThesisReportSettings):
            return planned.settings
    return ThesisReportSettings()
