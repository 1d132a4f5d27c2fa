"""Start a run as its own detached process, and find its run folder.

The run must outlive the TUI and the SSH session: it gets a new session
(``start_new_session``: no controlling terminal, so no SIGHUP when the SSH
connection drops) and writes only to a log file and its events.jsonl.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from medllm_core.kernel.report_paths import EVENTS_FILE, REPORTS, runs_dir

LAUNCH_LOG_DIR = Path(REPORTS) / "tui_launches"


@dataclass(frozen=True)
class LaunchedRun:
    pid: int
    log_path: Path
    output_root: Path
    command: tuple[str, ...]


def run_command(profile_path: Path, output_root: Path, *, dry_run: bool = False) -> list[str]:
    command = [sys.executable, "-m", "medllm_tui", "--run", str(profile_path), "--output-root", str(output_root)]
    return [*command, "--dry-run"] if dry_run else command


def start_detached(profile_path: Path, output_root: Path, *, dry_run: bool = False,
                   env: dict[str, str] | None = None) -> LaunchedRun:
    output_root = output_root.resolve()
    log_dir = output_root / LAUNCH_LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{profile_path.stem}.log"
    command = run_command(profile_path.resolve(), output_root, dry_run=dry_run)
    with open(log_path, "ab") as log, open(os.devnull, "rb") as stdin:
        process = subprocess.Popen(
            # The TUI's folder stays the working folder so the user's .env is found as on the CLI.
            command, stdin=stdin, stdout=log, stderr=subprocess.STDOUT,
            env=env if env is not None else dict(os.environ), start_new_session=True, close_fds=True,
        )
    return LaunchedRun(process.pid, log_path, output_root, tuple(command))


def _started_by(run_dir: Path, pid: int) -> bool:
    try:
        with open(run_dir / EVENTS_FILE, "rb") as handle:
            first = json.loads(handle.readline())
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and first.get("type") == "run_started" and first.get("pid") == pid


def find_run_dir(output_root: Path, pid: int) -> Path | None:
    """The run folder whose first event was written by ``pid`` (the runner names folders ``…-<pid>``)."""
    runs = runs_dir(output_root)
    if not runs.is_dir():
        return None
    for folder in sorted(runs.glob(f"*-{pid}"), reverse=True):
        if _started_by(folder, pid):
            return folder
    return None


def wait_for_run_dir(launched: LaunchedRun, timeout_s: float = 60.0, poll_s: float = 0.2) -> Path | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = find_run_dir(launched.output_root, launched.pid)
        if found is not None:
            return found
        if not process_alive(launched.pid):
            return find_run_dir(launched.output_root, launched.pid)
        time.sleep(poll_s)
    return None


def process_alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        finished, _status = os.waitpid(pid, os.WNOHANG)  # reap it if it is our own finished child
        if finished == pid:
            return False
    except ChildProcessError:
        pass  # not our child (re-attached from another TUI): fall through to kill(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
