"""The append-only event log of a run (``events.jsonl``).

The runner and the stages write typed records (``event_records``: one frozen
dataclass per event type, schema version ``EVENTS_SCHEMA`` on ``run_started``);
the headless printer and the TUI only read the file (``EventReader.poll_records``
/ ``parse_event``), so a run can be watched (or re-attached to) from another
process. Each event is one JSON line written with a single ``write`` on a file
opened in append mode, so concurrent writers (e.g. training ranks) never
interleave inside a line. Known secrets are masked before anything is written.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medllm_core.kernel.event_records import (  # noqa: F401  (re-exported: the records are the schema)
    EVENTS_SCHEMA,
    LEGACY_SCHEMA,
    RECORDS,
    Check,
    DecisionEvent,
    Event,
    Log,
    Loss,
    Memory,
    Plan,
    PlanStage,
    PluginLoaded,
    Progress,
    RunFinished,
    RunStarted,
    StageFinished,
    StageStarted,
    build_event,
    parse_event,
)

# Event types (the "type" field). Readers ignore types they do not know.
RUN_STARTED = RunStarted.TYPE
PLAN = Plan.TYPE
STAGE_STARTED = StageStarted.TYPE
STAGE_FINISHED = StageFinished.TYPE
PROGRESS = Progress.TYPE  # step, total, eta_s
LOSS = Loss.TYPE  # step, loss
MEMORY = Memory.TYPE  # device, used_gb, total_gb
DECISION = DecisionEvent.TYPE  # kind, summary, facts
CHECK = Check.TYPE  # name, passed, detail
LOG = Log.TYPE  # level, message
PLUGIN = PluginLoaded.TYPE  # plugin load report
RUN_FINISHED = RunFinished.TYPE  # exit_code, status

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

    def write(self, record: Event) -> dict[str, Any]:
        """Append one record as a JSON line (masked); returns what was written."""
        event = record.to_dict()
        if not self.enabled:
            return event
        line = self.mask(json.dumps(event, ensure_ascii=False, default=str)) + "\n"
        with self._lock:
            os.write(self._fd, line.encode("utf-8"))
        return event

    def emit(self, type_: str, stage: str | None = None, **data: Any) -> dict[str, Any]:
        """Older spelling of ``write``: builds the record of ``type_`` (an unknown type or field is an error)."""
        return self.write(build_event(type_, stage, **data))

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
        """New complete lines, as decoded JSON objects."""
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

    def poll_records(self) -> list[Event]:
        """New complete lines as typed records; unknown types and non-events are skipped."""
        return [record for record in map(parse_event, self.poll()) if record is not None]


def read_events(path: Path) -> list[dict[str, Any]]:
    return EventReader(Path(path)).poll()


def read_records(path: Path) -> list[Event]:
    return EventReader(Path(path)).poll_records()
