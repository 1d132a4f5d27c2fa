"""Typed artifacts: what stages produce and consume.

A stage declares the artifact kinds it ``produces`` and the ones it ``consumes``
(optionally from one named producer). The runner builds the stage graph from
these edges: the order, each stage's fingerprint (its own settings plus the
fingerprints of what it consumes) and therefore what a resume reruns all follow
from them. The kinds are open: a plugin may invent its own string kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ArtifactKind(StrEnum):
    PREFLIGHT = "preflight_facts"  # hardware facts, precision and the VRAM gate verdict
    ADAPTER = "adapter"  # a trained LoRA adapter (final checkpoint)
    TRAINING_METRICS = "training_metrics"  # steps, loss curve, decisions of one training stage
    EVAL_RESULTS = "eval_results"  # per-variant predictions and accuracy
    EVAL_ANSWERS = "eval_answers"  # per-variant answers to open and safety prompts (what the judges read)
    JUDGE_RESULTS = "judge_results"  # judge verdicts over the answers
    COMPARISON = "comparison"  # training methods side by side
    VERDICT = "verdict"  # a check's pass/fail verdict (strict_pass)
    REPORT = "report"  # human-facing reports


@dataclass(frozen=True)
class Consumes:
    """One input edge: artifacts of ``kind`` from ``stage`` (None: from every stage that produces it)."""

    kind: str
    stage: str | None = None
    # False: an ordering-and-fingerprint edge only; the consumer runs even when no producer is planned.
    required: bool = False

    def matches(self, producer: str, kind: str) -> bool:
        return kind == self.kind and (self.stage is None or self.stage == producer)

    def describe(self) -> str:
        return f"{self.kind} from {self.stage}" if self.stage else f"{self.kind} (every producer)"


def consumes(*kinds: str, stage: str | None = None, required: bool = False) -> tuple[Consumes, ...]:
    """Shorthand: ``consumes(ArtifactKind.ADAPTER, ArtifactKind.TRAINING_METRICS, stage="sft")``."""
    return tuple(Consumes(str(kind), stage, required) for kind in kinds)


@dataclass(frozen=True)
class ArtifactRef:
    """One produced artifact in the run graph, identified by its kind and producing stage."""

    kind: str
    producer: str

    def key(self) -> str:
        return f"{self.producer}:{self.kind}"
