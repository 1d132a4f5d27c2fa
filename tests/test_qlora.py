"""4-bit QLoRA: the choice, its memory decision, the estimator, and SFT + DPO really training on a 4-bit base.

bitsandbytes >= 0.48 has a CPU backend for NF4 (quantize, dequantize, 4-bit matmul), so the tiny model trains in
4-bit here exactly as a 14B does on a GPU (same PEFT preparation, same TRL trainers)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from medllm_core.kernel.errors import ConfigError
from medllm_core.library.memory_estimate import QWEN2_5, TrainingShape, estimate_peak
from medllm_core.library.memory_preview import preview_memory
from medllm_core.library.quantization import decide_quantization
from medllm_core.testing import run_pipeline

HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None
needs_bnb = pytest.mark.skipif(not HAS_BNB, reason="bitsandbytes not installed (pip install 'medllm[qlora]')")


def _profile(choice: str, name: str = "Qwen/Qwen2.5-14B-Instruct", tier: str = "14b") -> SimpleNamespace:
    lora = SimpleNamespace(r=16, dropout=0.05)
    return SimpleNamespace(model=SimpleNamespace(name_or_path=name, tier=tier, quantization=choice, lora=lora),
                           stages={"sft": {"max_length": 2048, "micro_batch_size": 1}}, source_path="p.toml",
                           hardware=SimpleNamespace(min_vram_gb=0, compute_capability=0))


def test_four_bit_weights_are_about_half_a_byte_per_quantized_param():
    shape = QWEN2_5["qwen2.5-14b"]
    base = dict(method="sft", tokens_per_micro_step=2048, checkpointed_layers=shape.layers, fused_loss=True)
    full = estimate_peak(shape, TrainingShape(**base))
    four = estimate_peak(shape, TrainingShape(**base, quantized=True))
    assert 27 < full.parts["weights"] < 29  # 14.8B params in bf16
    # 13.2B decoder linear weights at ~0.516 byte + embeddings and LM head (1.56B) in bf16
    assert 6.0 < four.parts["weights_4bit"] < 6.6
    assert 2.8 < four.parts["weights_unquantized"] < 3.0
    assert four.total_gib < full.total_gib - 17


def test_auto_picks_4bit_only_when_the_full_estimate_does_not_fit():
    for card, expected in ((22.0, "4bit"), (80.0, "none")):
        full = preview_memory(_profile("none"), card, capability_major=9)
        four = preview_memory(_profile("4bit"), card, capability_major=9)
        decision = decide_quantization(_profile("auto"), full=full, four_bit=four, card_gib=card,
                                       capability=(9, 0), on_gpu=True)
        assert decision.mode == expected, decision.reason
        assert decision.facts["full_precision_estimate_gib"] == round(full.estimate_gib, 2)
        assert decision.facts["card_gib"] == card
    # the preview the gate, dry run and wizard show resolves auto the same way
    assert preview_memory(_profile("auto"), 22.0, capability_major=9).quantization == "4bit"
    assert preview_memory(_profile("auto"), 22.0, capability_major=9).fits
    assert preview_memory(_profile("auto"), 80.0, capability_major=9).quantization == "none"


def test_4bit_below_compute_capability_7_5_is_a_config_error_and_auto_stays_unquantized():
    with pytest.raises(ConfigError, match="compute capability >= 7.5"):
        decide_quantization(_profile("4bit"), full=None, four_bit=None, card_gib=16.0, capability=(7, 0),
                            on_gpu=True)
    assert decide_quantization(_profile("4bit"), full=None, four_bit=None, card_gib=16.0, capability=(7, 5),
                               on_gpu=True).four_bit  # T4: fp16 compute, 4-bit kernels exist
    full = preview_memory(_profile("none"), 16.0, capability_major=7)
    assert not full.fits
    auto = decide_quantization(_profile("auto"), full=full, four_bit=None, card_gib=16.0, capability=(7, 0),
                               on_gpu=True)
    assert auto.mode == "none" and "7.5" in auto.reason


def test_the_option_is_validated(tmp_path):
    from medllm_core.kernel.profile import load_profile

    with pytest.raises(Exception, match="model.quantization"):
        load_profile("cpu_tiny", environ={}, cli_overrides={"model.quantization": "8bit"})


@needs_bnb
def test_adapters_stay_fp32_under_fp16_compute():
    """TRL casts a quantized model's LoRA weights to bf16; the fp16 GradScaler (pre-Ampere) needs them in fp32."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen2Config

    from medllm_core.library.quantization import bnb_config
    from medllm_core.library.training.quantized_base import keep_adapters_fp32, prepare_base

    config = Qwen2Config(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2)
    folder = Path(pytest.importorskip("tempfile").mkdtemp())
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float16, quantization_config=bnb_config("fp16"))
    model = prepare_base(model, "fp16", gradient_checkpointing=True)
    assert model.model.embed_tokens.weight.dtype == torch.float16  # not left upcast to fp32
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    for p in model.parameters():  # what TRL's trainers do to a quantized model
        if p.requires_grad:
            p.data = p.data.to(torch.bfloat16)
    assert keep_adapters_fp32(model) > 0
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}


@pytest.fixture(scope="module")
def qlora_run(tmp_path_factory):
    if not HAS_BNB:
        pytest.skip("bitsandbytes not installed (pip install 'medllm[qlora]')")
    return run_pipeline(tmp_path_factory.mktemp("qlora"), only=["sft", "dpo"], sft_steps=6,
                        overrides={"model.quantization": "4bit", "stages.dpo.max_steps": 3})


def _metrics(run, name: str) -> dict:
    return json.loads(Path(run.stage_result(name).metrics_path).read_text(encoding="utf-8"))


@needs_bnb
def test_sft_and_dpo_train_on_a_4bit_base(qlora_run):
    for name in ("sft", "dpo"):
        assert qlora_run.stage_result(name).status == "trained", (name, qlora_run.stage_result(name).reason)
        m = _metrics(qlora_run, name)
        assert math.isfinite(m["final_loss"]), m["final_loss"]
        decision = next(d for d in m["decisions"] if d["kind"] == "quantization")
        assert decision["facts"]["mode"] == "4bit", decision


@needs_bnb
def test_the_sft_adapter_loads_on_a_4bit_base(qlora_run):
    import torch
    from bitsandbytes.nn import Linear4bit
    from peft import PeftModel

    from medllm_core.library.quantization import bnb_config
    from medllm_core.library.training.model_loading import load_model

    adapter = Path(qlora_run.stage_result("sft").checkpoint_path)
    base_path = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    base = load_model(base_path, torch.float32, quantization_config=bnb_config("fp32"))
    model = PeftModel.from_pretrained(base, str(adapter))
    assert any(isinstance(mod, Linear4bit) for mod in model.modules())
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.isfinite(model(input_ids=ids).logits).all()


def test_checkpointed_4bit_sft_is_counted_from_its_traced_peak():
    """bench/results/2026-12-05-h200-memory-profile: at the peak (start of backward, inside a recompute) the loss
    tile is gone, no LoRA gradient exists yet unless accumulated, and one dequantized weight is alive."""
    shape = QWEN2_5["qwen2.5-14b"]

    def est(tokens: int, **kw) -> dict[str, float]:
        train = TrainingShape("sft", tokens, shape.layers, fused_loss=True, liger=True, quantized=True, **kw)
        return estimate_peak(shape, train).parts

    one_step, accumulating = est(2048, gradients_accumulate=False), est(2048)
    lora_grads_gib = shape.lora_params(16) * 4 / 2**30
    assert accumulating["lora_state"] - one_step["lora_state"] == pytest.approx(lora_grads_gib)
    assert one_step["loss_head"] == 0.0  # the fused tile is far smaller than the recompute: they never add
    assert one_step["dequant_transient"] == pytest.approx(1.25 * shape.hidden * shape.intermediate * 2 / 2**30)
    assert one_step["recompute"] > est(1024, gradients_accumulate=False)["recompute"] * 1.9
    # untraced cases keep the calibrated count: DPO, and a step without checkpointing
    dpo = TrainingShape("dpo", 2048, shape.layers, fused_loss=True, liger=True, quantized=True, lora_dropout=False)
    assert estimate_peak(shape, dpo).parts == estimate_peak(
        shape, TrainingShape(**{**dpo.__dict__, "gradients_accumulate": False})).parts
    unchecked = estimate_peak(shape, TrainingShape("sft", 2048, 0, fused_loss=True, liger=True, quantized=True,
                                                   gradients_accumulate=False)).parts
    assert unchecked["workspace"] == 1.0 and unchecked["loss_head"] > 0 and unchecked["recompute"] == 0.0


def test_planner_counts_lora_gradients_only_when_it_accumulates():
    import medllm_core.library.training.padding_free as pf
    from medllm_core.library.training import speed

    shape = QWEN2_5["qwen2.5-14b"]
    hw = speed.SpeedHardware("cuda", 139.8, 9, "NVIDIA H200")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pf, "varlen_usable", lambda: (True, "test"))
        mp.setattr(speed, "liger_installed", lambda: True)
        plans = [speed.plan_speed("sft", hw, shape, max_length=2048, micro_batch_size=2,
                                  gradient_accumulation_steps=acc, lora_rank=16, lora_dropout=0.05, dtype="bf16",
                                  memory_budget_gib=22.0, mean_tokens_per_example=900.0, continues_adapter=False,
                                  quantization="4bit") for acc in (1, 8)]
    single, accumulated = (p.estimate.inputs["gradients_accumulate"] for p in plans)
    assert (plans[0].gradient_accumulation_steps, single) == (1, False)
    assert plans[1].gradient_accumulation_steps > 1 and accumulated


@pytest.mark.parametrize("label", ["ours-sft-14b-qlora-cap22", "ours-dpo-14b-qlora-cap22", "ours-sft-7b-qlora-cap12"])
def test_planner_still_picks_what_the_h200_rows_measured(label, monkeypatch):
    """The estimate errors in docs/performance.md are only those of the plans the bench makes now if the planner,
    replayed as bench/worker.py plans on the H200, picks the configuration the recorded run measured."""
    import medllm_core.library.training.padding_free as pf
    from bench.common import SHAPES, make_tokenizer, preference_rows
    from bench.worker import pair_tokens
    from medllm_core.library.training import host_embedding, speed

    results = Path(__file__).resolve().parents[1] / "bench" / "results" / "2026-12-04-h200-qlora" / "results.jsonl"
    row = next(r for r in map(json.loads, results.read_text().splitlines()) if r.get("label") == label)
    monkeypatch.setattr(pf, "varlen_usable", lambda: (True, "test"))
    monkeypatch.setattr(speed, "liger_installed", lambda: True)
    monkeypatch.setattr(host_embedding, "checkpoint_offload_supported", lambda: False)  # the device's 5.17
    shape, method = SHAPES[row["arch"]], row["method"]
    worst = None
    if method == "dpo":  # bench/run.py: 4 pairs per step, 2 warm + 8 timed steps
        tok = make_tokenizer(shape.vocab)
        lengths = sorted((pair_tokens(tok, r, method) for r in preference_rows(method, 40, 2048, shape.vocab)),
                         reverse=True)
        worst = lambda mb: sum(lengths[:mb])  # noqa: E731
    plan = speed.plan_speed(method, speed.SpeedHardware("cuda", 139.8, 9, "NVIDIA H200"), shape, max_length=2048,
                            micro_batch_size=4 if method == "dpo" else 2, gradient_accumulation_steps=1,
                            lora_rank=16, lora_dropout=0.05, dtype="bf16", memory_budget_gib=row["cap_gib"],
                            worst_tokens=worst, continues_adapter=False, quantization="4bit")
    measured = row["config"]
    assert (plan.micro_batch_size, plan.gradient_accumulation_steps, plan.uncheckpointed_layers, plan.host_offload) \
        == (measured["micro_batch_size"], measured["gradient_accumulation_steps"],
            measured["uncheckpointed_layers"], bool(measured.get("host_offload"))), plan.decisions[-1]


def test_planner_offloads_the_14b_embedding_under_12_gib_as_measured(monkeypatch):
    import medllm_core.library.training.padding_free as pf
    from medllm_core.library.training import host_embedding, speed

    results = (Path(__file__).resolve().parents[1] / "bench" / "results"
               / "2026-12-04-h200-qlora-14b-cap12-host-embedding" / "results.jsonl")
    row = json.loads(results.read_text().splitlines()[0])
    monkeypatch.setattr(pf, "varlen_usable", lambda: (True, "test"))
    monkeypatch.setattr(speed, "liger_installed", lambda: True)
    monkeypatch.setattr(host_embedding, "checkpoint_offload_supported", lambda: False)
    plan = speed.plan_speed("sft", speed.SpeedHardware("cuda", 139.8, 9, "NVIDIA H200"), QWEN2_5["qwen2.5-14b"],
                            max_length=2048, micro_batch_size=2, gradient_accumulation_steps=1, lora_rank=16,
                            lora_dropout=0.05, dtype="bf16", memory_budget_gib=12.0, continues_adapter=False,
                            quantization="4bit")
    assert plan.host_offload and not plan.offload_checkpoints
    assert plan.micro_batch_size == row["config"]["micro_batch_size"] == 1
    assert plan.estimate.total_gib <= plan.budget_gib  # fits as planned, not left to the OOM retries
