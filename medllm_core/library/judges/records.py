"""The judge client's records: requests, per-item results, counters, and the circuit breaker.

Kept apart from ``client.py`` (the HTTP side) so that readers of judge results and
tests use these types without the retry machinery.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from medllm_core.library.judges.parsing import SchemaCheck

# "aborted": never (fully) asked, because the client gave up on the batch (see abort()).
ParseStatus = Literal["ok", "parse_failure", "http_error", "timeout", "aborted"]
FAILURE_KINDS: tuple[ParseStatus, ...] = ("parse_failure", "http_error", "timeout")
TRANSPORT_KINDS: tuple[ParseStatus, ...] = ("http_error", "timeout")


@dataclass(frozen=True)
class JudgeRequest:
    """One question for the judge (what ``map`` takes)."""

    prompt_id: str
    prompt_version: str
    messages: list[dict[str, Any]]
    schema_check: SchemaCheck | None = None


@dataclass
class JudgeResult:
    """What the judge answered for one item, with the evidence to store next to it."""

    ok: bool
    parsed: dict[str, Any] | None  # the accepted JSON object; None unless ok
    raw: str | None  # the model's last reply (key masked); None if none arrived
    parse_status: ParseStatus
    attempts: int  # HTTP requests made for this item in this run (0: answered from cache)
    cached: bool
    error: str  # why it failed (redacted); "" when ok
    model: str
    prompt_id: str
    prompt_version: str
    latency_s: float
    cache_key: str = ""
    status_code: int | None = None  # HTTP status of the last failed attempt, if it had one
    usage: dict[str, int] | None = None  # tokens summed over attempts (the original ones when cached)
    attempt_errors: list[str] = field(default_factory=list)  # each failed attempt's reason, in order

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict for per-item evidence files."""
        return asdict(self)


class JudgeStats:
    """Counters over every request a client handled (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0  # complete_json calls
        self.http_requests = 0  # HTTP attempts sent
        self.cache_hits = 0
        self.retries = 0  # attempts beyond the first, any reason
        self.ok = 0
        self.aborted = 0  # items given up on without a final answer (circuit breaker, stop)
        self.failures: dict[str, int] = dict.fromkeys(FAILURE_KINDS, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def fail(self, kind: str) -> None:
        with self._lock:
            self.failures[kind] += 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "http_requests": self.http_requests,
                "cache_hits": self.cache_hits,
                "retries": self.retries,
                "ok": self.ok,
                "aborted": self.aborted,
                "failures": dict(self.failures),
            }

    def __repr__(self) -> str:
        return f"JudgeStats({self.as_dict()})"


@dataclass
class _Attempt:
    """The outcome of one HTTP request (internal)."""

    status: ParseStatus
    raw: str | None = None
    parsed: dict[str, Any] | None = None
    error: str = ""
    retryable: bool = False
    retry_after_s: float | None = None
    status_code: int | None = None
    usage: dict[str, int] | None = None
    transport: str = ""  # for transport failures: "connection", "timeout" or "http"


class _Breaker:
    """Counts transport errors in a row over all items; trips once, with a reason (thread-safe)."""

    _LABELS = {"connection": "connection errors", "timeout": "timeouts", "http": "HTTP errors"}

    def __init__(self, threshold: int, where: str):
        self.threshold = threshold
        self.where = where  # the endpoint, without credentials
        self._lock = threading.Lock()
        self._streak: list[str] = []

    def record(self, outcome: _Attempt) -> str | None:
        """Feed one attempt's outcome; the reason to give up when this one trips the breaker."""
        with self._lock:
            if outcome.status in ("ok", "parse_failure"):
                self._streak.clear()  # the endpoint answered: reachable, whatever it said
                return None
            if outcome.status_code == 429 and outcome.retryable:
                return None  # a rate limit is the endpoint working as designed: backoff handles it
            self._streak.append(outcome.transport or "http")
            if not self.threshold or len(self._streak) < self.threshold:
                return None
            kinds = set(self._streak)
            label = self._LABELS[next(iter(kinds))] if len(kinds) == 1 else "transport errors"
            # Only HTTP errors: something answers there, it just keeps refusing or breaking.
            state = "failing" if kinds == {"http"} else "unreachable"
            return (f"endpoint {state}: {len(self._streak)} consecutive {label} to {self.where} "
                    f"(last: {outcome.error})")


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); None if absent or unreadable."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _usage_dict(usage: Any) -> dict[str, int] | None:
    if usage is None:
        return None
    fields = ("prompt_tokens", "completion_tokens", "total_tokens")
    values = {name: getattr(usage, name, None) for name in fields}
    return {k: int(v) for k, v in values.items() if isinstance(v, int)} or None


def _add_usage(total: dict[str, int] | None, more: dict[str, int] | None) -> dict[str, int] | None:
    if more is None:
        return total
    merged = dict(total or {})
    for name, value in more.items():
        merged[name] = merged.get(name, 0) + value
    return merged
