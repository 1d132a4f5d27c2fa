"""The run folder layout the kernel itself writes, relative to the profile's output root.

The kernel owns only its own outputs: ``reports/`` and ``checkpoints/`` under the
output root, the run folders (``reports/runs/<run-id>/`` with ``events.jsonl``)
and the day-1 summary (``reports/migration/day1_run_summary.md``), which also
names the strict completion check's report. Every other contract path (training,
eval, thesis reports, checkpoints of each stage) is owned by the stage library's
``medllm_core.library.report_paths``, which re-uses these names; the kernel must
not import the library, hence the split.

Paths under ``reports/`` are spelled relative to it (``MIGRATION_DAY1_SUMMARY``);
``under_output_root`` gives the form the README and the day-1 summary print.
"""

from __future__ import annotations

from pathlib import Path

REPORTS = "reports"  # under the output root
CHECKPOINTS = "checkpoints"  # under the output root
RUNS = "runs"  # under reports/: one folder per run
EVENTS_FILE = "events.jsonl"  # in a run folder
WORKERS = "workers"  # in a run folder: logs of distributed training ranks

# relative to reports/
MIGRATION = "migration"
DAY1_SUMMARY = f"{MIGRATION}/day1_run_summary.md"
COMPLETION_CHECK_JSON = f"{MIGRATION}/gpu_completion_check.json"
COMPLETION_CHECK_MD = f"{MIGRATION}/gpu_completion_check.md"


def reports_dir(output_dir: Path) -> Path:
    return Path(output_dir) / REPORTS


def checkpoints_dir(output_dir: Path) -> Path:
    return Path(output_dir) / CHECKPOINTS


def runs_dir(output_dir: Path) -> Path:
    """``<output_root>/reports/runs``: where every run folder lives."""
    return reports_dir(output_dir) / RUNS


def under_output_root(relative_to_reports: str) -> str:
    """``"migration/x.md"`` -> ``"reports/migration/x.md"`` (the spelling the README uses)."""
    return f"{REPORTS}/{relative_to_reports}"
