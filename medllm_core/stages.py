"""The stage contract shared by built-in and third-party stage plugins.

A stage is registered as a ``StageSpec`` (name, kind, dependencies, settings
schema, run function). The runner calls ``run(ctx)`` with a ``StageContext`` and
expects a ``StageResult``: trained, done, skipped (with a reason) or failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medllm_core.context import StageContext


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


@dataclass
class StageResult:
    status: StageStatus
    reason: str = ""  # why it was skipped / what failed
    metrics_path: str | None = None
    checkpoint_path: str | None = None
    artifacts: dict[str, str] = field(default_factory=dict)  # label -> path
    summary: dict[str, Any] = field(default_factory=dict)  # small facts for the run summary

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "reason": self.reason,
            "metrics_path": self.metrics_path,
            "checkpoint_path": self.checkpoint_path,
            "artifacts": dict(self.artifacts),
            "summary": dict(self.summary),
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
        )


@dataclass(frozen=True)
class StageSpec:
    """What a plugin registers for one stage."""

    name: str
    run: Callable[[StageContext], StageResult]
    kind: StageKind = StageKind.CUSTOM
    requires: tuple[str, ...] = ()  # must have succeeded, else this stage is skipped
    after: tuple[str, ...] = ()  # ordering only: run after these when they are present
    settings: type | None = None  # dataclass of the stage's [stages.<name>] options
    description: str = ""
    enabled_by_default: bool = True
    # Required stages are what strict_pass checks; training stages are required by default.
    required_by_default: bool | None = None
    # One line for the dry-run plan (e.g. the chosen batch size); optional.
    describe_plan: Callable[[StageContext], str] | None = None
    # Validate inputs (data files, paths) before any stage runs; raise MedllmError on bad input.
    check_inputs: Callable[[StageContext], None] | None = None

    @property
    def phase(self) -> int:
        return PHASE[StageKind(self.kind)]

    def default_required(self) -> bool:
        if self.required_by_default is not None:
            return self.required_by_default
        return StageKind(self.kind) == StageKind.TRAINING
