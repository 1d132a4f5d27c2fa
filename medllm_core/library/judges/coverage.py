"""How many of a judge's items got a usable verdict, and what the rest ran into.

Every judge item ends in one of four outcomes: ``judged`` (a verdict the tables
use), ``parse_failures`` (the endpoint answered, but not with an acceptable JSON
object), ``transport_failures`` (HTTP, connection or timeout errors after the
retries) or ``not_requested`` (the stage gave up first: circuit breaker, stop
request). A judge whose verdicts cover less than ``min_coverage`` of its items
is ``partial`` (``failed`` at zero): its tables are too thin to cite, readiness
must not count it as run, and a resume asks again for what is missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from medllm_core.library.judges.records import TRANSPORT_KINDS, JudgeResult

JudgeStatus = Literal["done", "partial", "failed"]


@dataclass
class Tally:
    items: int = 0
    judged: int = 0
    parse_failures: int = 0
    transport_failures: int = 0
    not_requested: int = 0

    def add(self, result: JudgeResult) -> None:
        self.items += 1
        if result.ok:
            self.judged += 1
        elif result.parse_status == "parse_failure":
            self.parse_failures += 1
        elif result.parse_status in TRANSPORT_KINDS:
            self.transport_failures += 1
        else:
            self.not_requested += 1

    @property
    def coverage(self) -> float:
        return self.judged / self.items if self.items else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "judged": self.judged, "parse_failures": self.parse_failures,
                "transport_failures": self.transport_failures, "not_requested": self.not_requested,
                "coverage": round(self.coverage, 4)}

    def describe(self) -> str:
        """The numbers behind a status, for a reason line."""
        text = (f"{self.judged} of {self.items} items judged ({100 * self.coverage:.0f}%); "
                f"{self.parse_failures} parse failures, {self.transport_failures} transport failures")
        return text + (f", {self.not_requested} not requested" if self.not_requested else "")


def tally(results: Iterable[JudgeResult], groups: Iterable[str]) -> tuple[Tally, dict[str, Tally]]:
    """The whole judge's tally, and one per group (a variant), in first-seen order."""
    total = Tally()
    per_group: dict[str, Tally] = {}
    for result, group in zip(results, groups, strict=True):
        total.add(result)
        per_group.setdefault(group, Tally()).add(result)
    return total, per_group


def judge_status(total: Tally, min_coverage: float) -> JudgeStatus:
    if total.items and total.judged == 0:
        return "failed"
    return "done" if total.coverage >= min_coverage else "partial"


def status_reason(label: str, status: JudgeStatus, total: Tally, min_coverage: float, aborted: str = "") -> str:
    """One line that says why a judge did not count, with its numbers ("" when it is done)."""
    if status == "done":
        return ""
    if aborted:  # what ended the stage comes first: it is what the user has to fix
        return f"{label} {status}: {aborted}; {total.describe()}"
    why = "no usable verdict" if status == "failed" else f"coverage below min_coverage {min_coverage:g}"
    return f"{label} {status}: {why}: {total.describe()}"
