"""The verdict of the run's gate: may training stages train on this machine?

The kernel only carries the verdict; a stage that declares ``StageSpec.gate``
(the built-in preflight) computes it from the hardware and its own settings
before any stage runs, so the dry run, every stage's input check and the
training stages all see the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

GateState = Literal["pass", "skip", "block"]


@dataclass(frozen=True)
class GateVerdict:
    verdict: GateState
    reason: str
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def training_allowed(self) -> bool:
        return self.verdict == "pass"

    @classmethod
    def open(cls, reason: str = "no stage in this run declares a gate") -> GateVerdict:
        return cls("pass", reason)
