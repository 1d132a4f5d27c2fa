"""Host-memory offload for a 4-bit base that does not fit the card (14B QLoRA under 12 GiB): the planner picks it
only when nothing else fits, the estimate drops by the embedding table and the checkpointed inputs, and a model with
the table in host memory computes the same logits and trains through TRL with offloaded checkpointing."""

from __future__ import annotations

import pytest

from medllm_core.library.memory_estimate import QWEN2_5, TrainingShape, estimate_peak
from medllm_core.library.training import speed
from medllm_core.library.training.host_embedding import checkpoint_offload_supported

FOURTEEN_B = QWEN2_5["qwen2.5-14b"]


def test_offload_removes_the_embedding_table_and_the_checkpointed_inputs():
    base = dict(method="sft", tokens_per_micro_step=2048, checkpointed_layers=FOURTEEN_B.layers, fused_loss=True,
                quantized=True, liger=True)
    on_gpu = estimate_peak(FOURTEEN_B, TrainingShape(**base))
    offloaded = estimate_peak(FOURTEEN_B, TrainingShape(**base, host_offload=True, offload_checkpoints=True))
    table = FOURTEEN_B.vocab * FOURTEEN_B.hidden * 2 / 2**30
    inputs = (FOURTEEN_B.layers - 2) * 2 * FOURTEEN_B.hidden * 2048 / 2**30
    assert on_gpu.total_gib - offloaded.total_gib == pytest.approx(table + inputs, rel=1e-6)
    # a tied embedding is also the LM head: it stays
    tied = QWEN2_5["qwen2.5-0.5b"]
    assert estimate_peak(tied, TrainingShape(**base, host_offload=True)).parts["weights_unquantized"] == \
        estimate_peak(tied, TrainingShape(**base)).parts["weights_unquantized"]


def _plan(cap: float, quantization: str = "4bit") -> speed.SpeedPlan:
    hw = speed.SpeedHardware("cuda", 80.0, 9, "NVIDIA H100")
    return speed.plan_speed("sft", hw, FOURTEEN_B, max_length=2048, micro_batch_size=2,
                            gradient_accumulation_steps=8, lora_rank=16, lora_dropout=0.05, dtype="bf16",
                            memory_budget_gib=cap, probe=False, assume_liger=True, quantization=quantization)


def test_planner_offloads_only_a_4bit_step_that_does_not_fit_otherwise():
    small = _plan(12.0)
    assert small.host_offload and small.gradient_checkpointing and small.uncheckpointed_layers == 0
    decisions = {key: message for key, message, _ in small.decisions}
    assert "host memory" in decisions["host_offload"]
    assert small.estimate is not None and small.estimate.inputs["host_offload"]
    assert small.offload_checkpoints and small.estimate.inputs["offload_checkpoints"]  # probe=False: assumed
    # under 22 GiB the 4-bit step fits on the GPU: nothing is offloaded
    assert not _plan(22.0).host_offload
    # a 16-bit base never offloads (the decision is for the 4-bit path)
    assert not _plan(12.0, quantization="none").host_offload


def test_host_embedding_gives_the_same_logits_and_keeps_the_table_off_the_parameters():
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from medllm_core.library.training.host_embedding import HostEmbedding, install_host_embedding

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(Qwen2Config(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=False))
    ids = torch.randint(0, 128, (2, 9))
    before = model(input_ids=ids).logits
    params = sum(p.numel() for p in model.parameters())
    assert install_host_embedding(model)
    assert isinstance(model.get_input_embeddings(), HostEmbedding)
    assert torch.equal(model(input_ids=ids).logits, before)
    assert sum(p.numel() for p in model.parameters()) == params - 128 * 32
    assert not install_host_embedding(model)  # already swapped

    tied = AutoModelForCausalLM.from_config(Qwen2Config(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True))
    assert not install_host_embedding(tied)


@pytest.mark.skipif(not checkpoint_offload_supported(), reason="transformers without offloaded checkpointing (< 5)")
def test_sft_trains_with_the_table_in_host_memory_and_offloaded_checkpoints(tmp_path):
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, Qwen2Config
    from trl import SFTConfig, SFTTrainer

    from medllm_core.library.tiny_model import _hf_tokenizer, train_tokenizer
    from medllm_core.library.training.engine import first_attempt_from_plan
    from medllm_core.library.training.fast_path import prepare_model
    from medllm_core.library.training.trl_common import attempt_kwargs

    tokenizer = _hf_tokenizer(train_tokenizer(["fever cough headache chest pain rash"] * 20, vocab_size=300))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False))
    plan = speed.SpeedPlan(enabled=True, micro_batch_size=2, gradient_accumulation_steps=1, host_offload=True,
                           offload_checkpoints=True)
    attempt = first_attempt_from_plan(plan, max_length=32, dtype="fp32", learning_rate=1e-3)
    prepare_model(model, attempt)
    kwargs = attempt_kwargs(attempt)
    # transformers pins the offloaded copies, which needs a GPU: on the CPU only the host embedding is exercised
    # here; the offloaded checkpointing runs in bench --suite qlora (docs/performance.md)
    assert kwargs.get("activation_checkpointing_kwargs") == ({"offload": True} if torch.cuda.is_available() else None)
    rows = [{"messages": [{"role": "user", "content": "fever cough"},
                          {"role": "assistant", "content": "headache chest pain rash"}]}] * 8
    config = SFTConfig(output_dir=str(tmp_path), max_steps=3, report_to="none", use_cpu=True, save_strategy="no",
                       disable_tqdm=True, logging_steps=1, learning_rate=1e-3, **kwargs)
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    lora_before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(losses) == 3 and all(loss == loss for loss in losses)
    moved = [n for n, p in trainer.model.named_parameters() if p.requires_grad and not torch.equal(p, lora_before[n])]
    assert moved, "no LoRA weight changed"
