"""What a run's screen knows about it, rebuilt from its events.jsonl: the one reader of the event log shared by
the TUI's dashboard and the headless printer (kernel/headless.py).

A pure reducer (no Textual, no clock): the dashboard and the printer feed it every event they poll, live or
replayed, and render the result; it understands attempts (a resume's replayed steps replace earlier ones, the
checks are the latest attempt's, a reused stage keeps its original duration). Keeping it pure is what lets a
finished run, a running one and a test fixture all produce the same screen.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medllm_core.kernel import event_records as ev
from medllm_core.kernel.event_records import Event, parse_event
from medllm_core.kernel.report_paths import COMPLETION_CHECK_MD, DAY1_SUMMARY, EVENTS_FILE, under_output_root
from medllm_core.kernel.resume_command import resume_command

LOG_TAIL = 500  # lines kept for the scrollable log; older ones are in events.jsonl


@dataclass
class StageView:
    name: str
    enabled: bool = True
    required: bool = False
    state: str = "pending"  # pending | running | trained | done | skipped | failed | off
    started_ts: float | None = None
    duration_s: float | None = None
    step: int = 0
    total: int | None = None
    reason: str = ""
    reused: bool = False  # a resume took this stage's earlier result; duration_s is the original one
    worked_s: float | None = None  # duration of the last attempt that really ran it (kept for a reuse)

    def elapsed(self, now: float) -> float | None:
        if self.duration_s is not None:
            return self.duration_s
        if self.started_ts is not None and self.state == "running":
            return max(0.0, now - self.started_ts)
        return None


@dataclass
class CheckView:
    name: str
    passed: bool
    detail: str
    stage: str


@dataclass
class DecisionView:
    stage: str
    kind: str
    summary: str


@dataclass
class RunView:
    run_id: str = ""
    profile: str = ""
    profile_path: str = ""
    argv: list[str] = field(default_factory=list)
    run_dir: str = ""
    output_dir: str = ""
    pid: int | None = None
    host: str = ""
    hardware: str = ""
    precision: str = ""
    gate: str = ""
    started_ts: float | None = None
    finished: ev.RunFinished | None = None
    stages: dict[str, StageView] = field(default_factory=dict)
    losses: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    memory: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)  # device -> used, total
    checks: list[CheckView] = field(default_factory=list)
    decisions: list[DecisionView] = field(default_factory=list)
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL))
    artifacts: dict[str, str] = field(default_factory=dict)  # label -> path, for the final summary
    events_seen: int = 0
    log_total: int = 0  # lines ever added; readers of the bounded tail use it to find what is new

    def _say(self, line: str) -> None:
        self.log.append(line)
        self.log_total += 1

    def log_since(self, seen: int) -> list[str]:
        """Log lines added after the first ``seen`` (as many as the tail still holds)."""
        count = min(self.log_total - seen, len(self.log))
        return list(self.log)[len(self.log) - count:] if count > 0 else []

    # -- reducer -------------------------------------------------------------
    def apply_all(self, events: Iterable[Event | dict[str, Any]]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: Event | dict[str, Any]) -> None:
        """One event (a record, or a decoded JSON line); unknown types only count as seen."""
        self.events_seen += 1
        record = parse_event(event)
        if record is None:
            return
        handler = getattr(self, f"_on_{record.TYPE}", None)
        if handler is not None:
            handler(record, record.stage or "")

    def _on_run_started(self, event: ev.RunStarted, _stage: str) -> None:
        # A resumed run appends a second run_started: the newest attempt is the live one.
        self.run_id = str(event.run_id)
        self.profile = str(event.profile)
        self.profile_path = str(event.profile_path or "")
        self.argv = [str(a) for a in event.argv]
        self.run_dir = str(event.run_dir)
        self.output_dir = str(event.output_dir)
        self.pid = event.pid
        self.host = str(event.host)
        self.hardware = event.hardware_description
        self.started_ts = event.ts
        self.finished = None
        # Checks are re-run every attempt: only the newest attempt's verdicts are true now.
        self.checks = []
        if event.attempt > 1:
            # Every stage is decided afresh by the new attempt (reused, continued or run again): until it says
            # so, an earlier attempt's "skipped"/"failed" is not this attempt's state. The duration is kept for
            # a reused stage (worked_s).
            for view in self.stages.values():
                view.worked_s = view.duration_s or view.worked_s
                view.state, view.duration_s, view.started_ts, view.reason = "pending", None, None, ""
        self._say(f"run {self.run_id} started (attempt {event.attempt})")

    def _on_plan(self, event: ev.Plan, _stage: str) -> None:
        self.precision = event.precision_line
        self.gate = event.gate_line
        for item in event.stages:
            view = self.stages.setdefault(item.name, StageView(item.name))
            view.enabled = bool(item.enabled)
            view.required = bool(item.required)
            if not view.enabled:
                view.state = "off"

    def _stage(self, name: str) -> StageView:
        return self.stages.setdefault(name, StageView(name))

    def _on_stage_started(self, event: ev.StageStarted, stage: str) -> None:
        view = self._stage(stage)
        view.worked_s = view.duration_s if view.duration_s else view.worked_s
        view.state, view.started_ts, view.duration_s = "running", event.ts, None
        self._say(f"▶ {stage}")

    def _on_stage_finished(self, event: ev.StageFinished, stage: str) -> None:
        view = self._stage(stage)
        view.state = str(event.status or "done")
        # A reused stage took no time in this attempt: keep the duration of the attempt that did the work.
        view.reused = bool(event.reused)
        earlier = view.duration_s or view.worked_s
        view.duration_s = earlier if view.reused and earlier else event.duration_s
        view.reason = str(event.reason or "")
        self._say(f"{stage} {view.state}" + (f": {view.reason}" if view.reason else ""))
        if event.metrics_path:
            self.artifacts[f"{stage} metrics"] = str(event.metrics_path)
            self._say(f"  metrics: {event.metrics_path}")
        if event.checkpoint_path:
            self._say(f"  checkpoint: {event.checkpoint_path}")

    def _on_progress(self, event: ev.Progress, stage: str) -> None:
        view = self._stage(stage)
        view.step, view.total = int(event.step or 0), event.total

    def _on_loss(self, event: ev.Loss, stage: str) -> None:
        if isinstance(event.loss, (int, float)):
            points = self.losses.setdefault(stage, [])
            step = int(event.step or 0)
            # A resume replays the steps after its checkpoint: the newest attempt's points replace them.
            while points and points[-1][0] >= step:
                points.pop()
            points.append((step, float(event.loss)))

    def _on_memory(self, event: ev.Memory, _stage: str) -> None:
        self.memory[str(event.device)] = (event.used_gb, event.total_gb)

    def _on_decision(self, event: ev.DecisionEvent, stage: str) -> None:
        item = DecisionView(stage, str(event.kind), str(event.summary))
        self.decisions.append(item)
        self._say(f"decision {item.kind}: {item.summary}")

    def _on_check(self, event: ev.Check, stage: str) -> None:
        self.checks.append(CheckView(str(event.name), bool(event.passed), str(event.detail), stage))

    def _on_log(self, event: ev.Log, stage: str) -> None:
        prefix = f"[{stage}] " if stage else ""
        self._say(f"{event.level}: {prefix}{event.message}")

    def _on_plugin(self, event: ev.PluginLoaded, _stage: str) -> None:
        if event.status == "failed":
            self._say(f"warning: plugin {event.name} failed to load: {event.reason}")

    def _on_run_finished(self, event: ev.RunFinished, _stage: str) -> None:
        self.finished = event
        if event.summary:
            self.artifacts["day-1 summary"] = str(event.summary)
        self._say(f"run finished: exit {event.exit_code} ({event.status})")
        for label, path in self.report_paths().items():
            self._say(f"  {label}: {path}")

    # -- derived facts -------------------------------------------------------
    @property
    def strict_pass(self) -> bool | None:
        found = [c for c in self.checks if c.name == "strict_pass"]
        return found[-1].passed if found else None

    def resume_command(self) -> str:
        """The exact command that continues this run (shown after a stop, a kill or a failure)."""
        if not self.run_dir:
            return ""
        return resume_command(Path(self.run_dir), self.profile_path or None, self.argv)

    def report_paths(self) -> dict[str, str]:
        """Where to look once the run is over (the README's output contract)."""
        paths = dict(self.artifacts)
        if self.output_dir:
            paths.setdefault("day-1 summary", f"{self.output_dir}/{under_output_root(DAY1_SUMMARY)}")
            paths["strict check"] = f"{self.output_dir}/{under_output_root(COMPLETION_CHECK_MD)}"
        if self.run_dir:
            paths["events"] = f"{self.run_dir}/{EVENTS_FILE}"
        return paths
