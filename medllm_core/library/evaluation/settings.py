"""``[stages.eval]`` options (kept import-light: plugin registration must not pull numpy/torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from medllm_core.kernel.schema import SchemaError


@dataclass
class EvalSettings:
    batch_size: int = 8
    max_new_tokens_mcq: int = 32
    max_new_tokens_open: int = 256
    max_items: int = 0  # 0 = every item
    variants: list[str] = field(default_factory=list)  # empty = base + every trained stage

    def validate(self, prefix: str) -> None:
        for name in ("batch_size", "max_new_tokens_mcq", "max_new_tokens_open"):
            if getattr(self, name) <= 0:
                raise SchemaError(f"{prefix}.{name}", "must be > 0")
