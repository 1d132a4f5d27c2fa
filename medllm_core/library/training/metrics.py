"""Loss curves (data file + PNG) and the per-stage metrics JSON of the output contract."""

from __future__ import annotations

import io
import math
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


def write_metrics(path: Path, payload: dict[str, Any]) -> Path:
    return write_json(path, payload)
