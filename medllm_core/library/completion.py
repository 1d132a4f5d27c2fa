"""The strict completion check: did every required training stage really train?

``strict_pass`` is true only if, for each required training stage, the stage
was not skipped, trained for > 0 steps, left a finite, non-degenerate loss
curve, and its final checkpoint exists and loads.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medllm_core.kernel.stages import StageKind, StageResult, StageStatus
from medllm_core.library.training.metrics import TrainingMetrics, curve_problems


@dataclass
class Criterion:
    stage: str
    name: str
    passed: bool
    detail: str


def _load_json(path: Path) -> tuple[dict[str, Any] | None, str]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), ""
    except FileNotFoundError:
        return None, f"{path} not found"
    except (OSError, json.JSONDecodeError) as exc:
        return None, f"{path} unreadable: {exc}"


def _load_metrics(path: Path) -> tuple[TrainingMetrics | None, str]:
    try:
        return TrainingMetrics.from_file(path), ""
    except FileNotFoundError:
        return None, f"{path} not found"
    except (OSError, ValueError) as exc:
        return None, f"{path} unreadable: {exc}"


def checkpoint_loads(final: Path) -> tuple[bool, str]:
    """The adapter weights open and are finite, and the tokenizer saved beside them loads."""
    config = final / "adapter_config.json"
    weights = final / "adapter_model.safetensors"
    if not config.is_file() or not weights.is_file():
        missing = [p.name for p in (config, weights) if not p.is_file()]
        return False, f"missing {', '.join(missing)} in {final}"
    try:
        json.loads(config.read_text(encoding="utf-8"))
        from safetensors.torch import load_file

        tensors = load_file(str(weights))
        if not tensors:
            return False, "adapter holds no tensors"
        import torch

        bad = [name for name, t in tensors.items() if not torch.isfinite(t.float()).all()]
        if bad:
            return False, f"non-finite values in {len(bad)} adapter tensor(s), e.g. {bad[0]}"
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(final))
    except Exception as exc:
        return False, f"does not load: {type(exc).__name__}: {exc}"
    return True, f"{len(tensors)} adapter tensors load and are finite; tokenizer loads"


def check_training_stage(name: str, result: StageResult | None) -> list[Criterion]:
    out: list[Criterion] = []

    def add(criterion: str, passed: bool, detail: str) -> None:
        out.append(Criterion(name, criterion, passed, detail))

    if result is None:
        add("ran", False, "stage did not run")
        return out
    add("not_skipped", result.status == StageStatus.TRAINED,
        "trained" if result.status == StageStatus.TRAINED else f"{result.status}: {result.reason}")
    if not result.metrics_path:
        add("metrics_file", False, "stage wrote no metrics file")
        return out
    metrics, error = _load_metrics(Path(result.metrics_path))
    add("metrics_file", metrics is not None, error or result.metrics_path)
    if metrics is None:
        return out
    if metrics.skipped:
        add("metrics_not_skipped", False, f"metrics say skipped: {metrics.reason}")
    steps = metrics.steps or 0
    add("steps_positive", steps > 0, f"steps = {steps}")
    curve_path = metrics.loss_curve_file
    points: list[dict[str, float]] = []
    if curve_path:
        curve, error = _load_json(Path(curve_path))
        points = (curve or {}).get("points", [])
        add("loss_curve_present", bool(points), error or f"{len(points)} points in {curve_path}")
    else:
        add("loss_curve_present", False, "no loss curve file recorded")
    if points:
        problems = curve_problems(points)
        losses = [p["loss"] for p in points]
        finite = [v for v in losses if math.isfinite(v)]
        span = f"{finite[0]:.4f} → {finite[-1]:.4f}" if finite else "no finite values"
        add("loss_curve_healthy", not problems, "; ".join(problems) or f"finite, varies ({span})")
    final = Path(result.checkpoint_path or metrics.checkpoint or "")
    present = bool(result.checkpoint_path) and final.is_dir()
    add("final_checkpoint_present", present, str(final) if present else f"{final} missing")
    if present:
        loads, detail = checkpoint_loads(final)
        add("final_checkpoint_loads", loads, detail)
    return out


def run_completion_check(context: Any) -> dict[str, Any]:
    """Evaluate every required training stage of ``context`` (a RunContext)."""
    required = [p for p in context.plan
                if p.enabled and p.required and StageKind(p.spec.kind) == StageKind.TRAINING]
    criteria: list[Criterion] = []
    for planned in required:
        criteria.extend(check_training_stage(planned.spec.name, context.results.get(planned.spec.name)))
    failures = [f"{c.stage}: {c.name} — {c.detail}" for c in criteria if not c.passed]
    if not required:
        failures.append("no required training stage is enabled in this run")
    return {
        "strict_pass": not failures,
        "run_id": context.run.run_id,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": context.hardware.describe(),
        "precision": context.precision.dtype,
        "required_stages": [p.spec.name for p in required],
        "criteria": [asdict(c) for c in criteria],
        "failures": failures,
    }


def render_markdown(report: dict[str, Any]) -> str:
    verdict = "PASS" if report["strict_pass"] else "FAIL"
    lines = [
        "# GPU completion check",
        "",
        f"- `strict_pass`: **{str(report['strict_pass']).lower()}** ({verdict})",
        f"- Device: {report['device']} (precision {report['precision']})",
        f"- Run: `{report['run_id']}`, checked {report['generated_at']}",
        f"- Required training stages: {', '.join(report['required_stages']) or 'none'}",
        "",
        "| stage | criterion | result | detail |",
        "|---|---|---|---|",
    ]
    for c in report["criteria"]:
        detail = str(c["detail"]).replace("|", "\\|")
        lines.append(f"| {c['stage']} | {c['name']} | {'✅ pass' if c['passed'] else '❌ fail'} | {detail} |")
    if report["failures"]:
        lines += ["", "## Why strict_pass is false", ""] + [f"- {f}" for f in report["failures"]]
    lines.append("")
    return "\n".join(lines)
