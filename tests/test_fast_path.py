"""The fast path and the memory estimator, on the CPU: planning decisions, the estimator against the
measured H100 peaks recorded by bench/, no cross-document leakage, selective checkpointing, OOM fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medllm_core.library.memory_estimate import QWEN2_5, TrainingShape, estimate_peak
from medllm_core.library.training import speed
from medllm_core.library.training.recovery import Attempt, next_after_oom
from medllm_core.library.training.selective_checkpointing import selective_checkpointing_callback

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
SEVEN_B = QWEN2_5["qwen2.5-7b"]


def recorded_runs() -> list[dict]:
    runs = []
    for path in sorted(RESULTS.glob("*/*.jsonl")):
        runs += [{**json.loads(line), "folder": path.parent.name} for line in path.read_text().splitlines()
                 if line.strip()]
    return [r for r in runs if "error" not in r and r.get("peak_allocated_gib")]


# Recorded before the fix of 011d548: TRL's reference forward had re-enabled checkpointing on every layer after
# step 1, so this run did not keep the layer its config names (estimated fully checkpointed: +2.9%). The
# 2026-12-04 row of the same label, after the fix, is the one the bench stands on.
RAN_OTHERWISE = {("2026-12-03-h200-qlora", "ours-dpo-14b-qlora-cap22")}


def test_qwen7b_shape_counts_match_the_real_model():
    assert SEVEN_B.total_params == pytest.approx(7.6156e9, rel=1e-3)  # Qwen2.5-7B: 7.62 B parameters
    assert SEVEN_B.lora_params(16) == pytest.approx(40.37e6, rel=1e-3)  # PEFT's count for r16 all-linear


def test_estimator_matches_measured_h100_peaks():
    from bench.common import SHAPES
    from bench.worker import estimate_from_facts

    runs = recorded_runs()
    assert len(runs) >= 10, "bench/results must hold the recorded GPU runs"
    for r in runs:
        e = estimate_from_facts(SHAPES[r["arch"]], r["method"], r["config"], r["max_forward_tokens"],
                                r.get("max_forward_padded", 0), 16, not r.get("parity"))
        error = abs(e.total_gib - r["peak_allocated_gib"]) / r["peak_allocated_gib"]
        if r["config"].get("quantized"):
            # 4-bit rows (H200): never under the peak, within 10% (issue 16); +1.9% to +4.1% (docs/performance.md)
            limit = 0.15 if (r["folder"], r["label"]) in RAN_OTHERWISE else 0.10
            assert e.total_gib >= r["peak_allocated_gib"] and error <= limit, (r["folder"], r["label"], e.total_gib)
            continue
        # our path (what the planner sizes micro-steps with) within 6%; plain-TRL references within 15%
        limit = 0.06 if r["impl"] == "ours" else 0.15
        assert error <= limit, (r["label"], e.total_gib, r["peak_allocated_gib"])


def test_estimate_grows_with_tokens_and_shrinks_with_checkpointing():
    def est(tokens: int, checkpointed: int) -> float:
        return estimate_peak(SEVEN_B, TrainingShape("sft", tokens, checkpointed, fused_loss=True, liger=True)).total_gib
    assert est(8192, 0) > est(4096, 0) > est(4096, 28)
    assert est(4096, 14) < est(4096, 0)


@pytest.fixture
def gpu_like(monkeypatch):
    import medllm_core.library.training.padding_free as pf

    monkeypatch.setattr(pf, "varlen_usable", lambda: (True, "test"))
    monkeypatch.setattr(speed, "liger_installed", lambda: True)
    return speed.SpeedHardware("cuda", 79.2, 9, "H100")


def plan(method: str, hw, **kw):
    args = dict(max_length=2048, micro_batch_size=4, gradient_accumulation_steps=2, lora_rank=16,
                lora_dropout=0.05, dtype="bf16")
    args.update(kw)
    return speed.plan_speed(method, hw, SEVEN_B, **args)


def test_cpu_gets_the_plain_trl_path_with_a_reason():
    p = plan("sft", speed.SpeedHardware("cpu", 0.0))
    assert not p.enabled and "no CUDA GPU" in p.decisions[0][1]
    assert not plan("sft", speed.SpeedHardware("cuda", 79.2, 9), optimize="off").enabled


def test_full_h100_sft_plan_packs_without_checkpointing(gpu_like):
    p = plan("sft", gpu_like)
    assert p.enabled and p.packing and p.liger and p.attention == "medllm_varlen"
    assert not p.gradient_checkpointing and p.micro_batch_size == 4  # what the H100 bench ran: 66.6 GiB peak
    assert p.estimate.total_gib <= p.budget_gib
    # with the data's lengths known, a step sees about the profile's tokens (16 × 2 examples × 650 tokens)
    p = plan("sft", gpu_like, micro_batch_size=16, mean_tokens_per_example=650)
    tokens = p.micro_batch_size * 2048 * p.gradient_accumulation_steps
    assert abs(tokens - 16 * 2 * 650) <= 0.10 * 16 * 2 * 650 and p.estimate.total_gib <= p.budget_gib
    keys = [k for k, _, _ in p.decisions]
    assert {"attention", "liger", "packing", "activation_checkpointing", "memory_plan"} <= set(keys)


def test_24gb_card_plan_checkpoints_to_fit(gpu_like):
    p = plan("sft", gpu_like, memory_budget_gib=22)
    assert p.gradient_checkpointing and p.estimate.total_gib <= 22 * speed.BUDGET_FRACTION


def test_preference_plan_halves_micro_batch_when_needed_and_keeps_effective_batch(gpu_like):
    p = plan("simpo", gpu_like, memory_budget_gib=30, worst_tokens=lambda mb: mb * 3000)
    assert p.padding_free and p.micro_batch_size * p.gradient_accumulation_steps == 8


def test_preference_plan_grows_the_micro_batch_on_a_big_card_and_keeps_the_optimizer_step(gpu_like):
    # The run measured on the H200 kept 2 × 4 with 100+ GiB free; the step's 8 pairs now go in one micro-step.
    for method in ("dpo", "simpo", "kto"):
        p = plan(method, speed.SpeedHardware("cuda", 139.8, 9, "H200"), micro_batch_size=2,
                 gradient_accumulation_steps=4, max_length=1024, worst_tokens=lambda mb: mb * 1200)
        assert p.micro_batch_size > 2, (method, p.micro_batch_size)
        assert p.micro_batch_size * p.gradient_accumulation_steps == 8
        decision = next(facts for key, _, facts in p.decisions if key == "micro_batch")
        assert decision["asked"] == [2, 4] and decision["chosen"] == [p.micro_batch_size, p.gradient_accumulation_steps]
        assert p.estimate.total_gib <= p.budget_gib


def test_kto_micro_batch_never_drops_below_two(gpu_like):
    p = plan("kto", gpu_like, micro_batch_size=4, gradient_accumulation_steps=2, memory_budget_gib=18,
             worst_tokens=lambda mb: mb * 4000)
    assert p.micro_batch_size >= 2 and p.micro_batch_size * p.gradient_accumulation_steps == 8


def test_packed_sft_keeps_the_profiles_tokens_per_step_within_ten_percent(gpu_like):
    # The measured profile: 2 × 8 examples of ~141 tokens = ~2,256 tokens per step; two packed rows of 2,048
    # (4,096 tokens) nearly doubled it. One full row per step is within 10%.
    p = plan("sft", speed.SpeedHardware("cuda", 139.8, 9, "H200"), micro_batch_size=2,
             gradient_accumulation_steps=8, mean_tokens_per_example=141)
    chosen = p.micro_batch_size * 2048 * p.gradient_accumulation_steps
    assert abs(chosen - 2 * 8 * 141) / (2 * 8 * 141) <= 0.10
    facts = next(facts for key, _, facts in p.decisions if key == "packing")
    assert facts["asked_tokens_per_step"] == 2256 and facts["chosen_tokens_per_step"] == chosen


def test_packed_rows_shorter_than_max_length_keep_the_step_when_every_example_fits(gpu_like):
    # The e2e run: 2 × 8 examples of ~187 tokens (~2,992 per step). Rows of 2,048 give 2,048 or 4,096 (both
    # more than 10% off); rows of 1,536 hold every example (the longest is 400) and give 3,072.
    h200 = speed.SpeedHardware("cuda", 139.8, 9, "H200")
    p = plan("sft", h200, micro_batch_size=2, gradient_accumulation_steps=8, mean_tokens_per_example=187,
             longest_example_tokens=400)
    assert p.packed_length is not None and 400 <= p.packed_length < 2048
    chosen = p.micro_batch_size * p.packed_length * p.gradient_accumulation_steps
    assert abs(chosen - 2 * 8 * 187) / (2 * 8 * 187) <= 0.10
    facts = next(facts for key, _, facts in p.decisions if key == "packing")
    assert facts["row_length"] == p.packed_length and facts["chosen_tokens_per_step"] == chosen
    assert facts["asked"] == [2, 8] and facts["chosen"] == [p.micro_batch_size, p.gradient_accumulation_steps]
    # an example as long as max_length forbids shorter rows: no example may be truncated by the packing
    p = plan("sft", h200, micro_batch_size=2, gradient_accumulation_steps=8, mean_tokens_per_example=187,
             longest_example_tokens=2048)
    assert p.packed_length is None
    # no split within 10% (1 example of ~100 tokens, the longest 150): the closest one, not a row of max_length
    p = plan("sft", h200, micro_batch_size=1, gradient_accumulation_steps=1, mean_tokens_per_example=100,
             longest_example_tokens=150)
    assert p.packed_length == 192 and p.micro_batch_size == 1 and p.gradient_accumulation_steps == 1
    # an OOM retry that may shorten the length halves the packed row TRL really uses
    from medllm_core.library.training.recovery import Attempt, next_after_oom

    attempt = Attempt(1, 1, 1, True, 2048, "bf16", 1e-4, packed_length=512)
    retry, _ = next_after_oom(attempt, min_micro_batch=1, allow_shorter_max_length=True)
    assert retry.sequence_length == 256 and retry.packed_length is None
    # a small card: the same step in more, shorter micro-steps rather than a step of the wrong size
    p = plan("sft", gpu_like, micro_batch_size=2, gradient_accumulation_steps=8, mean_tokens_per_example=187,
             longest_example_tokens=400, memory_budget_gib=20)
    chosen = p.micro_batch_size * (p.packed_length or 2048) * p.gradient_accumulation_steps
    assert abs(chosen - 2 * 8 * 187) / (2 * 8 * 187) <= 0.10 and p.estimate.total_gib <= p.budget_gib


def test_plan_that_cannot_fit_says_so(gpu_like):
    p = plan("sft", gpu_like, memory_budget_gib=10)
    assert p.gradient_checkpointing and "exceeds" in p.decisions[-1][1]


def test_no_cross_document_leakage_on_cpu():
    from bench.leak_check import main

    result = main()
    assert result["separate"], result
    assert result["control_detects_leak"], result


def test_oom_after_selective_checkpointing_goes_to_full_checkpointing():
    attempt = Attempt(1, 1, 8, True, 2048, "bf16", 1e-4, uncheckpointed_layers=6)
    following, why = next_after_oom(attempt, min_micro_batch=1, allow_shorter_max_length=False)
    assert following.gradient_checkpointing and following.uncheckpointed_layers == 0
    assert "every layer" in why


def test_selective_checkpointing_callback_turns_layers_off():
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    cfg = Qwen2Config(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    # transformers 5.x: activation_checkpointing_enable (gradient_checkpointing_enable warns, removed in v6)
    (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
    selective_checkpointing_callback(3).on_train_begin(None, None, None, model=model)
    flags = [layer.gradient_checkpointing for layer in model.model.layers]
    assert flags == [False, False, False, True]


def test_dry_run_shows_the_memory_estimate(tmp_path):
    from medllm_core.kernel.profile import load_profile
    from medllm_core.library.memory_preview import preview_memory

    root = Path(__file__).resolve().parents[1]
    preview = preview_memory(load_profile(root / "profiles" / "rtx4090_24g.toml"), 22.0)
    assert preview is not None and preview.fits and "estimated peak" in preview.describe()
    big = preview_memory(load_profile(root / "profiles" / "h100_80g_14b.toml"), 22.0, quantization="none")
    assert big is not None and not big.fits
    # model.quantization = "auto" (the default): a 14B that does not fit 22 GiB in bf16 is planned in 4-bit
    auto = preview_memory(load_profile(root / "profiles" / "h100_80g_14b.toml"), 22.0)
    assert auto is not None and auto.quantization == "4bit" and auto.fits and "4-bit base" in auto.describe()


def test_fused_simpo_estimate_counts_one_pairs_logits_over_the_padded_length(gpu_like):
    # H200 bench, ours-simpo under its 36.6 GiB cap (7B, length 2,048, 4 pairs): the plan counted a 512-token tile
    # (0.6 GiB) and the run died in Liger's chunk allocating (2, 2048, 152064) bf16 logits = 1.16 GiB with ~1.8 GiB
    # of that chunk already held. The loss head is now one pair (both sequences) over the padded length.
    p = plan("simpo", speed.SpeedHardware("cuda", 139.8, 9, "H200"), micro_batch_size=4,
             gradient_accumulation_steps=1, memory_budget_gib=36.6, continues_adapter=False)
    loss_head = p.estimate.parts["loss_head"]
    assert loss_head >= 1.8 + 1.16 and p.estimate.total_gib <= p.budget_gib
    assert p.estimate.inputs["fused_chunk_tokens"] == 2 * 2048
    # short pairs pad to less: the chunk follows the data's longest sequence, never past max_length
    short = plan("simpo", gpu_like, micro_batch_size=4, gradient_accumulation_steps=1,
                 worst_tokens=lambda mb: mb * 1200, longest_example_tokens=600)
    assert short.estimate.inputs["fused_chunk_tokens"] == 2 * 600


def test_selective_checkpointing_survives_trls_reference_forward(tmp_path):
    # TRL's DPO/KTO wrap the reference forward in disable_gradient_checkpointing, which re-enables every layer
    # afterwards: the selection used to hold for the first step only (the H200 14B DPO peak sat 12% under the
    # estimate made for one layer kept).
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, Qwen2Config
    from trl import DPOConfig, DPOTrainer

    from medllm_core.library.tiny_model import _hf_tokenizer, train_tokenizer
    from medllm_core.library.training.trl_common import checkpointing_argument

    tokenizer = _hf_tokenizer(train_tokenizer(["fever cough headache chest pain rash"] * 20, vocab_size=300))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2))
    seen: list[tuple[int, bool]] = []
    for index, layer in enumerate(model.model.layers):
        layer.register_forward_pre_hook(
            lambda module, _args, index=index: seen.append((index, module.gradient_checkpointing))
            if torch.is_grad_enabled() and module.training else None)
    rows = [{"prompt": "fever cough", "chosen": " headache", "rejected": " chest pain"}] * 6
    config = DPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=3, report_to="none",
                       use_cpu=True, save_strategy="no", disable_tqdm=True, **{checkpointing_argument(): True})
    trainer = DPOTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainer.add_callback(selective_checkpointing_callback(1))
    trainer.train()
    first = [flag for index, flag in seen if index == 0]
    rest = [flag for index, flag in seen if index > 0]
    assert len(first) == 3 and not any(first), seen  # one policy forward per step, layer 0 never checkpointed
    assert rest and all(rest), seen


class _WordTokenizer:
    """Counts whitespace words, like the real tokenizer's ``__call__`` returns ids."""

    def __call__(self, text: str) -> dict:
        return {"input_ids": text.split()}


def test_preference_planner_counts_every_row_not_a_sample():
    from medllm_core.library.training.fast_path import TOKEN_SAMPLE_ROWS, row_token_totals

    short = {"prompt": "p " * 10, "chosen": "c " * 20, "rejected": "r " * 20}
    rows = [short] * (TOKEN_SAMPLE_ROWS + 50)
    # the longest pair sits past the sample: a micro-batch holding it must be in the estimate
    rows[TOKEN_SAMPLE_ROWS + 10] = {"prompt": "p " * 500, "chosen": "c " * 900, "rejected": "r " * 100}
    totals = row_token_totals(_WordTokenizer(), rows, ("chosen", "rejected"), 2048, sample=False)
    assert totals[0] == (500 + 900) + (500 + 100)
    assert len(totals) == len(rows)
    # each sequence is capped at max_length, as TRL truncates it
    assert row_token_totals(_WordTokenizer(), rows, ("chosen", "rejected"), 1024, sample=False)[0] == 1024 + 600
    # SFT keeps the sample (its micro-steps are packed rows of max_length)
    assert len(row_token_totals(_WordTokenizer(), rows, ("chosen",), 2048, sample=True)) == TOKEN_SAMPLE_ROWS
