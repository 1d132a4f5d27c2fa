"""A failed run never silently replaces the reports of the last successful run in the same output root.

The shared report paths under ``<output_root>/reports/`` (training metrics, evaluation results, thesis tables) are
the contract the seed's users cite, so every run writes them in place. Before a new run writes there, the reports
of the last run that finished with exit 0 are copied once into that run's own folder
(``reports/runs/<run-id>/reports_kept/``), the run's log says so, and a run that does not succeed names the copy
in its day-1 summary. ``reports/last_successful_run.json`` records which run that is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from medllm_core.kernel import events as ev
from medllm_core.kernel.atomic import write_json
from medllm_core.kernel.report_paths import RUNS, reports_dir, runs_dir

MARKER = "last_successful_run.json"  # under reports/
KEPT = "reports_kept"  # in the successful run's folder


def _marker(output_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((reports_dir(output_dir) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("run_id") else None


def kept_copy(output_dir: Path, run_id: str) -> tuple[str, Path] | None:
    """(run id, folder) of the last successful run's kept reports, when that run is not ``run_id``."""
    marker = _marker(output_dir)
    if marker is None or marker["run_id"] == run_id:
        return None
    return marker["run_id"], runs_dir(output_dir) / str(marker["run_id"]) / KEPT


def keep_last_success(context: Any) -> Path | None:
    """Copy the last successful run's shared reports into its own folder (once) before this run writes."""
    output_dir = Path(context.run.output_dir)
    found = kept_copy(output_dir, context.run.run_id)
    if found is None:
        return None
    run_id, dest = found
    if not dest.parent.is_dir():
        return None  # its run folder was deleted: nothing to attach the copy to
    if not dest.exists():
        staging = dest.with_name(KEPT + ".partial")
        try:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(reports_dir(output_dir), staging, ignore=_not_run_folders(reports_dir(output_dir)))
            staging.rename(dest)  # a killed copy leaves only the .partial folder, never a half "reports_kept"
        except OSError as exc:  # a full disk must not stop the run; say what was not kept
            context.events.write(ev.Log(level="warning", message=f"could not keep the reports of the last "
                                                                 f"successful run ({run_id}): {exc}"))
            return None
    context.events.write(ev.Log(level="info", message=f"the reports of the last successful run ({run_id}) are kept "
                                                      f"in {dest}; this run writes over reports/"))
    return dest


def _not_run_folders(root: Path):
    def ignore(folder: str, names: list[str]) -> list[str]:
        return [RUNS, MARKER] if Path(folder) == root else []
    return ignore


def record_success(context: Any, exit_code: int) -> None:
    if exit_code == 0 and not getattr(context.profile.run, "dry_run", False):
        write_json(reports_dir(Path(context.run.output_dir)) / MARKER,
                   {"run_id": context.run.run_id, "run_dir": str(context.run.run_dir)})


def kept_line(context: Any, exit_code: int) -> list[str]:
    """The day-1 summary's line for a run that did not succeed while an earlier one did."""
    found = None if exit_code == 0 else kept_copy(Path(context.run.output_dir), context.run.run_id)
    if found is None or not found[1].is_dir():
        return []
    return [f"- Reports of the last successful run `{found[0]}` are kept in `{found[1]}` (reports/ now holds "
            "this run's outputs where it wrote them)"]
