"""One base model per evaluation, with each variant's LoRA adapter switched on in turn.

Why: reloading 7B base weights from disk for every variant dominated the
evaluation's wall time. The base is loaded once; adapters are attached with
PEFT and activated one at a time, and the base variant runs with every adapter
disabled. Adapters stay unmerged, so the base weights are never modified: a
merge followed by an unmerge would round bf16 weights and make the base's
numbers depend on which variants were evaluated before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from medllm_core.kernel.context import StageContext
from medllm_core.library.evaluation.variants import Variant


class VariantModels:
    """Loads the base model and tokenizer on first use; ``use(variant)`` yields the model to query."""

    def __init__(self, ctx: StageContext):
        self._ctx = ctx
        self._base: Any = None
        self._peft: Any = None
        self.tokenizer: Any = None

    def _load_base(self) -> None:
        from medllm_core.library.training.model_loading import load_model, load_tokenizer, resolve_model_path
        from medllm_core.library.training.precision import model_dtype
        from medllm_core.library.training.quantized_base import load_kwargs, run_quantization

        path = resolve_model_path(self._ctx)
        trust = self._ctx.profile.model.trust_remote_code
        # a run that trained on a 4-bit base is evaluated on the same 4-bit base (its adapters learned on it)
        quantization = run_quantization(self._ctx)
        dtype = self._ctx.precision.dtype
        model = load_model(path, model_dtype(dtype), trust, **load_kwargs(quantization, dtype))
        if self._ctx.hardware.backend == "cuda" and not quantization.four_bit:  # 4-bit loads onto the GPU
            model = model.to("cuda")
        model.eval()
        self._base = model
        # Training never changes the tokenizer (adapters save a copy of the base's), so one serves all.
        self.tokenizer = load_tokenizer(path, trust)

    @property
    def config(self) -> Any:
        if self._base is None:
            self._load_base()
        return self._base.config

    @contextmanager
    def use(self, variant: Variant) -> Iterator[Any]:
        if self._base is None:
            self._load_base()
        if variant.adapter is None:
            # The base: every adapter off (nothing to disable before the first adapter is attached).
            with self._peft.disable_adapter() if self._peft is not None else nullcontext():
                yield self._peft if self._peft is not None else self._base
            return
        self._activate(variant)
        yield self._peft

    def _activate(self, variant: Variant) -> None:
        from peft import PeftModel

        if self._peft is None:
            self._peft = PeftModel.from_pretrained(self._base, variant.adapter, adapter_name=variant.name)
        elif variant.name not in self._peft.peft_config:
            self._peft.load_adapter(variant.adapter, adapter_name=variant.name)
        self._peft.set_adapter(variant.name)
        self._peft.eval()

    def close(self) -> None:
        import gc

        self._base = self._peft = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            pass

    def free_accelerator_bytes(self) -> int | None:
        """Free memory on the accelerator after the model is loaded (None on the CPU)."""
        if self._ctx.hardware.backend != "cuda":
            return None
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
