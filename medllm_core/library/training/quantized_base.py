"""The 4-bit (QLoRA) base model in a training or evaluation stage: the run's decision and the model changes.

Every stage of a run resolves ``model.quantization`` the same way (from the SFT stage's memory estimate on this
card), so DPO/SimPO/KTO and the evaluation load the base exactly as SFT trained on it.
"""

from __future__ import annotations

from typing import Any

from medllm_core.library.quantization import QuantizationDecision, check_bitsandbytes, decide_quantization

DECISION_KIND = "quantization"


def run_quantization(ctx: Any, record: bool = True) -> QuantizationDecision:
    """This run's choice, recorded once per stage as a decision with the estimates and the card."""
    from medllm_core.library.memory_preview import card_gib_for, plan_preview

    profile = ctx.profile
    hardware = ctx.hardware
    on_gpu = getattr(hardware, "backend", "cpu") == "cuda" and bool(hardware.gpus)
    capability = min(tuple(g.capability) for g in hardware.gpus) if on_gpu else None
    full = four = None
    card_gib = 0.0
    if getattr(profile.model, "quantization", "none") == "auto" and on_gpu:
        card_gib, major = card_gib_for(profile, hardware)
        sft = (getattr(profile, "stages", {}) or {}).get("sft", {})
        from medllm_core.library.sharding import run_sharding

        # several GPUs sharding a 16-bit base (FSDP) keep full precision: 4-bit only when that does not fit either
        shards = run_sharding(profile, hardware).shards
        full = plan_preview(profile, card_gib, "sft", sft, major, "none", shards=shards)
        if full is not None and not full.fits:
            four = plan_preview(profile, card_gib, "sft", sft, major, "4bit")
    decision = decide_quantization(profile, full=full, four_bit=four, card_gib=card_gib, capability=capability,
                                   on_gpu=on_gpu)
    if decision.four_bit:
        check_bitsandbytes(profile)
    if record and not any(d.get("kind") == DECISION_KIND for d in ctx.stage_decisions()):
        ctx.decide(DECISION_KIND, f"base weights {'4-bit NF4 (QLoRA)' if decision.four_bit else 'unquantized'}: "
                                  f"{decision.reason}", mode=decision.mode, **decision.facts)
    return decision


def load_kwargs(decision: QuantizationDecision, dtype: str) -> dict[str, Any]:
    """Extra ``from_pretrained`` arguments: the bitsandbytes config for a 4-bit base."""
    if not decision.four_bit:
        return {}
    import torch

    from medllm_core.library.quantization import bnb_config

    kwargs: dict[str, Any] = {"quantization_config": bnb_config(dtype)}
    if torch.cuda.is_available():
        # bitsandbytes quantizes while loading, on the device it lands on: this process's GPU (its DDP rank's)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    return kwargs


def base_weights_setup(ctx: Any) -> dict[str, Any]:
    """What eval_results records about the base weights the variants ran on."""
    decision = run_quantization(ctx, record=False)
    setup: dict[str, Any] = {"quantization": decision.mode, "reason": decision.reason}
    if decision.four_bit:
        setup.update(quant_type="nf4", double_quant=True, compute_dtype=ctx.precision.dtype)
    return setup


def prepare_base(model: Any, dtype: str, gradient_checkpointing: bool) -> Any:
    """k-bit preparation (frozen base, checkpointing), then any unquantized fp32 weight to the compute dtype.

    The unquantized path trains with embeddings, LM head and norms in bf16/fp16, so the 4-bit path matches it;
    PEFT's upcast of them to fp32 would cost ~4 GiB more on a 7B/14B Qwen (quantization.prepare_for_training).
    """
    import torch

    from medllm_core.library.quantization import prepare_for_training
    from medllm_core.library.training.precision import model_dtype

    model = prepare_for_training(model, gradient_checkpointing)
    compute = model_dtype(dtype)
    if compute != torch.float32:
        for param in model.parameters():
            if param.dtype == torch.float32 and type(param).__name__ != "Params4bit" and not param.requires_grad:
                param.data = param.data.to(compute)
    return model


def keep_adapters_fp32(model: Any) -> int:
    """TRL's SFT/DPO/KTO trainers cast a quantized model's trainable LoRA weights to bf16. Under fp16 (pre-Ampere)
    the GradScaler refuses bf16 gradients, and on CPU the policy is fp32: adapters go back to fp32 (as PEFT makes
    them on an unquantized base; the memory estimate counts them so). Returns how many tensors were recast."""
    import torch

    if not (getattr(model, "is_loaded_in_4bit", False) or getattr(getattr(model, "base_model", None),
                                                                   "is_loaded_in_4bit", False)):
        return 0
    recast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
            recast += 1
    return recast
