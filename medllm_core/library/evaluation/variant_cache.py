"""Per-variant answers kept in the run folder, so a rerun of the evaluation regenerates only what changed.

When one training method is retrained on ``--resume``, the evaluation stage
reruns (it consumes every adapter), but only the retrained variant is
generated again: every other variant's answers are taken from here, because
their key (the evaluation settings, the items, the model and the fingerprint
and on-disk signature of the variant's adapter) is unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medllm_core.kernel.atomic import write_json
from medllm_core.kernel.context import StageContext
from medllm_core.kernel.fingerprint import artifact_signature, digest

CACHE_VERSION = 2  # 2: MCQ records per protocol


@dataclass
class VariantAnswers:
    """What one model answered: scored MCQ records per protocol and the raw open / safety answers."""

    mcq: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    open: list[dict[str, Any]] = field(default_factory=list)
    safety: list[dict[str, Any]] = field(default_factory=list)


def variant_key(ctx: StageContext, name: str, adapter: str | None, items: dict[str, Any]) -> str:
    """Everything a variant's answers depend on; the producing stage's fingerprint stands for its adapter.

    The batch settings stay in: on the CPU batch 1 and batch 8 give identical answers (a test holds
    them to it), but bf16 kernels on a GPU may round differently at another batch shape.
    """
    settings = asdict(ctx.settings)
    for irrelevant in ("variants", "on_bad_items"):
        settings.pop(irrelevant, None)
    return digest({
        "cache_version": CACHE_VERSION,
        "variant": name,
        "settings": settings,
        "items": items,
        "model": asdict(ctx.profile.model),
        "precision": ctx.precision.dtype,
        "adapter_stage_fingerprint": ctx.fingerprint_of(name) if adapter else None,
        "adapter_signature": artifact_signature(adapter) if adapter else None,
    })


def _cache_file(ctx: StageContext, name: str) -> Path:
    return ctx.run.run_dir / "cache" / "eval" / f"{name}.json"


def load_answers(ctx: StageContext, name: str, key: str) -> VariantAnswers | None:
    try:
        stored = json.loads(_cache_file(ctx, name).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(stored, dict) or stored.get("key") != key:
        return None
    return VariantAnswers(stored["mcq"], stored["open"], stored["safety"])


def store_answers(ctx: StageContext, name: str, key: str, answers: VariantAnswers) -> None:
    write_json(_cache_file(ctx, name), {"key": key, **asdict(answers)})
