"""The exact command that continues a run, for the stop message, the dashboard and the day-1 summary.

"continue with --resume" alone is not enough: the wizard saves its own profile file and a run may
carry ``--set`` overrides, so the command repeats what started the run and names the run folder.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

_RESUME_FLAG = "--resume"


def _without_resume(args: Sequence[str]) -> list[str]:
    """The CLI arguments minus any earlier ``--resume [RUN_DIR]`` (the run folder is added again)."""
    kept: list[str] = []
    skip_value = False
    for arg in args:
        if skip_value:
            skip_value = False
            if not arg.startswith("-"):
                continue
        if arg == _RESUME_FLAG:
            skip_value = True
            continue
        if arg.startswith(_RESUME_FLAG + "="):
            continue
        kept.append(arg)
    return kept


def resume_command(run_dir: Path, profile_path: Path | str | None, argv: Sequence[str] = ()) -> str:
    """``medllm-tui --run PROFILE [flags] --resume RUN_DIR``, quoted for a shell.

    A run started by the CLI repeats its own arguments (overrides included); one started from the
    TUI (a worker process, no ``--run`` in argv) names the profile file it ran.
    """
    args = list(argv[1:])
    if "--run" in args or any(a.startswith("--run=") for a in args):
        rest = _without_resume(args)
    else:
        rest = ["--run", str(profile_path)] if profile_path else []
    return shlex.join(["medllm-tui", *rest, _RESUME_FLAG, str(run_dir)])
