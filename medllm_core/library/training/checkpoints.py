"""Where a training stage keeps its checkpoints, and how to find the last good one."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if (m := CHECKPOINT_RE.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def is_complete(checkpoint: Path) -> bool:
    """A checkpoint killed mid-save lacks trainer_state.json (written last by the Trainer) or has a torn one."""
    state = checkpoint / "trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return any(checkpoint.glob("adapter_model.safetensors")) and (checkpoint / "optimizer.pt").exists()


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    for checkpoint in reversed(checkpoint_dirs(output_dir)):
        if is_complete(checkpoint):
            return checkpoint
    return None


def at_the_end(checkpoint: Path) -> bool:
    """A checkpoint saved on the stage's last step (global_step >= max_steps in its own state)."""
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
        return 0 < int(state.get("max_steps", 0)) <= int(state.get("global_step", 0))
    except (OSError, ValueError, TypeError, json.JSONDecodeError):
        return False


def resumable_checkpoint(output_dir: Path) -> Path | None:
    """The last complete checkpoint the Trainer can continue from without overshooting.

    The Trainer checks for the end only after a step, so resuming from a checkpoint taken on the
    last step trains one step past max_steps; continuing from the one before replays the last
    steps exactly (data order and RNG state come from that checkpoint) and ends where a clean run does.
    """
    for checkpoint in reversed(checkpoint_dirs(output_dir)):
        if is_complete(checkpoint) and not at_the_end(checkpoint):
            return checkpoint
    return None


def remove_incomplete(output_dir: Path) -> list[str]:
    removed = []
    for checkpoint in checkpoint_dirs(output_dir):
        if not is_complete(checkpoint):
            shutil.rmtree(checkpoint, ignore_errors=True)
            removed.append(checkpoint.name)
    return removed


def clear_checkpoints(output_dir: Path) -> None:
    """A fresh (not resumed) stage starts clean, so old checkpoints never mix into it."""
    for checkpoint in checkpoint_dirs(output_dir):
        shutil.rmtree(checkpoint, ignore_errors=True)
