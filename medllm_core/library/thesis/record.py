"""``reports/thesis_support/experiment_record.json``: everything needed to reproduce and cite the run."""

from __future__ import annotations

import hashlib
import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from medllm_core.library.data import data_sources
from medllm_core.library.thesis.inputs import ReportInputs
from medllm_core.library.thesis.protocols import item_counts, protocols

PACKAGES = ("medllm", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "openai")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def file_sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def evaluation_summary(results: dict[str, Any] | None) -> dict[str, Any] | None:
    """Items evaluated and dropped, and how they were scored (None when evaluation did not run)."""
    if not results:
        return None
    found = protocols(results)
    return {
        **item_counts(results).to_dict(),
        "protocol": found[0].name,
        "protocols": {p.name: {"description": p.description, "prompt_template": p.prompt_template,
                               "shots": p.shots, "max_new_tokens": p.max_new_tokens,
                               "chance_accuracy": p.chance_accuracy} for p in found},
        "chance_accuracy": found[0].chance_accuracy,
    }


def build_experiment_record(context: Any, inputs: ReportInputs) -> dict[str, Any]:
    profile = context.profile
    data = {}
    for source in data_sources(profile):  # path or dataset_info + dataset_name alike
        path = source.file
        data[source.key] = {"path": path, "format": source.format, "sha256": file_sha256(path)}
    return {
        "run_id": context.run.run_id,
        # A smoke test's numbers test the pipeline: said first, so nobody cites them.
        "smoke_test": profile.model.is_smoke_test,
        "smoke_reason": inputs.smoke_reason,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "hardware": context.hardware.to_dict(),
        "precision": {"dtype": context.precision.dtype, "reason": context.precision.reason},
        "gate": {"verdict": context.gate.verdict, "reason": context.gate.reason},
        "seeds": {"run": profile.run.seed,
                  **{name: m.seed for name, m in inputs.training_metrics.items()}},
        "data_fingerprints": data,
        "effective_profile": profile.to_toml_dict(),
        "decisions": [d.to_dict() for d in context.decisions],
        "stage_results": {name: result.to_dict() for name, result in context.results.items()},
        "timings_s": inputs.stage_durations,
        "evaluation": evaluation_summary(inputs.eval_results),
        "training": {name: {"steps": m.steps, "final_loss": m.final_loss, "wall_time_s": m.wall_time_s,
                            "tokens_per_second": m.tokens_per_second, "peak_memory": m.peak_memory or None,
                            "final_settings": m.final_settings or None, "reward_accuracy": m.reward_accuracy}
                     for name, m in inputs.training_metrics.items()},
    }
