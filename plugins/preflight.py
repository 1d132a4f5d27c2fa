"""Preflight: the seed's day-1 checks (GPU, precision, VRAM gate, .env, disk, HF cache)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from medllm_core.kernel.artifacts import ArtifactKind
from medllm_core.kernel.atomic import write_json
from medllm_core.kernel.context import StageContext
from medllm_core.kernel.errors import PreflightBlocked
from medllm_core.kernel.gate import GateVerdict
from medllm_core.kernel.hookspecs import hookimpl
from medllm_core.kernel.stages import StageKind, StageResult, StageSpec
from medllm_core.library.env_file import inspect_env_file
from medllm_core.library.gates import PREFLIGHT_ALIASES, PREFLIGHT_ENV, PreflightSettings
from medllm_core.library.report_paths import ReportPaths

GIB = 1024**3
AUTODL_DATA_DISK = Path("/root/autodl-tmp")


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _free_gb(path: Path) -> float:
    return round(shutil.disk_usage(_existing_parent(path)).free / GIB, 1)


def _same_filesystem(a: Path, b: Path) -> bool:
    try:
        return _existing_parent(a).stat().st_dev == _existing_parent(b).stat().st_dev
    except OSError:
        return False


def run_preflight(ctx: StageContext) -> StageResult:
    facts: dict[str, Any] = {}
    hw = ctx.hardware
    facts["hardware"] = hw.to_dict()
    ctx.check("gpu_probe", True, hw.describe() + (f"; notes: {'; '.join(hw.notes)}" if hw.notes else ""))

    expected = ctx.profile.hardware.gpu_count
    if expected and hw.gpu_count < expected:
        ctx.decide("gpu_count_mismatch", f"profile expects {expected} GPU(s), found {hw.gpu_count}",
                   expected=expected, found=hw.gpu_count)
    ctx.decide("precision", f"{ctx.precision.dtype}: {ctx.precision.reason}",
               dtype=ctx.precision.dtype, **ctx.precision.facts)
    facts["precision"] = {"dtype": ctx.precision.dtype, "reason": ctx.precision.reason}

    gate = ctx.gate
    facts["gate"] = {"verdict": gate.verdict, "reason": gate.reason, **gate.facts}
    ctx.check("vram_gate", gate.verdict == "pass", gate.reason)
    if gate.verdict != "pass":
        ctx.decide("vram_gate", f"{gate.verdict}: {gate.reason}", verdict=gate.verdict, **gate.facts)
    if gate.facts.get("model_size_unknown"):
        # Not a silent pass: a model the gate could not size is said in the log, the checks and the summary.
        ctx.log(gate.facts["custom_model"]["reason"], level="warning")
        ctx.check("model_size_known", False, gate.facts["custom_model"]["reason"])

    env_status = inspect_env_file()
    facts["env_file"] = {
        "path": env_status.path, "exists": env_status.exists, "mode": env_status.mode,
        "readable_by_others": env_status.readable_by_others, "keys": env_status.keys,
        "api_key_configured": env_status.api_key_configured,
        "base_url_configured": env_status.base_url_configured,
    }
    warning = env_status.warning()
    ctx.check("env_file_private", warning is None, warning or
              (f"{env_status.path} present" if env_status.exists else f"{env_status.path} not found"))
    if warning:
        ctx.log(warning, level="warning")

    output_free = _free_gb(ctx.run.output_dir)
    threshold = ctx.settings.min_free_disk_gb if ctx.profile.model.tier != "tiny" else 1.0
    facts["disk"] = {"output_dir": str(ctx.run.output_dir), "free_gb": output_free, "min_free_gb": threshold}
    ctx.check("free_disk", output_free >= threshold, f"{output_free} GB free at {ctx.run.output_dir} "
              f"(want >= {threshold} GB)")

    cache = hf_cache_dir()
    cache_facts: dict[str, Any] = {"hf_home": os.environ.get("HF_HOME"), "hub_cache": str(cache),
                                   "free_gb": _free_gb(cache)}
    if AUTODL_DATA_DISK.exists() and not _same_filesystem(cache, AUTODL_DATA_DISK):
        cache_facts["advice"] = (f"HF cache is not on the data disk {AUTODL_DATA_DISK}; "
                                 f"export HF_HOME={AUTODL_DATA_DISK}/hf to keep the system disk from filling")
        ctx.log(cache_facts["advice"], level="warning")
    facts["hf_cache"] = cache_facts
    ctx.check("hf_cache", True, f"HF cache at {cache} ({cache_facts['free_gb']} GB free)")

    # Where the model comes from (decided before any stage) and HF_ENDPOINT / proxies / caches, credentials stripped.
    from medllm_core.library.model_source import source_environment

    facts["model_source"] = ctx.run_context.preflight.get("model_source") or {"environment": source_environment()}
    ctx.run_context.preflight.update(facts)
    path = write_json(ReportPaths.of(ctx.run).preflight, facts)
    if gate.verdict == "block":
        raise PreflightBlocked(gate.reason)
    return StageResult.done(artifacts={"preflight": str(path)},
                            summary={"device": hw.describe(), "precision": ctx.precision.dtype,
                                     "gate": gate.verdict})


def _check_model(ctx: StageContext) -> None:
    from medllm_core.library.training.model_loading import check_model_found

    check_model_found(ctx)


def run_gate(ctx: StageContext) -> GateVerdict:
    from medllm_core.library.gates import evaluate_gate

    return evaluate_gate(ctx.profile, ctx.hardware, ctx.settings)


@hookimpl
def register_stages(register) -> None:
    register(StageSpec(
        name="preflight",
        run=run_preflight,
        kind=StageKind.PREFLIGHT,
        produces=(ArtifactKind.PREFLIGHT,),
        gate=run_gate,
        check_inputs=_check_model,
        settings=PreflightSettings,
        env=PREFLIGHT_ENV,
        aliases=PREFLIGHT_ALIASES,
        description="GPU probe, precision policy, VRAM gate, .env, disk and HF cache checks",
        required_by_default=False,
        describe_plan=lambda ctx: f"{ctx.hardware.describe()}; precision {ctx.precision.dtype}; "
                                  f"gate {ctx.gate.verdict}",
    ))
