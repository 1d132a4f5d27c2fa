"""The judge client: one JSON verdict per prompt from an OpenAI-compatible endpoint.

``JudgeClient.complete_json`` asks at temperature 0, retries what is worth
retrying (429, 408 and 5xx with exponential backoff and jitter, honouring a capped
Retry-After; timeouts and connection errors the same way; replies that are not an
acceptable JSON object immediately), and always returns a ``JudgeResult`` instead
of raising, so one bad item never loses a whole evaluation. ``map`` runs many
requests on a thread pool; a semaphore keeps HTTP requests in flight at or below
``config.max_concurrency`` however the client is called.

The openai SDK's own retries are switched off (``max_retries=0``) so the attempt
count recorded per item is the real one. The SDK is imported lazily: the core
package must import on a machine without the ``judge`` extra.

A client can also give up on the whole batch: ``config.circuit_breaker`` transport
errors in a row (a dead or failing endpoint), a stop request passed to ``map``, or
``abort()``. Every item not yet answered then comes back at once as ``aborted``
with the reason, backoff sleeps wake up, and ``map`` waits only briefly for
requests already in flight. ``config.max_total_retries`` bounds the retries of all
items together, so a flaky endpoint cannot multiply a stage's requests.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from medllm_core.kernel.errors import ConfigError
from medllm_core.library.judges.cache import CacheEntry, ResponseCache, cache_key
from medllm_core.library.judges.config import JudgeConfig, judge_availability, redact, safe_url
from medllm_core.library.judges.parsing import ParseError, SchemaCheck, check_schema, extract_json_object
from medllm_core.library.judges.records import (  # noqa: F401  (re-exported: the client's public types)
    FAILURE_KINDS,
    TRANSPORT_KINDS,
    JudgeRequest,
    JudgeResult,
    JudgeStats,
    ParseStatus,
    _add_usage,
    _Attempt,
    _Breaker,
    _usage_dict,
    retry_after_seconds,
)

if TYPE_CHECKING:
    import openai

log = logging.getLogger("medllm.judges")

POLL_S = 0.2  # how often map looks at the stop request while it waits for answers
ABORT_GRACE_S = 2.0  # after an abort, how long map waits for requests in flight before leaving them
TEMPERATURE = 0.0  # judges must be as repeatable as the endpoint allows
RETRYABLE_STATUS = frozenset({408, 429})  # plus every 5xx
# A 429 that is a billing stop, not a rate limit: waiting will not help, and retrying
# every item of a large evaluation would only delay the failure.
FATAL_ERROR_CODES = frozenset({"insufficient_quota"})
_MAX_ERROR_CHARS = 500  # enough to diagnose; a provider's HTML error page is not evidence
_SDK_PREFIX = re.compile(r"^Error code: \d+ - ")  # the SDK's own prefix; we say "HTTP <code>:" already


class JudgeClient:
    """Ask one judge model for JSON verdicts. Use as a context manager, or call ``close()``."""

    def __init__(self, config: JudgeConfig, *, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None):
        available, reason = judge_availability(config)
        if not available:
            raise ConfigError(f"judge unavailable: {reason}")
        import openai  # lazy: the judge extra is optional

        self.config = config
        self.stats = JudgeStats()
        self._openai = openai
        self._secrets = config.secrets
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._abort = threading.Event()
        self._abort_reason = ""
        self._breaker = _Breaker(config.circuit_breaker, safe_url(config.resolved_base_url))
        self._budget_lock = threading.Lock()
        self._retries_spent = 0
        self._cache = ResponseCache(config.cache_dir) if config.cache_dir else None
        self._client: openai.OpenAI = openai.OpenAI(
            base_url=config.resolved_base_url,
            api_key=config.api_key,
            timeout=config.timeout_s,
            max_retries=0,  # retries are ours: bounded, counted and recorded per item
        )

    def __repr__(self) -> str:
        return f"JudgeClient({self.config!r})"  # JudgeConfig's repr leaves the key out

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> JudgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- giving up on the batch ---------------------------------------------

    def abort(self, reason: str) -> None:
        """Stop asking: items not yet answered come back ``aborted`` with ``reason`` (the first reason wins)."""
        with self._budget_lock:
            if not self._abort.is_set():
                self._abort_reason = redact(reason, self._secrets)
                self._abort.set()
                log.warning("judge client gave up: %s", self._abort_reason)

    @property
    def abort_reason(self) -> str:
        """Why the client gave up; "" while it has not."""
        return self._abort_reason if self._abort.is_set() else ""

    def _take_retry(self) -> bool:
        """Spend one retry from the batch's budget; False once it is spent."""
        limit = self.config.max_total_retries
        with self._budget_lock:
            if limit is not None and self._retries_spent >= limit:
                return False
            self._retries_spent += 1
            return True

    def _wait(self, delay: float) -> None:
        if self._sleep is not time.sleep:
            self._sleep(delay)  # an injected clock (tests): keep it in charge
        else:
            self._abort.wait(delay)  # an abort wakes every backoff at once

    # --- one request -------------------------------------------------------

    def complete_json(self, prompt_id: str, prompt_version: str, messages: list[dict[str, Any]],
                      schema_check: SchemaCheck | None = None) -> JudgeResult:
        """Ask the judge; return its JSON object, or a failure with the reason. Never raises for API trouble."""
        if not messages or not all(isinstance(m, Mapping) and "role" in m for m in messages):
            raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
        started = time.monotonic()
        cfg = self.config
        key = cache_key(cfg.model, prompt_version, messages, TEMPERATURE, cfg.max_tokens,
                        endpoint=cfg.resolved_base_url)
        self.stats.add("requests")

        def result(**fields: Any) -> JudgeResult:
            return JudgeResult(model=cfg.model, prompt_id=prompt_id, prompt_version=prompt_version, cache_key=key,
                               latency_s=round(time.monotonic() - started, 4), **fields)

        hit = self._cached(key, prompt_version, schema_check)
        if hit is not None:
            self.stats.add("cache_hits")
            self.stats.add("ok")
            return result(ok=True, parsed=hit.parsed, raw=hit.raw, parse_status="ok", attempts=0, cached=True,
                          error="", usage=hit.usage)

        attempts = http_retries = parse_retries = 0
        errors: list[str] = []
        usage: dict[str, int] | None = None
        last: _Attempt | None = None
        while True:
            if self._abort.is_set():
                if last is None:  # never sent: the batch was given up before this item's turn
                    self.stats.add("aborted")
                    return result(ok=False, parsed=None, raw=None, parse_status="aborted", attempts=0,
                                  cached=False, error=f"not asked: {self._abort_reason}")
                # Asked and failed, with retries left: that failure is what this item got.
                self.stats.fail(last.status)
                return result(ok=False, parsed=None, raw=last.raw, parse_status=last.status, attempts=attempts,
                              cached=False, error=f"after {attempts} attempt(s): {last.error}; not retried: "
                                                  f"{self._abort_reason}",
                              status_code=last.status_code, usage=usage, attempt_errors=errors)
            attempts += 1
            outcome = last = self._attempt(messages, schema_check)
            usage = _add_usage(usage, outcome.usage)
            tripped = self._breaker.record(outcome)
            if tripped:
                self.abort(tripped)
            if outcome.status == "ok":
                done = result(ok=True, parsed=outcome.parsed, raw=outcome.raw, parse_status="ok", attempts=attempts,
                              cached=False, error="", usage=usage, attempt_errors=errors)
                self._store(done)
                self.stats.add("ok")
                return done
            errors.append(outcome.error)
            if outcome.status == "parse_failure":
                # Retried at once: a bad reply says nothing about load, so no backoff.
                retry, delay = parse_retries < cfg.max_parse_retries, 0.0
                parse_retries += int(retry)
            else:
                retry = outcome.retryable and http_retries < cfg.max_retries
                delay = self._delay(http_retries, outcome.retry_after_s) if retry else 0.0
                http_retries += int(retry)
            budget_note = ""
            if retry and not self._take_retry():
                retry, budget_note = False, f" (the batch's {self.config.max_total_retries} retries are spent)"
            if not retry:
                self.stats.fail(outcome.status)
                return result(ok=False, parsed=None, raw=outcome.raw, parse_status=outcome.status,
                              attempts=attempts, cached=False,
                              error=f"after {attempts} attempt(s): {outcome.error}{budget_note}",
                              status_code=outcome.status_code, usage=usage, attempt_errors=errors)
            self.stats.add("retries")
            log.info("judge %s attempt %d failed (%s); retrying in %.2fs", prompt_id, attempts, outcome.error, delay)
            if delay > 0:
                self._wait(delay)

    def _cached(self, key: str, prompt_version: str, schema_check: SchemaCheck | None) -> CacheEntry | None:
        if self._cache is None:
            return None
        entry = self._cache.get(key)
        # Re-check the stored answer: a stricter schema_check since it was cached makes it a miss.
        if entry is None or entry.model != self.config.model or entry.prompt_version != prompt_version:
            return None
        return entry if check_schema(entry.parsed, schema_check) is None else None

    def _store(self, done: JudgeResult) -> None:
        if self._cache is None or done.parsed is None or done.raw is None:
            return
        self._cache.put(CacheEntry(key=done.cache_key, model=done.model, prompt_id=done.prompt_id,
                                   prompt_version=done.prompt_version, raw=done.raw, parsed=done.parsed,
                                   usage=done.usage, attempts=done.attempts, latency_s=done.latency_s))

    def _delay(self, retry_index: int, retry_after_s: float | None) -> float:
        cap = self.config.backoff_cap_s
        if retry_after_s is not None:
            # The server knows its own load better than our schedule; a huge value is capped
            # so one throttled endpoint cannot stall an evaluation for an hour.
            return min(retry_after_s, cap)
        ceiling = min(cap, self.config.backoff_base_s * (2**retry_index))
        # "Equal jitter": at least half the backoff, so concurrent workers spread out but still wait.
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _attempt(self, messages: list[dict[str, Any]], schema_check: SchemaCheck | None) -> _Attempt:
        """Send one request and classify what came back."""
        openai = self._openai
        kwargs: dict[str, Any] = {"model": self.config.model, "messages": messages, "temperature": TEMPERATURE}
        if self.config.max_tokens is not None:
            kwargs["max_tokens"] = self.config.max_tokens
        with self._slots:  # held only while the request is in flight, never while backing off
            self.stats.add("http_requests")
            try:
                completion = self._client.chat.completions.create(**kwargs)
            except openai.APITimeoutError:
                return _Attempt("timeout", error=f"timed out after {self.config.timeout_s:g}s", retryable=True,
                                transport="timeout")
            except openai.APIConnectionError as exc:
                return _Attempt("http_error", error=self._text(f"connection error: {exc}"), retryable=True,
                                transport="connection")
            except openai.APIStatusError as exc:
                code = exc.status_code
                detail = _SDK_PREFIX.sub("", exc.message)
                if exc.code:
                    detail += f" [{exc.code}]"
                retryable = (code in RETRYABLE_STATUS or code >= 500) and exc.code not in FATAL_ERROR_CODES
                return _Attempt("http_error", error=self._text(f"HTTP {code}: {detail}"), status_code=code,
                                retryable=retryable, retry_after_s=retry_after_seconds(exc.response.headers))
            except openai.OpenAIError as exc:  # e.g. a body that is not a chat completion at all
                return _Attempt("http_error", error=self._text(f"{type(exc).__name__}: {exc}"))
        usage = _usage_dict(getattr(completion, "usage", None))
        choices = getattr(completion, "choices", None) or []
        if not choices:
            return _Attempt("parse_failure", error="reply had no choices", usage=usage)
        content = choices[0].message.content
        # Mask the key before parsing, so not even an endpoint echoing it can put it into a result or the cache.
        raw = None if content is None else redact(content, self._secrets, token_patterns=False)
        try:
            parsed = extract_json_object(raw)
        except ParseError as exc:
            return _Attempt("parse_failure", raw=raw, error=str(exc), usage=usage)
        problem = check_schema(parsed, schema_check)
        if problem is not None:
            return _Attempt("parse_failure", raw=raw, error=self._text(problem), usage=usage)
        return _Attempt("ok", raw=raw, parsed=parsed, usage=usage)

    def _text(self, text: str) -> str:
        """Error text fit for a file: secrets masked first, then shortened."""
        text = redact(text, self._secrets)
        return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."

    # --- many requests -----------------------------------------------------

    def map(self, requests: Iterable[JudgeRequest], max_concurrency: int | None = None, *,
            on_result: Callable[[int, JudgeResult], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            stop_reason: str = "stopped on request") -> list[JudgeResult]:
        """Run ``requests`` concurrently; results come back in the order of ``requests``.

        At most ``max_concurrency`` requests (default ``config.max_concurrency``) run at
        once, and never more HTTP requests than ``config.max_concurrency``.
        ``on_result(done_so_far, result)`` is called on the calling thread as each item
        finishes (progress). ``should_stop`` is polled between answers; when it says
        yes, or the circuit breaker trips, the client aborts: nothing new is sent,
        and requests still in flight after ``ABORT_GRACE_S`` are left to finish on
        their own (their answers are not waited for; the item comes back aborted).
        """
        items = list(requests)
        if not items:
            return []
        workers = max_concurrency if max_concurrency is not None else self.config.max_concurrency
        if workers < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {workers}")
        pool = ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="judge")
        results: list[JudgeResult | None] = [None] * len(items)
        finished = 0
        try:
            index = {pool.submit(self.complete_json, r.prompt_id, r.prompt_version, r.messages, r.schema_check): i
                     for i, r in enumerate(items)}
            pending = set(index)
            grace_until: float | None = None
            while pending:
                done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    if future.cancelled():
                        continue
                    results[index[future]] = future.result()
                    finished += 1
                    if on_result is not None:
                        on_result(finished, results[index[future]])
                if should_stop is not None and not self._abort.is_set() and should_stop():
                    self.abort(stop_reason)
                if self._abort.is_set():
                    for future in pending:
                        future.cancel()  # not started yet: never sent
                    grace_until = grace_until or time.monotonic() + ABORT_GRACE_S
                    if time.monotonic() >= grace_until:
                        break
        finally:
            # On Ctrl-C (or a bug in a schema check) drop what has not started instead of
            # sending every remaining request first. After an abort, do not wait for requests
            # stuck in flight: they end within their timeout, and nobody reads their answer.
            pool.shutdown(wait=not self._abort.is_set(), cancel_futures=True)
        return [r if r is not None else self._never_answered(items[i]) for i, r in enumerate(results)]

    def _never_answered(self, request: JudgeRequest) -> JudgeResult:
        """The result for an item the batch gave up on before it had an answer."""
        self.stats.add("aborted")
        cfg = self.config
        key = cache_key(cfg.model, request.prompt_version, request.messages, TEMPERATURE, cfg.max_tokens,
                        endpoint=cfg.resolved_base_url)
        return JudgeResult(ok=False, parsed=None, raw=None, parse_status="aborted", attempts=0, cached=False,
                           error=f"not asked: {self._abort_reason or 'the batch was given up'}", model=cfg.model,
                           prompt_id=request.prompt_id, prompt_version=request.prompt_version, latency_s=0.0,
                           cache_key=key)
