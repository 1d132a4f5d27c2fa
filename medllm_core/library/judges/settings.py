"""The settings of the judge stages, and of the evaluation's extraction fallback, as stage data.

``JudgeEndpoint`` is how to reach one judge model; the two judge stages add
whether to call the model (``use_llm``) and whether a judge that cannot run
fails the stage. The older ``[judges]`` table and the seed's environment
variables still set these fields through ``endpoint_aliases`` and the specs'
``env``. Kept import-light: plugin registration must not pull the client.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from medllm_core.kernel.schema import SchemaError, option

ENDPOINT_FIELDS = ("base_url", "model", "timeout_s", "max_retries", "max_concurrency", "backoff_base_s",
                   "max_tokens", "circuit_breaker", "max_total_retries")


@dataclass
class JudgeEndpoint:
    base_url: str = option("", "OpenAI-compatible endpoint; empty: $OPENAI_BASE_URL, else the OpenAI API")
    model: str = option("gpt-4o-mini", "judge model name at the endpoint")
    timeout_s: float = option(60.0, "seconds per HTTP attempt")
    max_retries: int = option(3, "extra attempts after 429 / 5xx / timeouts")
    max_concurrency: int = option(4, "requests in flight at once")
    backoff_base_s: float = option(1.0, "first retry waits about this long, doubling after")
    # A judge verdict is a short JSON object; an uncapped reply only costs time and tokens.
    max_tokens: int = option(512, "most tokens the judge may reply with (sent as max_tokens)")
    circuit_breaker: int = option(5, "this many transport errors in a row end the stage (endpoint unreachable); "
                                     "0: never")
    max_total_retries: int = option(50, "retries (all items together) one stage may spend before failing "
                                        "items at once")

    def validate(self, prefix: str) -> None:
        # name -> (within range, the rule, the nearest valid value)
        checks = {"timeout_s": (math.isfinite(self.timeout_s) and self.timeout_s > 0, "> 0", 60.0),
                  "max_retries": (self.max_retries >= 0, ">= 0", 0),
                  "max_concurrency": (self.max_concurrency >= 1, ">= 1", 1),
                  "backoff_base_s": (math.isfinite(self.backoff_base_s) and self.backoff_base_s >= 0, ">= 0", 0.0),
                  "max_tokens": (self.max_tokens >= 1, ">= 1", 1),
                  "circuit_breaker": (self.circuit_breaker >= 0, ">= 0 (0 = never)", 0),
                  "max_total_retries": (self.max_total_retries >= 0, ">= 0", 0)}
        for name, (ok, rule, nearest) in checks.items():
            if not ok:
                raise SchemaError(f"{prefix}.{name}" if prefix else name,
                                  f"must be {rule}, got {getattr(self, name)!r}", f"nearest valid value: {nearest}")


@dataclass
class JudgeStageSettings(JudgeEndpoint):
    use_llm: bool = option(False, "call the judge model (needs OPENAI_API_KEY); false: recorded as turned off")
    fail_if_unavailable: bool = option(False, "a judge that cannot run (no key, no endpoint) fails the stage "
                                              "instead of being skipped")
    min_coverage: float = option(0.8, "share of items that must get a usable verdict; below it the judge "
                                      "counts as not run (partial), and at 0 as failed")
    models: list[str] = option(help="LLM judge: several judge models at this endpoint; each answers every "
                                    "request, the tables use their agreed verdicts and kappa between them is "
                                    "reported; empty = `model` alone", default_factory=list)
    human_labels: str = option("", "LLM judge: CSV/JSONL of human labels (id, verdict or score, optional variant "
                                   "and criterion) for a subset; the report gives judge-human kappa and agreement")

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        if not (math.isfinite(self.min_coverage) and 0.0 <= self.min_coverage <= 1.0):
            raise SchemaError(f"{prefix}.min_coverage" if prefix else "min_coverage", "out of range",
                              "0 <= min_coverage <= 1")


def endpoint_aliases(prefix: str = "") -> dict[str, str]:
    """The older ``[judges]`` endpoint keys, mapped onto a ``JudgeEndpoint`` at ``prefix``."""
    return {f"judges.{name}": f"{prefix}{name}" for name in ENDPOINT_FIELDS}


def judge_stage_aliases(toggle: str) -> dict[str, str]:
    """``judges.<toggle>`` turns the stage's LLM on; ``judges.required`` is ``fail_if_unavailable``."""
    return {f"judges.{toggle}": "use_llm", "judges.required": "fail_if_unavailable", "judges.models": "models",
            **endpoint_aliases()}


def turned_off(spec: Any) -> str:
    """How the user turned a judge stage off: its environment variable, else its settings key."""
    names = [var for var, target in getattr(spec, "env", {}).items() if target == "use_llm"]
    return f"{names[0]}=false" if names else f"stages.{spec.name}.use_llm=false"
