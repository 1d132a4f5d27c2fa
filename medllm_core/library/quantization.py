"""4-bit QLoRA: the ``model.quantization`` choice, its memory decision and the bitsandbytes load config.

No torch import at module level: the dry run and the wizard resolve ``auto`` from the memory estimate alone.
Why 4-bit is a separate path: a 14B model in bf16 (~28 GiB of weights) does not fit a 24 GiB card at all, while
NF4 weights with double quantization take ~0.52 byte/param, so LoRA training fits. Only 4-bit is exposed (no
8-bit: bitsandbytes' int8 matmul needs compute capability >= 7.5 and is slower than NF4 for training).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medllm_core.kernel.errors import ConfigError, Location
from medllm_core.kernel.quantization_option import QUANTIZATION_CHOICES  # noqa: F401  (re-exported)

MIN_4BIT_CAPABILITY = (7, 5)  # bitsandbytes' CUDA kernels for 4-bit target sm_75 and newer


@dataclass(frozen=True)
class QuantizationDecision:
    mode: str  # "none" | "4bit"
    reason: str
    facts: dict[str, Any]

    @property
    def four_bit(self) -> bool:
        return self.mode == "4bit"


def _location(profile: Any) -> Location:
    return Location(file=str(getattr(profile, "source_path", "") or ""), key="model.quantization")


def check_capability(profile: Any, capability: tuple[int, int] | None) -> None:
    """4-bit on a card older than Turing: refuse before any load, with the reason."""
    if capability is not None and tuple(capability) < MIN_4BIT_CAPABILITY:
        raise ConfigError(f"model.quantization = '4bit' needs compute capability >= 7.5 (bitsandbytes 4-bit "
                          f"kernels); this GPU has {capability[0]}.{capability[1]}", _location(profile),
                          hint="set model.quantization = 'none' (fp16 LoRA) on this card")


def check_bitsandbytes(profile: Any) -> None:
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("model.quantization = '4bit' needs bitsandbytes, which is not installed",
                          _location(profile), hint="pip install 'medllm[qlora]' (or pip install bitsandbytes)")


def decide_quantization(profile: Any, *, full: Any, four_bit: Any, card_gib: float,
                        capability: tuple[int, int] | None, on_gpu: bool) -> QuantizationDecision:
    """Resolve ``model.quantization``. ``full``/``four_bit``: the SFT memory previews (memory_preview.py; None:
    unknown shape). ``auto`` picks 4-bit only on a CUDA card the bf16/fp16 estimate does not fit."""
    choice = getattr(profile.model, "quantization", "none")
    full_gib = full.estimate_gib if full is not None else None
    four_gib = four_bit.estimate_gib if four_bit is not None else None
    facts = {"choice": choice, "full_precision_estimate_gib": _round(full_gib),
             "four_bit_estimate_gib": _round(four_gib), "card_gib": round(card_gib, 2),
             "compute_capability": ".".join(map(str, capability)) if capability else None}
    if choice == "4bit":
        check_capability(profile, capability)
        return QuantizationDecision("4bit", "model.quantization = '4bit'", facts)
    if choice == "none":
        return QuantizationDecision("none", "model.quantization = 'none'", facts)
    if not on_gpu or full is None or card_gib <= 0:
        return QuantizationDecision("none", "auto: no CUDA card or unknown model shape: full-precision LoRA", facts)
    if full.fits:
        return QuantizationDecision("none", f"auto: the LoRA estimate {full_gib:.1f} GiB fits the {card_gib:.0f} GiB "
                                            "card: full-precision base", facts)
    if capability is not None and tuple(capability) < MIN_4BIT_CAPABILITY:
        return QuantizationDecision("none", "auto: the LoRA estimate does not fit, but 4-bit needs compute "
                                            "capability >= 7.5: full-precision base", facts)
    four_text = f"{four_gib:.1f} GiB" if four_gib is not None else "unknown"
    return QuantizationDecision("4bit", f"auto: the LoRA estimate {full_gib:.1f} GiB does not fit the "
                                        f"{card_gib:.0f} GiB card; 4-bit QLoRA estimate {four_text}", facts)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def bnb_config(dtype: str) -> Any:
    """NF4 + double quant; compute and storage in the policy dtype (fp32 on CPU)."""
    from transformers import BitsAndBytesConfig

    from medllm_core.library.training.precision import model_dtype

    compute = model_dtype(dtype)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute, bnb_4bit_quant_storage=compute)


def prepare_for_training(model: Any, gradient_checkpointing: bool) -> Any:
    """The k-bit preparation for training, without PEFT's fp32 upcast.

    ``peft.prepare_model_for_kbit_training`` freezes the base, upcasts every unquantized weight to fp32 and turns
    on checkpointing. The upcast makes a transient fp32 copy of the embeddings and LM head (2 × 2.9 GiB on a 14B
    Qwen: the 12 GiB QLoRA bench row ran out of memory inside it) and medllm casts them back to the compute dtype
    anyway (quantized_base.prepare_base), so only the other two steps are done here. Non-reentrant checkpointing:
    it needs no inputs that require grad (the reentrant form does).
    """
    for param in model.parameters():
        param.requires_grad_(False)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model
