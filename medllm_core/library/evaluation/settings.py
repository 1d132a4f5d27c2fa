"""``[stages.eval]`` options (kept import-light: plugin registration must not pull numpy/torch)."""

from __future__ import annotations

from dataclasses import dataclass

from medllm_core.kernel.schema import SchemaError, option
from medllm_core.library.judges.settings import JudgeEndpoint


@dataclass
class EvalSettings:
    batch_size: int = option(8, "prompts generated at once per variant")
    max_new_tokens_mcq: int = option(32, "token budget of a multiple-choice answer")
    max_new_tokens_open: int = option(256, "token budget of an open-ended or safety answer")
    max_items: int = option(0, "evaluate at most this many items per file; 0 = every item")
    variants: list[str] = option(help="variants to evaluate; empty = base + every trained stage",
                                 default_factory=list)
    llm_fallback: bool = option(False, "ask the judge model which option a reply chose when every extraction "
                                       "rule failed (the seed's v2 LLM fallback)")
    fallback_judge: JudgeEndpoint = option(help="the endpoint the extraction fallback calls",
                                           default_factory=JudgeEndpoint)

    def validate(self, prefix: str) -> None:
        for name in ("batch_size", "max_new_tokens_mcq", "max_new_tokens_open"):
            if getattr(self, name) <= 0:
                raise SchemaError(f"{prefix}.{name}", "must be > 0")
