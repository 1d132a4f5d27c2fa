"""The stage contract shared by built-in and third-party stage plugins.

A stage is registered as a ``StageSpec``: name, kind, the artifacts it consumes
and produces, its settings schema and its run function. The runner calls
``run(ctx)`` with a ``StageContext`` and expects a ``StageResult``: trained,
done, skipped (with a reason), failed, or stopped (ended early on a stop request).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from medllm_core.kernel.artifacts import ArtifactKind, Consumes

if TYPE_CHECKING:
    from medllm_core.kernel.context import StageContext
    from medllm_core.kernel.gate import GateVerdict


class StageKind(StrEnum):
    PREFLIGHT = "preflight"
    TRAINING = "training"
    EVALUATION = "evaluation"
    JUDGE = "judge"
    CUSTOM = "custom"
    CHECK = "check"
    REPORT = "report"


# Stages of an earlier phase always run before stages of a later one; inside a
# phase, dependencies and then registration order decide.
PHASE = {
    StageKind.PREFLIGHT: 0,
    StageKind.TRAINING: 10,
    StageKind.EVALUATION: 20,
    StageKind.JUDGE: 30,
    StageKind.CUSTOM: 40,
    StageKind.CHECK: 80,
    StageKind.REPORT: 90,
}


class StageStatus(StrEnum):
    TRAINED = "trained"  # a training stage that really trained
    DONE = "done"  # any other stage that did its work
    SKIPPED = "skipped"
    FAILED = "failed"
    # Ended early on a stop request (STOP file, the TUI's stop): not an error; --resume continues it.
    STOPPED = "stopped"


@dataclass
class StageResult:
    status: StageStatus
    reason: str = ""  # why it was skipped / what failed
    metrics_path: str | None = None
    checkpoint_path: str | None = None
    artifacts: dict[str, str] = field(default_factory=dict)  # label -> path
    summary: dict[str, Any] = field(default_factory=dict)  # small facts for the run summary
    # A check stage's verdict (the completion check's strict_pass): False makes the run exit 5.
    verdict: bool | None = None
    # False: the stage finished but its output is not complete (e.g. judge calls that failed);
    # a resume runs it again instead of reusing it.
    reusable: bool = True

    @property
    def ok(self) -> bool:
        return self.status in (StageStatus.TRAINED, StageStatus.DONE)

    @classmethod
    def trained(cls, **kwargs: Any) -> StageResult:
        return cls(StageStatus.TRAINED, **kwargs)

    @classmethod
    def done(cls, **kwargs: Any) -> StageResult:
        return cls(StageStatus.DONE, **kwargs)

    @classmethod
    def skipped(cls, reason: str, **kwargs: Any) -> StageResult:
        return cls(StageStatus.SKIPPED, reason=reason, **kwargs)

    @classmethod
    def failed(cls, error: str, **kwargs: Any) -> StageResult:
        return cls(StageStatus.FAILED, reason=error, **kwargs)

    @classmethod
    def stopped(cls, reason: str, **kwargs: Any) -> StageResult:
        """Ended early because a stop was requested; ``--resume`` continues it like an interrupted stage."""
        return cls(StageStatus.STOPPED, reason=reason, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "reason": self.reason,
            "metrics_path": self.metrics_path,
            "checkpoint_path": self.checkpoint_path,
            "artifacts": dict(self.artifacts),
            "summary": dict(self.summary),
            "verdict": self.verdict,
            "reusable": self.reusable,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageResult:
        return cls(
            StageStatus(data["status"]),
            reason=data.get("reason", ""),
            metrics_path=data.get("metrics_path"),
            checkpoint_path=data.get("checkpoint_path"),
            artifacts=dict(data.get("artifacts", {})),
            summary=dict(data.get("summary", {})),
            verdict=data.get("verdict"),
            reusable=bool(data.get("reusable", True)),
        )


@dataclass(frozen=True)
class LaunchPlan:
    """How the ranks of a training stage on several processes are started (``StageSpec.launch_plan``)."""

    mode: str = "ddp"  # "ddp" | "fsdp" (or a plugin's own word, shown in the launch decision)
    shards: int = 1  # GPUs sharing the weights: the workers' planner estimates per GPU when > 1
    config_file: str | None = None  # an accelerate config for ``accelerate launch --config_file``
    summary: str = ""  # why, for the run's decisions
    facts: dict[str, Any] = field(default_factory=dict)
    refuse: str = ""  # non-empty: the stage fails with this reason instead of launching


@dataclass(frozen=True)
class StageSpec:
    """What a plugin registers for one stage."""

    name: str
    run: Callable[[StageContext], StageResult]
    kind: StageKind = StageKind.CUSTOM
    # The artifact graph: what the stage reads and writes (ArtifactKind values, or a plugin's own strings).
    consumes: tuple[Consumes, ...] = ()
    produces: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()  # must have succeeded, else this stage is skipped
    after: tuple[str, ...] = ()  # ordering only: run after these when they are present
    settings: type | None = None  # dataclass of the stage's [stages.<name>] options
    # The [data.<key>] tables this stage reads: a table no loaded stage declares is a typo, rejected at load.
    data: tuple[str, ...] = ()
    # Environment variables that override a settings field ("ENABLE_LLM_JUDGE" -> "use_llm").
    env: Mapping[str, str] = field(default_factory=dict)
    # Older profile keys that still set a settings field ("judges.llm_judge" -> "use_llm").
    aliases: Mapping[str, str] = field(default_factory=dict)
    # The run's gate: computed once before any stage runs (dry run and input checks included).
    gate: Callable[[StageContext], GateVerdict] | None = None
    description: str = ""
    enabled_by_default: bool = True
    # Required stages are what strict_pass checks; training stages are required by default.
    required_by_default: bool | None = None
    # One line for the dry-run plan (e.g. the chosen batch size); optional.
    describe_plan: Callable[[StageContext], str] | None = None
    # Validate inputs (data files, paths) before any stage runs; raise MedllmError on bad input.
    check_inputs: Callable[[StageContext], None] | None = None
    # Several processes: how to launch them (e.g. an FSDP config) given the process count; None: plain DDP.
    launch_plan: Callable[[StageContext, int], LaunchPlan] | None = None

    @property
    def phase(self) -> int:
        return PHASE[StageKind(self.kind)]

    def default_required(self) -> bool:
        if self.required_by_default is not None:
            return self.required_by_default
        return StageKind(self.kind) == StageKind.TRAINING

    @property
    def is_training_method(self) -> bool:
        """A training stage that continues another stage's adapter (DPO, SimPO, KTO, a plugin's ORPO)."""
        return StageKind(self.kind) == StageKind.TRAINING and any(
            need.kind == ArtifactKind.ADAPTER and need.stage for need in self.consumes)

    def starts_from(self) -> str | None:
        """The stage whose adapter this training method continues (None for SFT and non-training stages)."""
        return next((need.stage for need in self.consumes if need.kind == ArtifactKind.ADAPTER and need.stage), None)
