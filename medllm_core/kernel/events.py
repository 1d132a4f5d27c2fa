"""The append-only event log of a run (``events.jsonl``).

The runner and the stages write typed events; the headless printer and the TUI
only read the file, so a run can be watched (or re-attached to) from another
process. Each event is one JSON line written with a single ``write`` on a file
opened in append mode, so concurrent writers (e.g. training ranks) never
interleave inside a line. Known secrets are masked before anything is written.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Event types (the "type" field). Readers ignore types they do not know.
RUN_STARTED = "run_started"
PLAN = "plan"
STAGE_STARTED = "stage_started"
STAGE_FINISHED = "stage_finished"
PROGRESS = "progress"  # step, total, eta_s
LOSS = "loss"  # step, loss
MEMORY = "memory"  # device, used_gb, total_gb
DECISION = "decision"  # kind, summary, facts
CHECK = "check"  # name, passed, detail
LOG = "log"  # level, message
PLUGIN = "plugin"  # plugin load report
RUN_FINISHED = "run_finished"  # exit_code, status

EVENT_TYPES = (
    RUN_STARTED, PLAN, STAGE_STARTED, STAGE_FINISHED, PROGRESS, LOSS, MEMORY,
    DECISION, CHECK, LOG, PLUGIN, RUN_FINISHED,
)

MASK = "***"


class EventLog:
    """Writer side of ``events.jsonl``."""

    def __init__(self, path: Path, secrets: Iterable[str] = (), enabled: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._secrets = [s for s in secrets if s and len(s) >= 4]
        self._lock = threading.Lock()
        # Non-zero ranks of a distributed stage train but do not write: one voice per run.
        self.enabled = enabled
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if enabled else -1

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    def add_secret(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self._secrets.append(secret)

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def emit(self, type_: str, stage: str | None = None, **data: Any) -> dict[str, Any]:
        event = {"ts": round(time.time(), 3), "type": type_, "pid": os.getpid()}
        if stage is not None:
            event["stage"] = stage
        event.update(data)
        if not self.enabled:
            return event
        line = self.mask(json.dumps(event, ensure_ascii=False, default=str)) + "\n"
        with self._lock:
            os.write(self._fd, line.encode("utf-8"))
        return event

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class EventReader:
    """Incremental reader: call ``poll()`` repeatedly to get new complete events.

    A partially written last line (the writer is mid-write, or was killed) is
    left for the next poll instead of failing the reader.
    """

    path: Path
    offset: int = 0

    def poll(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        events = []
        for raw in chunk[: end + 1].splitlines():
            if not raw.strip():
                continue
            try:
                events.append(json.loads(raw))
            except json.JSONDecodeError:
                continue  # a torn line from a killed writer; never fatal for a reader
        return events


def read_events(path: Path) -> list[dict[str, Any]]:
    return EventReader(Path(path)).poll()
