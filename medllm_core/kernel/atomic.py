"""Atomic file writes: a reader never sees a half-written file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any


@cache
def _umask() -> int:
    # os.umask can only be read by setting it; done once, before any worker thread writes.
    current = os.umask(0o022)
    os.umask(current)
    return current


def shared_mode(directory: bool = False) -> int:
    """The mode a plain ``open()`` / ``mkdir`` would give (0644 / 0755 under the usual umask 022).

    tempfile makes 0600 files and 0700 folders; reports renamed from them would be unreadable to a
    supervisor on the same server, unlike the checkpoints transformers writes.
    """
    return (0o777 if directory else 0o666) & ~_umask()


def write_text(path: str | os.PathLike[str], text: str, *, private: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` via a temp file in the same folder and a rename."""
    return write_bytes(path, text.encode("utf-8"), private=private)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, private: bool = False) -> Path:
    """``private``: mode 0600 (secrets such as ``.env``); otherwise what ``open()`` would give."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o600 if private else shared_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_json(path: str | os.PathLike[str], payload: Any) -> Path:
    return write_text(path, json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")


def replace_directory(staging: Path, final: Path) -> None:
    """Move a fully written ``staging`` folder into place as ``final``.

    The old ``final`` (if any) is renamed aside first and deleted only after the
    new one is in place, so at every moment either the old or the new complete
    folder exists under its name.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    previous = final.with_name(f".{final.name}.old")
    if previous.exists():
        shutil.rmtree(previous)
    if final.exists():
        os.replace(final, previous)
    os.replace(staging, final)
    if previous.exists():
        shutil.rmtree(previous)
