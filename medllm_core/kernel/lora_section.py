"""The profile's [model.lora] table: the LoRA adapter every training stage trains."""

from __future__ import annotations

from dataclasses import dataclass

from medllm_core.kernel.schema import SchemaError


@dataclass
class LoraSection:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"

    def validate(self, prefix: str) -> None:
        if self.r <= 0:
            raise SchemaError(f"{prefix}.r", "must be > 0")
        if self.alpha <= 0:
            raise SchemaError(f"{prefix}.alpha", "must be > 0")
        # A dropout probability of 1 or more zeroes every LoRA input: training would silently learn nothing.
        if not 0.0 <= self.dropout < 1.0:
            raise SchemaError(f"{prefix}.dropout", f"must be in [0, 1), got {self.dropout}")
