"""Issue 18, the parts a CPU can check: the per-GPU estimate under FSDP, the planner's sharding decision, the gate,
quantization ``auto`` preferring sharding, and the accelerate config that ``accelerate launch`` reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medllm_core.kernel.errors import ConfigError
from medllm_core.kernel.hardware import GpuInfo, HardwareInfo
from medllm_core.kernel.plugin_manager import load_plugins
from medllm_core.kernel.profile import load_profile
from medllm_core.library.gates import evaluate_gate
from medllm_core.library.memory_estimate import QWEN2_5, TrainingShape, estimate_peak
from medllm_core.library.memory_sharded import sharded_weight_parts
from medllm_core.library.sharding import (
    fsdp_accelerate_config,
    planned_processes,
    run_sharding,
    write_fsdp_config,
)
from tests.conftest import REPO

QWEN14B = "Qwen/Qwen2.5-14B-Instruct"


def _profile(name: str = "v100_dual.toml", **overrides):
    registry = load_plugins(environ={})
    return load_profile(REPO / "profiles" / name, environ={}, cli_overrides=overrides, stages=registry.catalogue())


def _gpus(count: int, gb: float, capability: tuple[int, int] = (7, 0), name: str = "Tesla V100-SXM2-32GB"):
    return HardwareInfo(backend="cuda", gpus=[GpuInfo(i, name, gb, capability) for i in range(count)])


def test_sharded_weights_are_a_shard_plus_the_gathered_root_and_two_layers():
    shape = QWEN2_5["qwen2.5-14b"]
    parts = sharded_weight_parts(shape, 2, 2)
    full = shape.total_params * 2 / 2**30
    assert parts["weights_shard"] == pytest.approx(full / 2)
    # embeddings + LM head of 14B (2 × 152064 × 5120 in fp16): ~2.9 GiB whole, half of it beyond the shard
    assert parts["root_gathered"] == pytest.approx(152064 * 5120 * 2 * 2 / 2 / 2**30, rel=1e-3)
    assert 0.9 < parts["layers_gathered"] < 1.2  # two 14B decoder layers in fp16
    train = dict(method="sft", tokens_per_micro_step=2048, checkpointed_layers=48, fused_loss=True)
    one = estimate_peak(shape, TrainingShape(**train))
    two = estimate_peak(shape, TrainingShape(**train, shards=2))
    assert one.total_gib > 30 > two.total_gib  # 14B fp16 LoRA: not on one 32 GB card, on two sharded
    assert two.parts["lora_state"] == pytest.approx(one.parts["lora_state"] / 2)
    assert two.parts["activations"] == one.parts["activations"]  # every GPU runs its own micro-batch


def test_14b_on_two_v100s_is_sharded_and_7b_keeps_ddp():
    hardware = _gpus(2, 31.7)
    fourteen = run_sharding(_profile(**{"model.name_or_path": QWEN14B, "model.tier": "14b"}), hardware)
    assert fourteen.sharded and fourteen.processes == 2 and fourteen.shards == 2
    assert fourteen.facts["one_gpu_estimate_gib"] > 31.7 * 0.9
    assert fourteen.facts["per_gpu_sharded_estimate_gib"] <= 31.7 * 0.9
    assert "FSDP2 across 2 GPUs" in fourteen.reason and "per GPU" in fourteen.reason
    seven = run_sharding(_profile(), hardware)
    assert not seven.sharded and "fits one" in seven.reason and "DDP" in seven.reason


def test_sharding_choices_and_the_processes_bound():
    hardware = _gpus(2, 31.7)
    big = {"model.name_or_path": QWEN14B, "model.tier": "14b"}
    assert not run_sharding(_profile(**big, **{"hardware.sharding": "none"}), hardware).sharded
    assert run_sharding(_profile(**{"hardware.sharding": "fsdp"}), hardware).sharded  # forced, even for 7B
    # a profile for two GPUs on a box with one: one process, nothing to shard
    one = _gpus(1, 31.7)
    assert planned_processes(_profile(**big), one) == 1
    assert not run_sharding(_profile(**big), one).sharded
    with pytest.raises(ConfigError) as error:
        run_sharding(_profile(**{"hardware.sharding": "fsdp"}), one)
    assert error.value.location.key == "hardware.sharding" and "at least 2 GPUs" in str(error.value)
    with pytest.raises(ConfigError) as bad:
        _profile(**{"hardware.sharding": "zero3"})
    assert "hardware.sharding" in str(bad.value)


def test_the_gate_passes_14b_on_two_32gb_cards_only_when_sharding_is_allowed():
    hardware = _gpus(2, 31.7)
    big = {"model.name_or_path": QWEN14B, "model.tier": "14b"}
    verdict = evaluate_gate(_profile(**big), hardware)
    assert verdict.verdict == "pass", verdict.reason
    assert "sharded across 2 GPUs" in verdict.reason and "per GPU" in verdict.reason
    assert verdict.facts["memory_shards"] == 2
    blocked = evaluate_gate(_profile(**big, **{"hardware.sharding": "none"}), hardware)
    assert blocked.verdict == "block"


def test_quantization_auto_prefers_sharding_a_16_bit_base(monkeypatch):
    from types import SimpleNamespace

    from medllm_core.library.training.quantized_base import run_quantization

    hardware = _gpus(2, 23.6, (8, 9), "NVIDIA GeForce RTX 4090")
    profile = _profile("rtx4090_24g.toml", **{"model.name_or_path": QWEN14B, "model.tier": "14b",
                                              "hardware.gpu_count": 2})
    ctx = SimpleNamespace(profile=profile, hardware=hardware, stage_decisions=lambda: [],
                          decide=lambda *a, **k: None)
    assert run_sharding(profile, hardware).sharded
    assert run_quantization(ctx).mode == "none"
    alone = _profile("rtx4090_24g.toml", **{"model.name_or_path": QWEN14B, "model.tier": "14b"})
    ctx_one = SimpleNamespace(profile=alone, hardware=_gpus(1, 23.6, (8, 9), "NVIDIA GeForce RTX 4090"),
                              stage_decisions=lambda: [], decide=lambda *a, **k: None)
    assert run_quantization(ctx_one).mode == "4bit"  # one 24 GB card: 14B only fits in 4 bits


def test_the_generated_config_is_what_accelerate_launch_turns_into_fsdp2(tmp_path: Path, monkeypatch):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import FullyShardedDataParallelPlugin

    path = write_fsdp_config(tmp_path, "sft", fsdp_accelerate_config(2, "fp16", "Qwen2DecoderLayer"))
    assert path.name == "sft.accelerate_fsdp.yaml" and path.read_text().startswith("# written by medllm")
    config = load_config_from_file(str(path))
    assert str(config.distributed_type).endswith("FSDP") and config.num_processes == 2
    assert config.mixed_precision == "fp16" and config.fsdp_config["fsdp_version"] == 2
    # what accelerate launch exports for the workers, and the plugin the Trainer's Accelerator builds from it
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "medllm_core.kernel.worker", "x"])
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    args, _, _ = _validate_launch_command(args)
    env = prepare_multi_gpu_env(args)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    assert env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "Qwen2DecoderLayer"
    assert env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT" and env["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "true"
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    # FSDP2 broadcasts rank 0's weights itself when loading is RAM-efficient (sync_module_states is FSDP1's)
    assert plugin.transformer_cls_names_to_wrap == ["Qwen2DecoderLayer"] and plugin.cpu_ram_efficient_loading
    assert os.environ["FSDP_VERSION"] == "2"


def test_hardware_precision_forces_fp16_on_an_ampere_card_and_refuses_what_cannot_train():
    from medllm_core.kernel.hardware import choose_precision

    h200 = _gpus(2, 139.8, (9, 0), "NVIDIA H200")
    assert choose_precision(h200).dtype == "bf16"
    forced = choose_precision(h200, "fp16")  # the V100 simulation on H200s (issue 18 item 2)
    assert forced.dtype == "fp16" and "forced" in forced.reason and "loss scaling" in forced.reason
    with pytest.raises(ConfigError) as cpu:
        choose_precision(HardwareInfo(backend="cpu"), "fp16")
    assert cpu.value.location.key == "hardware.precision"
    with pytest.raises(ConfigError) as old:
        choose_precision(_gpus(2, 31.7), "bf16")
    assert "compute capability >= 8.0" in str(old.value)
    assert _profile(**{"hardware.precision": "fp16"}).hardware.precision == "fp16"
    with pytest.raises(ConfigError):
        _profile(**{"hardware.precision": "fp8"})
