"""Which models are evaluated: the base model and every trained variant, loaded the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medllm_core.context import StageContext
from medllm_core.stages import StageKind, StageStatus


@dataclass(frozen=True)
class Variant:
    name: str  # "base", "sft", "dpo", ...
    adapter: str | None  # LoRA checkpoint folder; None for the base model


def variants_to_evaluate(ctx: StageContext, wanted: list[str]) -> tuple[list[Variant], list[str]]:
    """(variants, notes about trained stages that cannot be evaluated)."""
    found = [Variant("base", None)]
    notes: list[str] = []
    for planned in ctx.run_context.plan:
        if StageKind(planned.spec.kind) != StageKind.TRAINING or not planned.enabled:
            continue
        result = ctx.results.get(planned.spec.name)
        if result is not None and result.status == StageStatus.TRAINED and result.checkpoint_path:
            found.append(Variant(planned.spec.name, result.checkpoint_path))
        else:
            status = "did not run" if result is None else f"{result.status}"
            notes.append(f"{planned.spec.name}: not evaluated ({status})")
    if wanted:
        found = [v for v in found if v.name in wanted]
    return found, notes


def load_variant(ctx: StageContext, variant: Variant) -> tuple[Any, Any]:
    """Base weights (+ the variant's adapter, merged for fast generation) on the run's device."""
    from medllm_core.training.model_loading import load_model, load_tokenizer, resolve_model_path
    from medllm_core.training.precision import model_dtype

    path = resolve_model_path(ctx)
    trust = ctx.profile.model.trust_remote_code
    dtype = ctx.precision.dtype if ctx.precision.dtype != "fp32" else "fp32"
    model = load_model(path, model_dtype(dtype), trust)
    tokenizer = load_tokenizer(variant.adapter or path, trust)
    if variant.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, variant.adapter).merge_and_unload()
    if ctx.hardware.backend == "cuda":
        model = model.to("cuda")
    return model, tokenizer


def release(model: Any) -> None:
    import gc

    del model
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass
