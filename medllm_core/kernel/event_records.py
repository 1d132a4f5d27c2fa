"""The typed records of ``events.jsonl``: one frozen dataclass per event type.

This module owns the schema of the event log. Writers build a record and hand it
to ``EventLog.write``; readers (the headless printer, the TUI, resume) turn each
JSON line back into a record with ``parse_event``.

Schema version: ``EVENTS_SCHEMA``. It is written once per attempt, as the
``schema`` field of ``run_started`` (the first line every attempt appends), not
on every line: ``progress``/``loss`` lines are frequent and a reader learns the
version from the ``run_started`` that opens the attempt. A file without it is
version 1 (written before the records existed; same field names).

Version 2 (this one): every line has ``ts``, ``type`` and ``pid``; ``stage``
when the event belongs to a stage; then the fields of its record, under the
same names as version 1.

Compatibility rules for readers (``parse_event``):

- an unknown ``type`` gives ``None`` (a newer writer's event; skip it);
- a key the record does not know goes to ``record.extra`` (a newer writer's field);
- a missing key takes the field's default (an older writer, or a torn record).

Changing a field's meaning or removing one needs a new ``EVENTS_SCHEMA``; adding
a field with a default does not.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

EVENTS_SCHEMA = 2
LEGACY_SCHEMA = 1  # files written before the version was recorded

_COMMON = ("ts", "pid", "stage", "extra")


def _now() -> float:
    return round(time.time(), 3)


def _plain(value: Any) -> Any:
    if isinstance(value, PlanStage):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True)
class Event:
    """Fields every event has. ``extra`` holds keys a newer writer added (never written by this one)."""

    TYPE: ClassVar[str] = ""
    # Fields written only when set (not None / False), so older lines and newer ones look alike.
    OMIT_UNSET: ClassVar[frozenset[str]] = frozenset()

    ts: float = field(default_factory=_now)
    pid: int | None = field(default_factory=os.getpid)
    stage: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ts": self.ts, "type": self.TYPE, "pid": self.pid}
        if self.stage is not None:
            out["stage"] = self.stage
        for item in fields(self):
            if item.name in _COMMON:
                continue
            value = getattr(self, item.name)
            if item.name in self.OMIT_UNSET and (value is None or value is False):
                continue
            out[item.name] = _plain(value)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("ts", 0.0)
        values.setdefault("pid", None)
        extra = {k: v for k, v in data.items() if k not in known and k not in ("type", "extra")}
        return cls(**cls._convert(values), extra=extra)

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        return values


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    TYPE: ClassVar[str] = "run_started"
    run_id: str = ""
    profile: str = ""
    profile_path: str = ""
    output_dir: str = ""
    run_dir: str = ""
    argv: list[str] = field(default_factory=list)
    hardware: dict[str, Any] = field(default_factory=dict)
    host: str = ""
    resumed: bool = False
    attempt: int = 1
    schema: int = EVENTS_SCHEMA

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        values.setdefault("schema", LEGACY_SCHEMA)
        return values

    @property
    def hardware_description(self) -> str:
        return str((self.hardware or {}).get("description", ""))


@dataclass(frozen=True, kw_only=True)
class PlanStage:
    """One line of the plan (not an event of its own)."""

    name: str
    kind: str = ""
    enabled: bool = True
    required: bool = False
    requires: list[str] = field(default_factory=list)
    upstream: list[str] = field(default_factory=list)
    consumes: list[str] = field(default_factory=list)
    produces: list[str] = field(default_factory=list)
    plugin: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanStage:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, kw_only=True)
class Plan(Event):
    TYPE: ClassVar[str] = "plan"
    stages: tuple[PlanStage, ...] = ()
    precision: dict[str, Any] = field(default_factory=dict)  # dtype, reason
    gate: dict[str, Any] = field(default_factory=dict)  # verdict, reason, facts
    hardware: str = ""

    def __post_init__(self) -> None:
        stages = tuple(s if isinstance(s, PlanStage) else PlanStage.from_dict(s) for s in self.stages or ())
        object.__setattr__(self, "stages", stages)

    @property
    def precision_line(self) -> str:
        return f"{self.precision.get('dtype')} — {self.precision.get('reason')}"

    @property
    def gate_line(self) -> str:
        return f"{self.gate.get('verdict')} — {self.gate.get('reason')}"


@dataclass(frozen=True, kw_only=True)
class StageStarted(Event):
    TYPE: ClassVar[str] = "stage_started"
    kind: str = ""
    required: bool = False
    fingerprint: str | None = None


@dataclass(frozen=True, kw_only=True)
class StageFinished(Event):
    """A stage's ``StageResult.to_dict()`` plus how long it took (and ``reused`` on resume)."""

    TYPE: ClassVar[str] = "stage_finished"
    OMIT_UNSET: ClassVar[frozenset[str]] = frozenset({"reused"})
    status: str = "done"
    reason: str = ""
    metrics_path: str | None = None
    checkpoint_path: str | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    verdict: str | None = None
    reusable: bool | None = None
    duration_s: float | None = None
    reused: bool = False


@dataclass(frozen=True, kw_only=True)
class Progress(Event):
    TYPE: ClassVar[str] = "progress"
    step: int = 0
    total: int | None = None
    eta_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class Loss(Event):
    TYPE: ClassVar[str] = "loss"
    step: int = 0
    loss: float | None = None


@dataclass(frozen=True, kw_only=True)
class Memory(Event):
    TYPE: ClassVar[str] = "memory"
    device: str = "?"
    used_gb: float | None = None
    total_gb: float | None = None


@dataclass(frozen=True, kw_only=True)
class DecisionEvent(Event):
    TYPE: ClassVar[str] = "decision"
    kind: str = ""
    summary: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Check(Event):
    TYPE: ClassVar[str] = "check"
    name: str = ""
    passed: bool = False
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class Log(Event):
    TYPE: ClassVar[str] = "log"
    level: str = "info"  # debug | info | warning | error
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class PluginLoaded(Event):
    """The plugin load report (``status`` "loaded" or "failed")."""

    TYPE: ClassVar[str] = "plugin"
    name: str = ""
    source: str = ""
    status: str = ""
    reason: str = ""
    stages: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    TYPE: ClassVar[str] = "run_finished"
    OMIT_UNSET: ClassVar[frozenset[str]] = frozenset({"summary"})
    exit_code: int = 0
    status: str = ""
    message: str = ""
    summary: str | None = None  # the day-1 summary's path (absent on a dry run)


RECORDS: dict[str, type[Event]] = {cls.TYPE: cls for cls in (
    RunStarted, Plan, StageStarted, StageFinished, Progress, Loss, Memory, DecisionEvent, Check, Log,
    PluginLoaded, RunFinished,
)}


def parse_event(data: Any) -> Event | None:
    """The record of one decoded JSON line; ``None`` for an unknown type or something that is not an event."""
    if isinstance(data, Event):
        return data
    if not isinstance(data, dict):
        return None
    cls = RECORDS.get(str(data.get("type")))
    if cls is None:
        return None
    try:
        return cls.from_dict(data)
    except (TypeError, ValueError):
        return None


def build_event(type_: str, stage: str | None = None, **data: Any) -> Event:
    """A record from ``EventLog.emit``-style arguments; an unknown field is an error (a typo in a writer)."""
    cls = RECORDS.get(type_)
    if cls is None:
        raise ValueError(f"unknown event type '{type_}' (known: {', '.join(RECORDS)})")
    known = {f.name for f in fields(cls)} - set(_COMMON)
    unknown = sorted(set(data) - known)
    if unknown:
        raise TypeError(f"event '{type_}' has no field(s) {', '.join(unknown)}")
    return cls(stage=stage, **data)
