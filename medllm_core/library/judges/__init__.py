"""LLM judges: the client layer (endpoint settings, retries, cache, JSON parsing).

Importing this package never imports ``openai``: that happens only when a
``JudgeClient`` is created, so the core works without the ``judge`` extra and
``judge_availability`` can say the package is missing instead of crashing.
"""

from medllm_core.library.judges.cache import CacheEntry, ResponseCache, cache_key
from medllm_core.library.judges.client import (
    FAILURE_KINDS,
    TEMPERATURE,
    JudgeClient,
    JudgeRequest,
    JudgeResult,
    JudgeStats,
    ParseStatus,
    retry_after_seconds,
)
from medllm_core.library.judges.config import API_KEY_ENV, JudgeConfig, judge_availability, redact, safe_url
from medllm_core.library.judges.parsing import ParseError, SchemaCheck, check_schema, extract_json_object, require_keys

__all__ = [
    "API_KEY_ENV",
    "FAILURE_KINDS",
    "TEMPERATURE",
    "CacheEntry",
    "JudgeClient",
    "JudgeConfig",
    "JudgeRequest",
    "JudgeResult",
    "JudgeStats",
    "ParseError",
    "ParseStatus",
    "ResponseCache",
    "SchemaCheck",
    "cache_key",
    "check_schema",
    "extract_json_object",
    "judge_availability",
    "redact",
    "require_keys",
    "retry_after_seconds",
    "safe_url",
]
