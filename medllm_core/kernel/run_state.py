"""``run_state.json``: what one run folder's attempts have recorded (what ``--resume`` reads).

``RunState`` is the only writer and reader of the file. Its JSON keys are the
fields below (``run_id``, ``attempt``, ``results``, ``fingerprints``,
``artifacts``, ``inputs``, ``running``, ``decisions``) plus ``schema``
(``RUN_STATE_SCHEMA``; a file without it is version 1, same keys). Loading is
tolerant of missing keys (they are empty) and ignores unknown ones.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medllm_core.kernel.atomic import write_json
from medllm_core.kernel.context import Decision
from medllm_core.kernel.stages import StageResult

STATE_FILE = "run_state.json"
RUN_STATE_SCHEMA = 2  # 1: the same keys, written before the version was recorded


def _decision_from_dict(item: dict[str, Any]) -> Decision:
    return Decision(item["kind"], item.get("summary", ""), item.get("facts", {}), item.get("stage"),
                    item.get("ts", time.time()))


@dataclass
class RunState:
    run_id: str = ""
    attempt: int = 1
    results: dict[str, StageResult] = field(default_factory=dict)  # stage -> its result
    fingerprints: dict[str, str | None] = field(default_factory=dict)  # stage -> fingerprint of its inputs
    artifacts: dict[str, dict[str, str | None]] = field(default_factory=dict)  # stage -> path -> signature
    inputs: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # stage -> what was fingerprinted
    running: dict[str, str] = field(default_factory=dict)  # stage -> fingerprint, while it runs
    decisions: list[Decision] = field(default_factory=list)
    schema: int = RUN_STATE_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "attempt": self.attempt,
            "results": {name: result.to_dict() for name, result in self.results.items()},
            "fingerprints": dict(self.fingerprints),
            "artifacts": dict(self.artifacts),
            "inputs": dict(self.inputs),
            "running": dict(self.running),
            "decisions": [d.to_dict() for d in self.decisions],
            "schema": self.schema,
        }

    @classmethod
    def from_dict(cls, data: Any) -> RunState:
        """Raises ``ValueError`` for something that is not a run state."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        try:
            return cls(
                run_id=str(data.get("run_id", "")),
                attempt=int(data.get("attempt") or 1),
                results={n: StageResult.from_dict(r) for n, r in (data.get("results") or {}).items()},
                fingerprints=dict(data.get("fingerprints") or {}),
                artifacts=dict(data.get("artifacts") or {}),
                inputs=dict(data.get("inputs") or {}),
                running=dict(data.get("running") or {}),
                decisions=[_decision_from_dict(d) for d in data.get("decisions") or []],
                schema=int(data.get("schema") or 1),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed run state: {exc}") from None

    @classmethod
    def load(cls, path: Path) -> RunState:
        """Raises ``OSError`` (unreadable) or ``ValueError`` (not JSON, or not a run state)."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def save(self, path: Path) -> Path:
        return write_json(path, self.to_dict())  # atomic: a killed run never leaves half a file

    def carry_into(self, current: RunState) -> RunState:
        """``current`` (this attempt) plus what this (previous) state recorded for stages it has not reached.

        A resume that is itself interrupted then loses nothing.
        """
        touched = set(current.results) | set(current.running)
        carried = [name for name in self.results if name not in touched]

        def merged(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
            return {**{n: older[n] for n in carried if n in older}, **newer}

        return RunState(
            run_id=current.run_id,
            attempt=current.attempt,
            results=merged(self.results, current.results),
            fingerprints=merged(self.fingerprints, current.fingerprints),
            artifacts=merged(self.artifacts, current.artifacts),
            inputs=merged(self.inputs, current.inputs),
            running={**{n: fp for n, fp in self.running.items() if n not in touched}, **current.running},
            decisions=list(current.decisions) + [d for d in self.decisions if d.stage in carried],
        )
