"""Issue 15 item 5: a model that is not its tier's known model gets its gate from its own config.json."""

from __future__ import annotations

import json
from pathlib import Path

from medllm_core.kernel.hardware import GpuInfo, HardwareInfo
from medllm_core.kernel.plugin_manager import load_plugins
from medllm_core.kernel.profile import load_profile
from medllm_core.library.gates import evaluate_gate
from tests.conftest import REPO, run_cli
from tests.hub_server import FakeHub, serve

# Qwen2.5-7B's shape: ~7.6B parameters, so the least LoRA SFT peak is well above 15 GB of bf16 weights.
QWEN7B_CONFIG = {"vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                 "num_attention_heads": 28, "num_key_value_heads": 4, "torch_dtype": "bfloat16"}


def _profile(profile: str, model: str, **extra):
    registry = load_plugins(environ={})
    return load_profile(REPO / "profiles" / profile, environ={},
                        cli_overrides={"model.name_or_path": model, **extra}, stages=registry.catalogue())


def _card(gb: float) -> HardwareInfo:
    return HardwareInfo(backend="cuda", gpus=[GpuInfo(0, "Test GPU", gb, (8, 9))])


def _seven_b_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my-7b"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(QWEN7B_CONFIG), encoding="utf-8")
    return folder


def test_a_7b_folder_under_the_tiny_tier_gets_a_gate_from_its_config(tmp_path):
    # cpu_tiny says tier "tiny" (no gate); the folder is a 7B model: a 12 GB card must not pass.
    profile = _profile("cpu_tiny.toml", str(_seven_b_folder(tmp_path)), **{"hardware.device": "auto"})
    assert profile.model.tier == "tiny"
    small = evaluate_gate(profile, _card(12.0))
    assert small.verdict == "block", small.reason
    custom = small.facts["custom_model"]
    assert custom["size_known"] is True and small.facts["gate_source"] == "config.json estimate"
    assert 7.0e9 < custom["parameters"] < 8.0e9
    assert custom["hidden_size"] == 3584 and custom["num_hidden_layers"] == 28
    assert 15.0 < small.facts["required_vram_gb"] < 40.0
    assert "7.62B parameters" in small.reason and "< " in small.reason
    big = evaluate_gate(profile, _card(80.0))
    assert big.verdict == "pass" and big.facts["required_vram_gb"] == small.facts["required_vram_gb"]


def test_a_tiny_config_folder_needs_little_and_a_cpu_profile_records_the_size(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    small_cfg = {**QWEN7B_CONFIG, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000}
    (folder / "config.json").write_text(json.dumps(small_cfg), encoding="utf-8")
    on_cpu = evaluate_gate(_profile("cpu_tiny.toml", str(folder)), HardwareInfo(backend="cpu"))
    assert on_cpu.verdict == "pass" and "hardware.device = cpu" in on_cpu.reason
    assert on_cpu.facts["custom_model"]["parameters"] < 1_000_000
    gpu = evaluate_gate(_profile("cpu_tiny.toml", str(folder), **{"hardware.device": "auto"}), _card(8.0))
    assert gpu.verdict == "pass" and gpu.facts["required_vram_gb"] < 2.0


def test_the_tier_model_keeps_the_tier_gate():
    gate = evaluate_gate(_profile("rtx4090_24g.toml", "Qwen/Qwen2.5-7B-Instruct"), _card(24.0))
    assert "custom_model" not in gate.facts and gate.facts["required_vram_gb"] == 18.0


def test_an_uncached_hub_id_is_an_unknown_size_warning_in_preflight_and_summary(tmp_path):
    # A reachable hub (on 127.0.0.1) without the model: preflight runs (offline, it would stop before any stage,
    # see test_model_fetch.py), the gate cannot size the model and says so; the load then fails.
    out = tmp_path / "out"
    hub = FakeHub(repo="someone/other-model", files={}, commit="0" * 40)
    server, url = serve(hub)
    env = {"HF_HUB_CACHE": str(tmp_path / "empty_cache"), "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": url,
           "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1", "MODELSCOPE_CACHE": str(tmp_path / "ms")}
    try:
        result = run_cli(["--run", "profiles/cpu_tiny.toml", "--output-root", str(out), "--model",
                          "someone/not-cached-model"], env=env)
    finally:
        server.shutdown()
    assert result.returncode != 0  # the model cannot load; the gate must have said so first
    assert "Traceback" not in result.stderr
    preflight = json.loads(next(out.glob("reports/**/preflight.json")).read_text(encoding="utf-8"))
    gate = preflight["gate"]
    assert gate["model_size_unknown"] is True and gate["custom_model"]["size_known"] is False
    assert "model size unknown" in gate["reason"] and "someone/not-cached-model" in gate["reason"]
    summary = next(out.glob("reports/**/day1_run_summary.md")).read_text(encoding="utf-8")
    assert "model size unknown" in summary
