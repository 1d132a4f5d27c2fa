"""Issue 18 item 5: the several-process training path end to end on a CPU box: the runner hands SFT to
``accelerate launch`` with two ranks over gloo (accelerate's MULTI_CPU), both ranks train, rank 0 writes the
adapter, which loads in one process, and the run records how it was launched.

FSDP itself cannot run here: accelerate enables FSDP for GPU backends only (its ``AcceleratorState`` sets
``DistributedType.FSDP`` for MULTI_GPU/NPU/XPU/…, never for MULTI_CPU), so a CPU run with
``hardware.sharding = 'fsdp'`` must fail clearly instead of silently training unsharded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medllm_core.kernel import distributed
from medllm_core.kernel.hardware import HardwareInfo
from medllm_core.kernel.plugin_manager import load_plugins
from medllm_core.kernel.profile import load_profile
from medllm_core.kernel.runner import execute, new_run_info
from medllm_core.kernel.stages import StageKind
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _profile(tmp_path: Path, **overrides):
    registry = load_plugins(environ={})
    cli = {"output_root": str(tmp_path), "stages.dpo.enabled": False, "stages.simpo.enabled": False,
           "stages.kto.enabled": False, "stages.sft.max_steps": 6, "stages.sft.save_steps": 3,
           "stages.sft.micro_batch_size": 2, "stages.sft.max_length": 128, "stages.eval.enabled": False,
           "stages.llm_judge.enabled": False, "stages.risk_judge.enabled": False, "hardware.gpu_count": 2,
           **overrides}
    return load_profile(REPO / "profiles/cpu_tiny.toml", environ={}, cli_overrides=cli,
                        stages=registry.catalogue()), registry


def _two_ranks_for_training(monkeypatch) -> None:
    original = distributed.processes_for

    def two(context, planned):
        if StageKind(planned.spec.kind) == StageKind.TRAINING and original(context, planned) == 1 \
                and not __import__("os").environ.get(distributed.WORKER_ENV):
            return 2
        return original(context, planned)

    monkeypatch.setattr(distributed, "processes_for", two)


def _decisions(run_dir: Path, kind: str) -> list[dict]:
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return [e for e in events if e["type"] == "decision" and e.get("kind") == kind]


def test_two_ranks_train_sft_and_rank_0_writes_an_adapter_that_loads_alone(tmp_path: Path, monkeypatch) -> None:
    _two_ranks_for_training(monkeypatch)
    profile, registry = _profile(tmp_path)
    run = new_run_info(profile)
    outcome = execute(profile, registry, run=run, hardware=HardwareInfo(backend="cpu"))
    sft = outcome.results["sft"]
    log = (run.run_dir / "workers" / "sft.log").read_text(encoding="utf-8", errors="replace")
    assert sft.ok, sft.reason + log[-3000:]
    # both ranks trained every step
    assert "rank 0/2 on cpu: stage sft trained, steps=6" in log and "rank 1/2 on cpu: stage sft trained, steps=6" in log
    metrics = json.loads(Path(sft.metrics_path).read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 6
    launch = _decisions(run.run_dir, "distributed_launch")
    assert launch and "2 processes (DDP)" in launch[0]["summary"] and "--multi_gpu" in launch[0]["facts"]["command"]
    sharding = _decisions(run.run_dir, "sharding")
    assert sharding and sharding[0]["facts"]["mode"] == "ddp" and sharding[0]["facts"]["processes"] == 2
    # the adapter rank 0 saved is a plain PEFT folder that loads on one process
    from peft import PeftModel

    from medllm_core.library.training.model_loading import load_model

    adapter = Path(sft.checkpoint_path)
    config = json.loads((adapter / "adapter_config.json").read_text())
    import torch

    base = load_model(config["base_model_name_or_path"], torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter))
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert outcome.exit_code == 0, outcome.message


def test_fsdp_on_cpu_fails_with_the_reason_instead_of_training_unsharded(tmp_path: Path, monkeypatch) -> None:
    _two_ranks_for_training(monkeypatch)
    profile, registry = _profile(tmp_path, **{"hardware.sharding": "fsdp"})
    outcome = execute(profile, registry, run=new_run_info(profile), hardware=HardwareInfo(backend="cpu"))
    sft = outcome.results["sft"]
    assert sft.status == "failed" and "FSDP, which needs CUDA GPUs" in sft.reason
    assert "hardware.sharding = 'none'" in sft.reason
    assert outcome.exit_code == 4
