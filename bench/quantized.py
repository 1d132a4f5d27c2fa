"""The 4-bit (QLoRA) base for the bench: a random-weight model saved once to disk, then loaded the way a run loads
it (``from_pretrained`` with medllm's bitsandbytes config, quantizing shard by shard on the GPU) and prepared with
medllm's k-bit preparation. Saving happens before the per-process memory cap is set: the bf16 model of a 14B shape
(~29 GiB) does not fit the 12/22 GiB caps the QLoRA rows run under, which is the point of those rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import build_model


def ensure_saved(shape: Any, model_dir: Path, cuda: bool) -> Path:
    """Write the shape's random bf16 weights (seed 0, as build_model) to ``model_dir`` unless already there."""
    import torch

    if (model_dir / "config.json").exists():
        return model_dir
    model = build_model(shape, "sdpa", cuda)
    tmp = model_dir.with_name(model_dir.name + ".tmp")
    model.save_pretrained(tmp, max_shard_size="4GB")
    del model
    if cuda:
        torch.cuda.empty_cache()
    tmp.rename(model_dir)  # a killed save leaves no folder that looks complete
    return model_dir


def load_4bit(model_dir: Path, attn: str, dtype: str, gradient_checkpointing: bool) -> Any:
    from medllm_core.library.quantization import QuantizationDecision
    from medllm_core.library.training.model_loading import load_model
    from medllm_core.library.training.precision import model_dtype
    from medllm_core.library.training.quantized_base import load_kwargs, prepare_base

    decision = QuantizationDecision("4bit", "bench --quant 4bit", {})
    model = load_model(str(model_dir), model_dtype(dtype), attn_implementation=attn,
                       **load_kwargs(decision, dtype))
    return prepare_base(model, dtype, gradient_checkpointing)
