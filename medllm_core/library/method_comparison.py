"""``reports/training/method_comparison.md|.json``: every training method from the same SFT model.

The methods are the graph's training methods (training stages that continue
another stage's adapter): the built-in DPO, SimPO and KTO and any plugin's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medllm_core.kernel.graph import method_baseline, training_methods
from medllm_core.library.training.metrics import TrainingMetrics


def _row(stage: str, metrics: TrainingMetrics | None, status: str) -> dict[str, Any]:
    if metrics is None:
        return {"method": stage, "status": status, "skipped": True, "reason": "no metrics file"}
    return {
        "method": stage,
        "status": status,
        "skipped": bool(metrics.skipped),
        "reason": metrics.reason,
        "steps": metrics.steps,
        "final_loss": metrics.final_loss,
        "reward_accuracy": metrics.reward_accuracy,
        "reward_margin": metrics.reward_margin,
        "wall_time_s": metrics.wall_time_s,
        "tokens_per_second": metrics.tokens_per_second,
        "tokens_source": metrics.train_tokens_source,
        "peak_memory_gb": metrics.peak_memory_gb,
        "peak_memory_kind": metrics.peak_memory_kind,
        "reference_model": metrics.reference_model,
        "train_fingerprint": (metrics.data or {}).get("train_fingerprint"),
        "seed": metrics.seed,
        "effective_batch_size": metrics.effective_settings.get("effective_batch_size"),
        "decisions": [f"{d['kind']}: {d['summary']}" for d in metrics.decisions or []],
        "note": metrics.extra.get("comparison_note", ""),
    }


def build_comparison(plan: list[Any], results: dict[str, Any]) -> dict[str, Any]:
    """``plan``: the run's planned stages; ``results``: stage name -> StageResult of this run."""
    rows = []
    for planned in training_methods(plan):
        method = planned.spec.name
        result = results.get(method)
        if result is None:
            continue
        metrics = None
        if result.metrics_path and Path(result.metrics_path).is_file():
            metrics = TrainingMetrics.from_file(Path(result.metrics_path))
        rows.append(_row(method, metrics, str(result.status)))
    fingerprints = {r.get("train_fingerprint") for r in rows if r.get("train_fingerprint")}
    baseline = method_baseline(plan)
    return {
        "methods": rows,
        "starts_from": baseline,
        "same_training_pairs": len(fingerprints) <= 1,
        "note": f"All methods start from the same {baseline} adapter with the same seed and preference split.",
    }


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        # 11190.4 tokens/s reads as 11,190, not 1.119e+04; smaller numbers keep `digits` significant digits
        return f"{value:,.0f}" if abs(value) >= 10 ** (digits - 1) else f"{value:.{digits}g}"
    return str(value)


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Training method comparison",
        "",
        report["note"],
        "",
        "| method | status | steps | final loss | reward acc. | reward margin | wall time (s) | tokens/s | "
        "peak memory (GB) | reference |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["methods"]:
        if r.get("skipped") and r.get("steps") in (None, 0):
            lines.append(f"| {r['method']} | {r['status']} | – | – | – | – | – | – | – | {r.get('reason', '')} |")
            continue
        lines.append(
            f"| {r['method']} | {r['status']} | {_fmt(r['steps'])} | {_fmt(r['final_loss'])} | "
            f"{_fmt(r['reward_accuracy'])} | {_fmt(r['reward_margin'])} | {_fmt(r['wall_time_s'])} | "
            f"{_fmt(r['tokens_per_second'])} | {_fmt(r['peak_memory_gb'])} ({r['peak_memory_kind']}) | "
            f"{r.get('reference_model') or '–'} |"
        )
    notes = [f"- {r['method']}: {r['note']}" for r in report["methods"] if r.get("note")]
    lines += ["", *notes, ""] if notes else [""]
    decided = [(r["method"], d) for r in report["methods"] for d in r.get("decisions", [])]
    if decided:
        lines += ["## Decisions taken", ""] + [f"- {m}: {d}" for m, d in decided] + [""]
    if not report["same_training_pairs"]:
        lines += ["**Warning:** the methods did not train on the same preference pairs.", ""]
    return "\n".join(lines)
