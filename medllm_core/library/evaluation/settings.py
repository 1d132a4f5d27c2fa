"""``[stages.eval]`` options (kept import-light: plugin registration must not pull numpy/torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medllm_core.kernel.schema import SchemaError, option
from medllm_core.library.judges.settings import JudgeEndpoint

# The [data.*] tables the evaluation reads.
EVAL_DATA_KEYS = ("eval_mcq", "eval_open", "eval_safety")
DEV_DATA_KEY = "eval_dev"  # solved examples for k-shot prompting

# "both": generate is the primary protocol (its numbers head the report), loglik is reported next to it.
Protocol = Literal["generate", "loglik", "both"]
OnBadItems = Literal["report", "fail"]


@dataclass
class EvalSettings:
    protocol: Protocol = option("generate", "how a multiple-choice answer is obtained: 'generate' (greedy reply, "
                                            "then the extraction rules; CMB's protocol), 'loglik' (the most likely "
                                            "option letter after the prompt; lm-evaluation-harness / OpenCompass "
                                            "PPL style, no extraction failures) or 'both'")
    shots: int = option(0, "k-shot prompting: this many solved examples from [data.eval_dev] before each item "
                           "(same subject first); 0 = zero-shot")
    on_bad_items: OnBadItems = option("report", "items that cannot be read: 'report' drops them and states how "
                                                "many and why in every report; 'fail' stops before any model loads")
    batch_size: int = option(0, "prompts per batch at most (long prompts get smaller batches under "
                                "max_batch_tokens); 0 = 256 on a GPU, 8 on the CPU")
    max_batch_tokens: int = option(0, "token budget of one batch (prompt + new tokens, summed over the batch); "
                                      "0 = from free accelerator memory, or batch_size alone on the CPU")
    max_new_tokens_mcq: int = option(32, "token budget of a multiple-choice answer (generate protocol)")
    max_new_tokens_open: int = option(256, "token budget of an open-ended or safety answer")
    max_items: int = option(0, "evaluate at most this many items per file; 0 = every item")
    variants: list[str] = option(help="variants to evaluate; empty = base + every trained stage",
                                 default_factory=list)
    llm_fallback: bool = option(False, "ask the judge model which option a reply chose when every extraction "
                                       "rule failed (the seed's v2 LLM fallback)")
    fallback_judge: JudgeEndpoint = option(help="the endpoint the extraction fallback calls",
                                           default_factory=JudgeEndpoint)

    @property
    def protocols(self) -> list[str]:
        """The MCQ protocols to run, primary first."""
        return ["generate", "loglik"] if self.protocol == "both" else [self.protocol]

    def validate(self, prefix: str) -> None:
        for name in ("max_new_tokens_mcq", "max_new_tokens_open"):
            if getattr(self, name) <= 0:
                raise SchemaError(f"{prefix}.{name}", "must be > 0")
        for name in ("shots", "batch_size", "max_batch_tokens", "max_items"):
            if getattr(self, name) < 0:
                raise SchemaError(f"{prefix}.{name}", "must be >= 0")
        if self.shots > 16:
            raise SchemaError(f"{prefix}.shots", "must be at most 16 (each shot lengthens every prompt)")
