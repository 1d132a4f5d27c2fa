"""Sharded LoRA training across several GPUs: the ``hardware.sharding`` decision and the accelerate config.

Why FSDP2 and not DeepSpeed ZeRO-3: accelerate, transformers' Trainer and PEFT support FSDP2 without another
dependency, its checkpoints resume through the Trainer, and the adapter is saved as a plain PEFT folder (full
state dict gathered on rank 0) that loads on one card. The decision is taken from the SFT stage's memory
estimate, the same way ``model.quantization = "auto"`` is: FSDP only when one GPU cannot hold the LoRA step
but ``gpu_count`` GPUs holding a shard each can. Under FSDP the planner plans every stage per GPU.

No torch import: the dry run, the gate and the wizard decide from the estimate alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medllm_core.kernel.errors import ConfigError, Location

# transformers' decoder-layer class per model_type: FSDP wraps each one as a unit
DECODER_LAYER_CLASSES = {"qwen2": "Qwen2DecoderLayer", "qwen3": "Qwen3DecoderLayer", "llama": "LlamaDecoderLayer",
                         "mistral": "MistralDecoderLayer"}
DEFAULT_DECODER_LAYER = "Qwen2DecoderLayer"  # every tier of this tool is a Qwen2.5 model
CONFIG_NAME = "{stage}.accelerate_fsdp.yaml"


@dataclass(frozen=True)
class ShardingDecision:
    mode: str  # "none" (DDP or one process) | "fsdp"
    processes: int
    reason: str
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def sharded(self) -> bool:
        return self.mode == "fsdp"

    @property
    def shards(self) -> int:
        return self.processes if self.sharded else 1


def _location(profile: Any) -> Location:
    return Location(file=str(getattr(profile, "source_path", "") or ""), key="hardware.sharding")


def decide_sharding(profile: Any, *, processes: int, single: Any, sharded: Any, card_gib: float) -> ShardingDecision:
    """Resolve ``hardware.sharding``. ``single``/``sharded``: the SFT memory previews on one card and per card
    across ``processes`` cards (memory_preview.py; None: unknown model shape)."""
    choice = getattr(profile.hardware, "sharding", "none")
    facts = {"choice": choice, "processes": processes, "card_gib": round(card_gib, 2),
             "one_gpu_estimate_gib": None if single is None else round(single.estimate_gib, 2),
             "per_gpu_sharded_estimate_gib": None if sharded is None else round(sharded.estimate_gib, 2)}
    if choice == "fsdp":
        if processes < 2:
            raise ConfigError(f"hardware.sharding = 'fsdp' needs at least 2 GPUs; this run has {processes} "
                              f"(hardware.gpu_count = {profile.hardware.gpu_count})", _location(profile),
                              hint="set hardware.gpu_count to the number of GPUs, or hardware.sharding = 'auto'")
        return ShardingDecision("fsdp", processes, f"hardware.sharding = 'fsdp': FSDP2 across {processes} GPUs",
                                facts)
    if processes < 2:
        return ShardingDecision("none", processes, "one GPU: nothing to shard", facts)
    if choice == "none":
        return ShardingDecision("none", processes, f"hardware.sharding = 'none': DDP over {processes} GPUs", facts)
    if single is None or card_gib <= 0:
        unknown = "card size unknown" if card_gib <= 0 else "model shape unknown"
        return ShardingDecision("none", processes, f"auto: {unknown}: DDP over {processes} processes", facts)
    if single.fits:
        return ShardingDecision("none", processes, f"auto: the LoRA estimate {single.estimate_gib:.1f} GiB fits "
                                f"one {card_gib:.0f} GiB GPU: DDP over {processes} GPUs", facts)
    if sharded is None or not sharded.fits:
        per = f"{sharded.estimate_gib:.1f} GiB" if sharded is not None else "unknown"
        return ShardingDecision("none", processes, f"auto: the LoRA estimate {single.estimate_gib:.1f} GiB does not "
                                f"fit one {card_gib:.0f} GiB GPU, nor sharded ({per} per GPU): DDP", facts)
    return ShardingDecision("fsdp", processes, f"auto: the LoRA estimate {single.estimate_gib:.1f} GiB does not fit "
                            f"one {card_gib:.0f} GiB GPU; FSDP2 across {processes} GPUs needs "
                            f"{sharded.estimate_gib:.1f} GiB per GPU", facts)


def sharding_for(profile: Any, card_gib: float, capability_major: int, processes: int) -> ShardingDecision:
    """The decision for ``processes`` GPUs of ``card_gib`` each (the detected ones, or the profile's)."""
    from medllm_core.library.memory_preview import plan_preview

    single = sharded = None
    if processes >= 2 and getattr(profile.hardware, "sharding", "none") == "auto" and card_gib > 0:
        sft = (getattr(profile, "stages", {}) or {}).get("sft", {})
        single = plan_preview(profile, card_gib, "sft", sft, capability_major, "none")
        if single is not None and not single.fits:
            sharded = plan_preview(profile, card_gib, "sft", sft, capability_major, "none", shards=processes)
    return decide_sharding(profile, processes=processes, single=single, sharded=sharded, card_gib=card_gib)


def planned_processes(profile: Any, hardware: Any) -> int:
    """GPUs a training stage runs on: the profile's ``gpu_count``, bounded by the detected GPUs on a CUDA box
    (a CPU box preparing a run plans for the profile's machine)."""
    wanted = max(1, int(getattr(profile.hardware, "gpu_count", 0) or 0))
    if hardware is not None and getattr(hardware, "backend", "") == "cuda":
        return max(1, min(wanted, hardware.gpu_count))
    return wanted


def run_sharding(profile: Any, hardware: Any, processes: int | None = None) -> ShardingDecision:
    """This run's decision, from the detected GPUs (smallest card) or the profile's card on CPU."""
    from medllm_core.library.memory_preview import card_gib_for

    card_gib, major = card_gib_for(profile, hardware)
    return sharding_for(profile, card_gib, major, planned_processes(profile, hardware) if processes is None
                        else processes)


def decoder_layer_class(model_path: str | None) -> str:
    """The class FSDP wraps as a unit, from the model's config.json (Qwen2 when it cannot be read)."""
    import json

    if model_path and (Path(model_path) / "config.json").is_file():
        try:
            model_type = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))["model_type"]
            return DECODER_LAYER_CLASSES.get(str(model_type), DEFAULT_DECODER_LAYER)
        except (KeyError, ValueError, OSError):
            pass
    return DEFAULT_DECODER_LAYER


def fsdp_accelerate_config(processes: int, mixed_precision: str, layer_class: str) -> dict[str, Any]:
    """An ``accelerate launch --config_file`` config for FSDP2 LoRA training on one machine."""
    return {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "FSDP",
        "num_machines": 1,
        "num_processes": processes,
        "machine_rank": 0,
        "mixed_precision": mixed_precision,
        "use_cpu": False,
        "dynamo_config": {"dynamo_backend": "NO"},
        "fsdp_config": {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_transformer_layer_cls_to_wrap": layer_class,
            "fsdp_reshard_after_forward": True,
            # the adapter is saved whole by rank 0: a plain PEFT folder that loads on one card
            "fsdp_state_dict_type": "FULL_STATE_DICT",
            # rank 0 reads the weights, the others start empty and receive their shard: host RAM stays one copy
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": False,
            "fsdp_activation_checkpointing": False,  # the Trainer's (non-reentrant) checkpointing is used
        },
    }


def write_fsdp_config(folder: Path, stage: str, config: dict[str, Any]) -> Path:
    import yaml

    from medllm_core.kernel.atomic import write_text

    path = folder / CONFIG_NAME.format(stage=stage)
    write_text(path, "# written by medllm for this stage (hardware.sharding): accelerate launch --config_file\n"
               + yaml.safe_dump(config, sort_keys=False))
    return path
