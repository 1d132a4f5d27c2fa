"""Every contract path a run writes (README "What a run writes"), in one place.

The kernel's own outputs (the run folders, the day-1 summary and the name of
the completion check it points to) are in ``medllm_core.kernel.report_paths``;
this module re-uses them and adds the rest, because the kernel must not know
the stage library's files. Names below are relative to ``reports/`` (or to
``checkpoints/``: the ``*_CHECKPOINTS`` ones); ``ReportPaths`` resolves them for
one run's output root. A writer or a reader of a contract file asks here instead
of spelling the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medllm_core.kernel.report_paths import (  # noqa: F401  (re-exported: one place to ask)
    CHECKPOINTS,
    COMPLETION_CHECK_JSON,
    COMPLETION_CHECK_MD,
    DAY1_SUMMARY,
    MIGRATION,
    REPORTS,
    RUNS,
    under_output_root,
)

# relative to reports/
PREFLIGHT = f"{MIGRATION}/preflight.json"
TRAINING = "training"
METHOD_COMPARISON_JSON = f"{TRAINING}/method_comparison.json"
METHOD_COMPARISON_MD = f"{TRAINING}/method_comparison.md"
EVAL = "eval"
EVAL_RESULTS = f"{EVAL}/eval_results.json"
PREDICTIONS = f"{EVAL}/predictions"
OPEN_RESPONSES = f"{EVAL}/open_responses.json"
SAFETY_RESPONSES = f"{EVAL}/safety_responses.json"
JUDGE_RESULTS = f"{EVAL}/judge_results.json"
JUDGE_ITEMS = f"{EVAL}/judge_items.jsonl"
RISK_RESULTS = f"{EVAL}/risk_results.json"
RISK_ITEMS = f"{EVAL}/risk_items.jsonl"
ACCURACY_PLOT = f"{EVAL}/accuracy_ci.png"
EVAL_DEFAULT_MD = "eval_default.md"
SOTA_COMPARE_MD = "sota_compare.md"
ERROR_ANALYSIS_MD = "error_analysis.md"
THESIS_SUPPORT = "thesis_support"
EXPERIMENT_RECORD = f"{THESIS_SUPPORT}/experiment_record.json"
THESIS_DRAFT_MATERIAL = f"{THESIS_SUPPORT}/thesis_draft_material.md"
THESIS_READINESS_JSON = f"{THESIS_SUPPORT}/thesis_readiness.json"
THESIS_READINESS_MD = f"{THESIS_SUPPORT}/thesis_readiness.md"
MCQ_PREDICTIONS_SUFFIX = "_mcq.jsonl"  # predictions/<variant>_mcq.jsonl

# relative to checkpoints/
SFT_CHECKPOINTS = "layer_b/{slug}_sft"
METHOD_CHECKPOINTS = "{method}-real-baseline"


def sft_prefix(slug: str) -> str:
    """File prefix of the SFT stage's reports: ``layer_b_<slug>_sft`` (``_metrics.json``, ``_loss_curve.*``)."""
    return f"layer_b_{slug}_sft"


@dataclass(frozen=True)
class ReportPaths:
    """The contract paths of one output root."""

    reports: Path
    checkpoints: Path

    @classmethod
    def of(cls, run: Any) -> ReportPaths:
        """From a ``RunInfo`` (``ctx.run``): its ``reports_dir`` and ``checkpoints_dir`` (a reader's stand-in
        with only ``reports_dir`` gets the sibling ``checkpoints/``)."""
        reports = Path(run.reports_dir)
        return cls(reports, Path(getattr(run, "checkpoints_dir", None) or reports.parent / CHECKPOINTS))

    # -- reports/<NAME> for every name above ------------------------------------
    @property
    def migration(self) -> Path:
        return self.reports / MIGRATION

    @property
    def day1_summary(self) -> Path:
        return self.reports / DAY1_SUMMARY

    @property
    def preflight(self) -> Path:
        return self.reports / PREFLIGHT

    @property
    def completion_check_json(self) -> Path:
        return self.reports / COMPLETION_CHECK_JSON

    @property
    def completion_check_md(self) -> Path:
        return self.reports / COMPLETION_CHECK_MD

    @property
    def training(self) -> Path:
        return self.reports / TRAINING

    @property
    def method_comparison_json(self) -> Path:
        return self.reports / METHOD_COMPARISON_JSON

    @property
    def method_comparison_md(self) -> Path:
        return self.reports / METHOD_COMPARISON_MD

    @property
    def eval(self) -> Path:
        return self.reports / EVAL

    @property
    def eval_results(self) -> Path:
        return self.reports / EVAL_RESULTS

    @property
    def predictions(self) -> Path:
        return self.reports / PREDICTIONS

    @property
    def open_responses(self) -> Path:
        return self.reports / OPEN_RESPONSES

    @property
    def safety_responses(self) -> Path:
        return self.reports / SAFETY_RESPONSES

    @property
    def judge_results(self) -> Path:
        return self.reports / JUDGE_RESULTS

    @property
    def judge_items(self) -> Path:
        return self.reports / JUDGE_ITEMS

    @property
    def risk_results(self) -> Path:
        return self.reports / RISK_RESULTS

    @property
    def risk_items(self) -> Path:
        return self.reports / RISK_ITEMS

    @property
    def accuracy_plot(self) -> Path:
        return self.reports / ACCURACY_PLOT

    @property
    def eval_default_md(self) -> Path:
        return self.reports / EVAL_DEFAULT_MD

    @property
    def sota_compare_md(self) -> Path:
        return self.reports / SOTA_COMPARE_MD

    @property
    def error_analysis_md(self) -> Path:
        return self.reports / ERROR_ANALYSIS_MD

    @property
    def thesis_support(self) -> Path:
        return self.reports / THESIS_SUPPORT

    @property
    def experiment_record(self) -> Path:
        return self.reports / EXPERIMENT_RECORD

    @property
    def thesis_draft_material(self) -> Path:
        return self.reports / THESIS_DRAFT_MATERIAL

    @property
    def thesis_readiness_json(self) -> Path:
        return self.reports / THESIS_READINESS_JSON

    @property
    def thesis_readiness_md(self) -> Path:
        return self.reports / THESIS_READINESS_MD

    # -- training --------------------------------------------------------------
    def training_file(self, prefix: str, suffix: str) -> Path:
        """``reports/training/<prefix><suffix>`` (``_metrics.json``, ``_loss_curve.json``, ``_loss_curve.png``)."""
        return self.reports / TRAINING / f"{prefix}{suffix}"

    def sft_checkpoints(self, slug: str) -> Path:
        return self.checkpoints / SFT_CHECKPOINTS.format(slug=slug)

    def method_checkpoints(self, method: str) -> Path:
        return self.checkpoints / METHOD_CHECKPOINTS.format(method=method)

    # -- eval --------------------------------------------------------------------
    def mcq_predictions(self, variant: str, protocol: str | None = None) -> Path:
        """The primary protocol's file is ``<variant>_mcq.jsonl`` (what every report reads); another
        protocol's is ``<variant>_mcq.<protocol>.jsonl``."""
        if protocol is None:
            return self.reports / PREDICTIONS / f"{variant}{MCQ_PREDICTIONS_SUFFIX}"
        return self.reports / PREDICTIONS / f"{variant}_mcq.{protocol}.jsonl"

    def responses(self, kind: str) -> Path:
        """``reports/eval/<kind>_responses.json`` (kind: open, safety)."""
        return self.reports / EVAL / f"{kind}_responses.json"

