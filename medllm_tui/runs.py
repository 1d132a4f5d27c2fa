"""Recent runs under an output root, for the start screen and ``attach`` without a folder."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medllm_core.kernel.report_paths import EVENTS_FILE, runs_dir
from medllm_tui.launch import process_alive

DRY_RUN_STATUS = "dry_run"  # run_finished.status of a dry run (kernel.runner.dry_run)
TAIL_BYTES = 8192  # run_finished is the last line; no need to read a long run's whole log


@dataclass(frozen=True)
class RunSummary:
    run_dir: Path
    run_id: str
    profile: str
    status: str  # running | ok | strict_check_failed | … | stopped (process gone, no run_finished)
    exit_code: int | None
    mtime: float

    @property
    def label(self) -> str:
        code = "" if self.exit_code is None else f" (exit {self.exit_code})"
        return f"{self.run_id}  {self.status}{code}"


def _first_line(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.readline())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _last_finished(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read().splitlines()
    except OSError:
        return None
    for raw in reversed(tail):
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == "run_started":
            return None  # a resumed attempt after the last finish is still going
        if isinstance(event, dict) and event.get("type") == "run_finished":
            return event
    return None


def summarize_run(run_dir: Path) -> RunSummary | None:
    events = run_dir / EVENTS_FILE
    if not events.is_file():
        return None
    first = _first_line(events)
    finished = _last_finished(events)
    if finished is not None:
        status, code = str(finished.get("status", "finished")), finished.get("exit_code")
    else:
        status, code = ("running" if process_alive(first.get("pid")) else "stopped"), None
    return RunSummary(run_dir, str(first.get("run_id", run_dir.name)), str(first.get("profile", "?")),
                      status, code, events.stat().st_mtime)


def recent_runs(output_root: Path, limit: int = 10) -> list[RunSummary]:
    runs = runs_dir(output_root)
    if not runs.is_dir():
        return []
    folders = [d for d in runs.iterdir() if (d / EVENTS_FILE).is_file()]
    folders.sort(key=lambda d: (d / EVENTS_FILE).stat().st_mtime, reverse=True)
    found: list[RunSummary] = []
    for folder in folders:
        summary = summarize_run(folder)
        # A dry run trained nothing and has no dashboard worth attaching to: not a run in this list.
        if summary is not None and summary.status != DRY_RUN_STATUS:
            found.append(summary)
            if len(found) == limit:
                break
    return found


def latest_run(output_root: Path) -> Path | None:
    runs = recent_runs(output_root, limit=1)
    return runs[0].run_dir if runs else None
