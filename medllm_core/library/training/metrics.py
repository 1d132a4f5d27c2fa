"""Loss curves (data file + PNG) and the per-stage metrics JSON of the output contract.

``TrainingMetrics`` owns ``reports/training/<prefix>_metrics.json``: the training
engine builds one and writes it; the completion check, the method comparison and
the thesis reports read it back with ``TrainingMetrics.from_file``. The JSON keys
are the field names, in field order: the run facts, then the method's
``extra_facts`` (``extra``, kept at the top level, e.g. ``reference_model``), then
what the outcome (skipped / failed / stopped / trained) records, then ``decisions``. Which
outcome fields are written depends on the outcome (``OUTCOME_KEYS``), so a skipped
stage's file names only what a skip knows.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from medllm_core.kernel.atomic import write_bytes, write_json


def loss_curve_from_history(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    points: dict[int, float] = {}
    for entry in log_history:
        if "loss" in entry and "step" in entry:
            points[int(entry["step"])] = float(entry["loss"])  # a resumed step replaces, never duplicates
    return [{"step": step, "loss": points[step]} for step in sorted(points)]


def write_loss_curve(points: list[dict[str, float]], json_path: Path, png_path: Path, title: str) -> None:
    write_json(json_path, {"points": points})
    import matplotlib

    matplotlib.use("Agg")  # no display on a rented server
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    steps = [p["step"] for p in points]
    losses = [p["loss"] for p in points]
    ax.plot(steps, losses, marker="o" if len(points) < 40 else None, markersize=3, linewidth=1.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_bytes(png_path, buffer.getvalue())


def curve_problems(points: list[dict[str, float]]) -> list[str]:
    """Why a loss curve is not evidence of training (empty, non-finite, constant, all zero)."""
    if not points:
        return ["loss curve is empty"]
    losses = [p["loss"] for p in points]
    problems = []
    if not all(math.isfinite(v) for v in losses):
        problems.append("loss curve has NaN/inf values")
    finite = [v for v in losses if math.isfinite(v)]
    if finite and all(v == 0.0 for v in finite):
        problems.append("loss is exactly 0 at every step")
    elif len(finite) > 1 and max(finite) - min(finite) == 0.0:
        problems.append("loss is constant (degenerate)")
    return problems


RUN_FACTS = ("stage", "method", "model", "model_slug", "device", "precision", "precision_reason", "settings", "lora",
             "seed", "checkpoint")
REWARD_KEYS = ("reward_accuracy", "reward_margin", "rewards_first_step", "rewards_last_step")
_SKIPPED = ("skipped", "reason", "steps", "final_loss", "loss_curve_file")
_FAILED = ("skipped", "failed", "reason", "steps", "final_loss", "loss_curve_file", "attempts")
_TRAINED = ("skipped", "failed", "reason", "steps", "final_loss", "train_loss", "loss_curve_file", "loss_curve_png",
            "loss_curve_problems", "stopped_by_request", "train_rows", "data", "final_settings", "attempts",
            "wall_time_s", "train_tokens", "train_tokens_source", "tokens_per_second", "examples_per_second",
            "first_step_s", "tokens_per_second_after_first_step", "world_size", "peak_memory")
# A stage stopped on request is not a failure: ``stopped: true`` (``failed`` stays false).
_STOPPED = ("skipped", "failed", "stopped", "reason", "steps", "final_loss", "loss_curve_file", "attempts")
OUTCOME_KEYS = {"skipped": _SKIPPED, "failed": _FAILED, "stopped": _STOPPED, "trained": _TRAINED}


@dataclass
class TrainingMetrics:
    """One training stage's metrics file (see the module docstring for the JSON layout)."""

    outcome: str = "trained"  # skipped | failed | stopped | trained (not a key: skipped/failed/stopped say it)
    # run facts
    stage: str = ""
    method: str = ""
    model: str = ""
    model_slug: str = ""
    device: str = ""
    precision: str = ""
    precision_reason: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    lora: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    checkpoint: str | None = None
    # outcome
    skipped: bool = False
    failed: bool = False
    stopped: bool = False
    reason: str = ""
    steps: int = 0
    final_loss: float | None = None
    train_loss: float | None = None
    loss_curve_file: str | None = None
    loss_curve_png: str | None = None
    loss_curve_problems: list[str] = field(default_factory=list)
    stopped_by_request: bool = False
    train_rows: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    final_settings: dict[str, Any] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float | None = None
    train_tokens: int | None = None
    train_tokens_source: str | None = None
    tokens_per_second: float | None = None
    examples_per_second: float | None = None
    # the first optimizer step holds kernel compilation and warm-up; short stages are dominated by it
    first_step_s: float | None = None
    tokens_per_second_after_first_step: float | None = None  # steps 2..N, the stage's tokens pro rata per step
    world_size: int | None = None
    peak_memory: dict[str, Any] = field(default_factory=dict)
    # preference trainers only (written when rewards were logged)
    reward_accuracy: float | None = None
    reward_margin: float | None = None
    rewards_first_step: dict[str, Any] | None = None
    rewards_last_step: dict[str, Any] | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # a method's extra_facts and unknown keys

    def to_dict(self) -> dict[str, Any]:
        out = {key: getattr(self, key) for key in RUN_FACTS}
        out.update({k: v for k, v in self.extra.items() if k not in out})
        keys = OUTCOME_KEYS[self.outcome]
        if self.outcome == "trained" and self.rewards_first_step is not None:
            keys = keys + REWARD_KEYS
        out.update({key: getattr(self, key) for key in keys})
        out["decisions"] = list(self.decisions)
        return out

    def write(self, path: Path) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingMetrics:
        known = {f.name for f in fields(cls)} - {"outcome", "extra"}
        outcome = ("skipped" if data.get("skipped") else "failed" if data.get("failed")
                   else "stopped" if data.get("stopped") else "trained")
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(outcome=outcome, **{k: v for k, v in data.items() if k in known}, extra=extra)

    @classmethod
    def from_file(cls, path: Path) -> TrainingMetrics:
        """Raises ``OSError`` (unreadable) or ``ValueError`` (not JSON, or not an object)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path} is not a JSON object")
        return cls.from_dict(data)

    # -- what the readers ask ------------------------------------------------
    @property
    def effective_settings(self) -> dict[str, Any]:
        """The settings training ended with (after OOM retries), else the configured ones."""
        return self.final_settings or self.settings or {}

    @property
    def reference_model(self) -> str | None:
        return self.extra.get("reference_model")

    @property
    def peak_memory_gb(self) -> float | None:
        peak = self.peak_memory or {}
        return peak.get("peak_allocated_gb", peak.get("peak_rss_gb"))

    @property
    def peak_memory_kind(self) -> str:
        return "GPU allocated" if "peak_allocated_gb" in (self.peak_memory or {}) else "process RSS"


def write_metrics(path: Path, metrics: TrainingMetrics) -> Path:
    return metrics.write(path)
