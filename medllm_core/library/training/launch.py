"""How the built-in training stages start their ranks on several processes (``StageSpec.launch_plan``):
DDP, or FSDP2 with a generated accelerate config when ``hardware.sharding`` resolves to it (library/sharding.py)."""

from __future__ import annotations

from pathlib import Path

from medllm_core.kernel.context import StageContext
from medllm_core.kernel.distributed import MIXED_PRECISION
from medllm_core.kernel.report_paths import WORKERS
from medllm_core.kernel.stages import LaunchPlan


def training_launch_plan(ctx: StageContext, processes: int) -> LaunchPlan:
    from medllm_core.library.sharding import (
        decoder_layer_class,
        fsdp_accelerate_config,
        run_sharding,
        write_fsdp_config,
    )

    decision = run_sharding(ctx.profile, ctx.hardware, processes)
    facts = {**decision.facts, "reason": decision.reason}
    if not decision.sharded:
        return LaunchPlan(mode="ddp", summary=decision.reason, facts=facts)
    if ctx.hardware.backend != "cuda":
        # accelerate turns FSDP on for GPU backends only; on CPU the ranks would silently train unsharded
        return LaunchPlan(mode="fsdp", refuse="hardware.sharding resolved to FSDP, which needs CUDA GPUs (accelerate "
                                              "enables FSDP only on GPU backends); set hardware.sharding = 'none' "
                                              "on this machine")
    model = Path(str(ctx.profile.model.name_or_path))
    config = fsdp_accelerate_config(processes, MIXED_PRECISION[ctx.precision.dtype],
                                    decoder_layer_class(str(model) if model.is_dir() else None))
    path = write_fsdp_config(ctx.run.run_dir / WORKERS, ctx.name, config)
    return LaunchPlan(mode="fsdp", shards=decision.shards, config_file=str(path), summary=decision.reason,
                      facts=facts)
