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
