"""What a stage receives: the run, its settings, and ways to report evidence."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medllm_core.kernel import events as ev
from medllm_core.kernel import report_paths
from medllm_core.kernel.artifacts import ArtifactRef
from medllm_core.kernel.events import EventLog
from medllm_core.kernel.gate import GateVerdict
from medllm_core.kernel.hardware import HardwareInfo, PrecisionDecision
from medllm_core.kernel.profile import Profile
from medllm_core.kernel.stages import StageResult, StageSpec

STOP_FILE = "STOP"  # created in the run folder to ask training to stop at the next step


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    output_dir: Path  # the run's output root: reports/ and checkpoints/ live here
    run_dir: Path  # this run's own folder: events.jsonl, effective profile, logs

    @property
    def reports_dir(self) -> Path:
        return report_paths.reports_dir(self.output_dir)

    @property
    def checkpoints_dir(self) -> Path:
        return report_paths.checkpoints_dir(self.output_dir)

    @property
    def events_path(self) -> Path:
        return self.run_dir / report_paths.EVENTS_FILE

    @property
    def cache_dir(self) -> Path:
        return self.output_dir / ".medllm_cache"


@dataclass
class PlannedStage:
    spec: StageSpec
    enabled: bool
    required: bool
    settings: Any  # the stage's settings dataclass instance, or None
    source_plugin: str
    inputs: tuple[ArtifactRef, ...] = ()  # the artifacts it consumes, resolved to their producers
    upstream: tuple[str, ...] = ()  # stages it waits for: producers of its inputs, then requires/after


@dataclass
class Decision:
    kind: str
    summary: str
    facts: dict[str, Any]
    stage: str | None
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "summary": self.summary, "facts": self.facts, "stage": self.stage, "ts": self.ts}


@dataclass
class RunContext:
    """State shared by every stage of one run."""

    profile: Profile
    run: RunInfo
    events: EventLog
    hardware: HardwareInfo
    precision: PrecisionDecision
    gate: GateVerdict
    plan: list[PlannedStage]
    results: dict[str, StageResult] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    preflight: dict[str, Any] = field(default_factory=dict)  # facts the preflight stage found
    # True when continuing an interrupted run (--resume): training stages continue
    # from their last checkpoint instead of starting clean.
    resume: bool = False
    # stage -> fingerprint of its inputs in this attempt (what its artifacts are identified by)
    fingerprints: dict[str, str] = field(default_factory=dict)

    def planned(self, name: str) -> PlannedStage | None:
        return next((p for p in self.plan if p.spec.name == name), None)


@dataclass
class StageContext:
    run_context: RunContext
    stage: PlannedStage

    # -- read-only views ---------------------------------------------------
    @property
    def name(self) -> str:
        return self.stage.spec.name

    @property
    def profile(self) -> Profile:
        return self.run_context.profile

    @property
    def settings(self) -> Any:
        return self.stage.settings

    @property
    def run(self) -> RunInfo:
        return self.run_context.run

    @property
    def hardware(self) -> HardwareInfo:
        return self.run_context.hardware

    @property
    def precision(self) -> PrecisionDecision:
        return self.run_context.precision

    @property
    def gate(self) -> GateVerdict:
        return self.run_context.gate

    @property
    def results(self) -> dict[str, StageResult]:
        return self.run_context.results

    @property
    def events(self) -> EventLog:
        return self.run_context.events

    @property
    def plan(self) -> list[PlannedStage]:
        return self.run_context.plan

    def fingerprint_of(self, stage: str) -> str | None:
        """The fingerprint of ``stage``'s inputs in this attempt: changes exactly when its artifacts would."""
        return self.run_context.fingerprints.get(stage)

    # -- evidence ----------------------------------------------------------
    def decide(self, kind: str, summary: str, **facts: Any) -> Decision:
        """Record an automatic decision with the measured facts behind it."""
        decision = Decision(kind, summary, facts, self.name)
        self.run_context.decisions.append(decision)
        self.events.write(ev.DecisionEvent(stage=self.name, kind=kind, summary=summary, facts=facts))
        return decision

    def stage_decisions(self) -> list[dict[str, Any]]:
        return [d.to_dict() for d in self.run_context.decisions if d.stage == self.name]

    def log(self, message: str, level: str = "info") -> None:
        self.events.write(ev.Log(stage=self.name, level=level, message=message))

    def check(self, name: str, passed: bool, detail: str = "") -> None:
        self.events.write(ev.Check(stage=self.name, name=name, passed=passed, detail=detail))

    def progress(self, step: int, total: int | None, eta_s: float | None = None) -> None:
        self.events.write(ev.Progress(stage=self.name, step=step, total=total, eta_s=eta_s))

    def loss(self, step: int, value: float) -> None:
        self.events.write(ev.Loss(stage=self.name, step=step, loss=value))

    def memory(self, device: str, used_gb: float | None, total_gb: float | None) -> None:
        self.events.write(ev.Memory(stage=self.name, device=device, used_gb=used_gb, total_gb=total_gb))

    def stop_requested(self) -> bool:
        return (self.run.run_dir / STOP_FILE).exists()
