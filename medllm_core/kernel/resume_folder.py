"""``medllm-tui --resume [RUN_DIR]`` without ``--run``: continue a run folder from its own saved profile.

Every run folder holds ``effective_profile.toml`` (the profile after environment and ``--set`` overrides, as the
run used it), so a user who comes back over SSH needs only the folder, not the command that started it. Relative
data paths in that file are relative to the profile the run was started from (recorded in ``run_started``), so
they resolve from there, not from the run folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from medllm_core.kernel.errors import ConfigError, Location
from medllm_core.kernel.report_paths import EVENTS_FILE, runs_dir

EFFECTIVE_PROFILE = "effective_profile.toml"


def latest_run_folder(output_root: Path) -> Path:
    """The most recently written run folder under ``output_root`` (any profile)."""
    from medllm_core.kernel.resume import is_run_folder

    runs = runs_dir(output_root)
    candidates = [d for d in runs.iterdir() if d.is_dir() and is_run_folder(d)] if runs.is_dir() else []
    if not candidates:
        raise ConfigError(f"no run to resume under {runs}",
                          hint="medllm-tui --resume RUN_DIR, or --output-root DIR, or --run PROFILE to start one")
    return max(candidates, key=lambda d: (d / EVENTS_FILE).stat().st_mtime_ns)


def resume_folder(run_dir: str, output_root: str | None) -> tuple[Path, Path]:
    """(the run folder, its saved profile) for a resume named by folder only (``run_dir`` "": the latest run)."""
    from medllm_core.kernel.resume import checked_run_folder

    if run_dir:
        folder = checked_run_folder(run_dir)
    else:
        folder = latest_run_folder(Path(os.path.expanduser(output_root or ".")).resolve())
    saved = folder / EFFECTIVE_PROFILE
    if not saved.is_file():
        raise ConfigError(f"the run folder has no {EFFECTIVE_PROFILE} to resume from", Location(file=str(folder)),
                          hint="resume with its profile: medllm-tui --run PROFILE --resume RUN_DIR")
    return folder, saved


def original_profile_path(folder: Path) -> Path | None:
    """The profile file the run was started from, when it still exists (relative data paths resolve from it)."""
    from medllm_core.kernel.resume import _run_started

    started = _run_started(folder)
    if started is None or not started.profile_path or started.profile_path == "None":
        return None
    path = Path(started.profile_path)
    return path if path.parent.is_dir() else None
