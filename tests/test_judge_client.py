"""The judge client against a local OpenAI-compatible server that misbehaves on purpose.

Every test talks real HTTP to ``tests/judge_server.py`` on 127.0.0.1 through the
real ``openai`` SDK; backoff waits go to a recorder instead of ``time.sleep`` so
the retry schedule is checked exactly and the tests stay fast.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from medllm_core.kernel.errors import ConfigError
from medllm_core.library.judges import (
    JudgeClient,
    JudgeConfig,
    JudgeRequest,
    JudgeResult,
    ParseError,
    cache_key,
    check_schema,
    extract_json_object,
    judge_availability,
    redact,
    require_keys,
    retry_after_seconds,
)
from medllm_core.library.judges.settings import JudgeEndpoint
from tests.judge_server import DEFAULT_VERDICT, GARBAGE, JudgeServer

pytest.importorskip("openai")

KEY = "sk-test-9f8e7d6c5b4a3f2e1d0c"  # distinctive, so a leak anywhere is unmistakable
MODEL = "judge-test-model"
MESSAGES = [
    {"role": "system", "content": "You grade medical answers. Reply with a JSON object."},
    {"role": "user", "content": "Question: max paracetamol dose per day for adults? Answer: 4 g."},
]

ClientFactory = Callable[..., JudgeClient]


@pytest.fixture(autouse=True)
def _no_ambient_judge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real key or endpoint must never be used (or tested against) here.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def server() -> Iterator[JudgeServer]:
    with JudgeServer() as srv:
        yield srv


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(server: JudgeServer, sleeps: list[float]) -> Iterator[ClientFactory]:
    clients: list[JudgeClient] = []

    def factory(**overrides: Any) -> JudgeClient:
        settings: dict[str, Any] = dict(model=MODEL, base_url=server.url, api_key=KEY, timeout_s=5.0, max_retries=2,
                                        max_parse_retries=2, max_concurrency=4, backoff_base_s=1.0, backoff_cap_s=30.0)
        settings.update(overrides)
        client = JudgeClient(JudgeConfig(**settings), sleep=sleeps.append, rng=random.Random(0))
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


def ask(client: JudgeClient, content: str = "", **kwargs: Any) -> JudgeResult:
    messages = MESSAGES if not content else [*MESSAGES[:1], {"role": "user", "content": content}]
    return client.complete_json("grade_answer", "v1", messages, **kwargs)


# --- answers that come back well ---------------------------------------------


def test_well_behaved_answer_parses_and_records_its_provenance(server: JudgeServer, make_client: ClientFactory) -> None:
    result = ask(make_client())
    assert result.ok and result.parse_status == "ok"
    assert result.parsed == DEFAULT_VERDICT
    assert json.loads(result.raw or "") == DEFAULT_VERDICT
    assert (result.attempts, result.cached, result.error) == (1, False, "")
    assert (result.model, result.prompt_id, result.prompt_version) == (MODEL, "grade_answer", "v1")
    assert result.usage == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert result.latency_s >= 0
    assert server.count == 1
    record = result.to_record()
    assert json.loads(json.dumps(record))["parse_status"] == "ok"


def test_request_is_temperature_zero_with_the_model_messages_and_bearer_key(
        server: JudgeServer, make_client: ClientFactory) -> None:
    ask(make_client(max_tokens=64))
    sent = server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["temperature"] == 0
    assert sent.body["model"] == MODEL
    assert sent.body["messages"] == MESSAGES
    assert sent.body["max_tokens"] == 64
    assert sent.headers["authorization"] == f"Bearer {KEY}"


def test_base_url_without_v1_uses_the_bare_route(server: JudgeServer, make_client: ClientFactory) -> None:
    result = ask(make_client(base_url=server.url.removesuffix("/v1")))
    assert result.ok
    assert server.requests[0].path == "/chat/completions"


@pytest.mark.parametrize("reply", [
    "fenced",
    'text:Sure. Here is my verdict: {"score": 4, "rationale": "accurate and safe"} Hope this helps!',
    'text:<think>the {draft} says score 2</think>{"score": 4, "rationale": "accurate and safe"}',
])
def test_fenced_or_wrapped_json_is_parsed(server: JudgeServer, make_client: ClientFactory, reply: str) -> None:
    server.script(reply)
    result = ask(make_client())
    assert result.ok and result.parsed == DEFAULT_VERDICT and result.attempts == 1


# --- transport trouble: bounded retries with backoff --------------------------


def test_429_then_ok_retries_once_and_succeeds(server: JudgeServer, make_client: ClientFactory,
                                               sleeps: list[float]) -> None:
    server.script("status:429", "ok")
    client = make_client()
    result = ask(client)
    assert result.ok and result.attempts == 2 and server.count == 2
    assert result.attempt_errors[0].startswith("HTTP 429")
    assert sleeps == []  # the server said Retry-After: 0, so no invented wait on top
    assert client.stats.as_dict()["retries"] == 1


def test_retry_after_is_respected_but_capped(server: JudgeServer, make_client: ClientFactory,
                                            sleeps: list[float]) -> None:
    server.script("status:429:1.5", "status:503:3600", "ok")
    result = ask(make_client(backoff_cap_s=5.0))
    assert result.ok and result.attempts == 3
    assert sleeps == [1.5, 5.0]


def test_persistent_500_stops_after_max_attempts_with_growing_backoff(
        server: JudgeServer, make_client: ClientFactory, sleeps: list[float]) -> None:
    server.default = "status:500"
    client = make_client(max_retries=2, backoff_base_s=1.0)
    result = ask(client)
    assert not result.ok and result.parse_status == "http_error"
    assert result.attempts == 3 and server.count == 3
    assert result.status_code == 500
    assert result.error == "after 3 attempt(s): HTTP 500: scripted status 500 [500]"
    assert result.parsed is None and result.raw is None
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0  # exponential, with jitter in the upper half
    assert client.stats.as_dict()["failures"] == {"parse_failure": 0, "http_error": 1, "timeout": 0}


def test_backoff_never_exceeds_the_cap(server: JudgeServer, make_client: ClientFactory, sleeps: list[float]) -> None:
    server.default = "status:502"
    ask(make_client(max_retries=6, backoff_base_s=1.0, backoff_cap_s=3.0))
    assert server.count == 7 and len(sleeps) == 6
    assert max(sleeps) <= 3.0


def test_client_error_is_not_retried(server: JudgeServer, make_client: ClientFactory) -> None:
    server.script("status:400")
    result = ask(make_client())
    assert result.parse_status == "http_error" and result.attempts == 1 and server.count == 1
    assert result.status_code == 400


def test_out_of_quota_429_is_not_retried(server: JudgeServer, make_client: ClientFactory) -> None:
    server.script("quota")
    result = ask(make_client())
    assert result.parse_status == "http_error" and result.attempts == 1 and server.count == 1
    assert result.error == "after 1 attempt(s): HTTP 429: You exceeded your current quota. [insufficient_quota]"


def test_timeout_is_recorded_as_timeout_with_bounded_attempts(server: JudgeServer, make_client: ClientFactory) -> None:
    server.default = "delay:5"
    started = time.monotonic()
    result = ask(make_client(timeout_s=0.3, max_retries=1, backoff_base_s=0.0))
    assert time.monotonic() - started < 3
    assert result.parse_status == "timeout" and not result.ok
    assert result.attempts == 2 and server.count == 2
    assert "timed out after 0.3s" in result.error


def test_unreachable_endpoint_is_an_http_error_after_bounded_attempts(make_client: ClientFactory) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = ask(make_client(base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, timeout_s=1.0))
    assert result.parse_status == "http_error" and result.attempts == 2
    assert "connection error" in result.error


# --- replies that are not acceptable JSON ------------------------------------


def test_garbage_is_retried_then_recorded_as_parse_failure(server: JudgeServer, make_client: ClientFactory,
                                                           sleeps: list[float]) -> None:
    server.default = "garbage"
    client = make_client(max_parse_retries=2)
    result = ask(client)
    assert result.parse_status == "parse_failure" and not result.ok
    assert result.attempts == 3 and server.count == 3
    assert result.raw == GARBAGE and result.parsed is None
    assert "no JSON object" in result.error
    assert sleeps == []  # a bad reply is not a load signal: retried at once
    assert client.stats.as_dict()["failures"]["parse_failure"] == 1


def test_garbage_then_ok_succeeds_on_the_retry(server: JudgeServer, make_client: ClientFactory) -> None:
    server.script("garbage", "ok")
    result = ask(make_client())
    assert result.ok and result.attempts == 2 and len(result.attempt_errors) == 1


def test_schema_check_failure_is_retried_then_parse_failure(server: JudgeServer, make_client: ClientFactory) -> None:
    server.default = 'ok:{"verdict": "fine"}'
    result = ask(make_client(max_parse_retries=1), schema_check=require_keys("score", "rationale"))
    assert result.parse_status == "parse_failure"
    assert result.attempts == 2 and server.count == 2
    assert "missing key(s): score, rationale" in result.error
    assert result.raw == '{"verdict": "fine"}' and result.parsed is None


def test_schema_check_passing_after_a_bad_reply(server: JudgeServer, make_client: ClientFactory) -> None:
    server.script('ok:{"score": "four"}', "ok")
    check = require_keys("score", types={"score": int})
    result = ask(make_client(), schema_check=check)
    assert result.ok and result.attempts == 2
    assert "key 'score' has type str" in result.attempt_errors[0]


def test_completion_without_choices_is_a_parse_failure(server: JudgeServer, make_client: ClientFactory) -> None:
    server.default = "no_choices"
    result = ask(make_client(max_parse_retries=0))
    assert result.parse_status == "parse_failure" and result.attempts == 1
    assert "no choices" in result.error


def test_parse_and_transport_retries_have_separate_bounds(server: JudgeServer, make_client: ClientFactory) -> None:
    server.default = "garbage"
    server.script("status:500", "garbage", "status:503")
    result = ask(make_client(max_retries=2, max_parse_retries=1))
    # 500 (retry 1/2), garbage (parse retry 1/1), 503 (retry 2/2), garbage: out of parse retries
    assert result.parse_status == "parse_failure" and result.attempts == 4 and server.count == 4


# --- cache --------------------------------------------------------------------


def test_cache_makes_reruns_free(server: JudgeServer, make_client: ClientFactory, tmp_path: Path) -> None:
    cache_dir = tmp_path / "judge_cache"
    first = ask(make_client(cache_dir=cache_dir))
    assert first.ok and not first.cached and server.count == 1

    again = ask(make_client(cache_dir=cache_dir))  # a fresh client: what a rerun of the pipeline does
    assert server.count == 1
    assert again.cached and again.ok and again.attempts == 0
    assert again.parsed == first.parsed and again.raw == first.raw and again.cache_key == first.cache_key
    assert again.usage == first.usage  # evidence of what the answer originally cost

    files = list(cache_dir.rglob("*.json"))
    assert len(files) == 1 and files[0].stem == first.cache_key
    entry = json.loads(files[0].read_text(encoding="utf-8"))
    assert (entry["model"], entry["prompt_version"], entry["parsed"]) == (MODEL, "v1", DEFAULT_VERDICT)


def test_failures_are_not_cached(server: JudgeServer, make_client: ClientFactory, tmp_path: Path) -> None:
    server.script("garbage")
    client = make_client(cache_dir=tmp_path, max_parse_retries=0)
    assert ask(client).parse_status == "parse_failure"
    assert not list(tmp_path.rglob("*.json"))
    result = ask(client)
    assert result.ok and not result.cached and server.count == 2


def test_cache_key_covers_model_prompt_version_and_messages(server: JudgeServer, make_client: ClientFactory,
                                                            tmp_path: Path) -> None:
    client = make_client(cache_dir=tmp_path)
    ask(client)
    client.complete_json("grade_answer", "v2", MESSAGES)
    ask(client, content="a different question")
    make_client(cache_dir=tmp_path, model="another-judge").complete_json("grade_answer", "v1", MESSAGES)
    assert server.count == 4
    assert len(list(tmp_path.rglob("*.json"))) == 4
    # Key order inside a message does not matter; the words do.
    reordered = [{"content": m["content"], "role": m["role"]} for m in MESSAGES]
    assert cache_key(MODEL, "v1", reordered, 0.0) == cache_key(MODEL, "v1", MESSAGES, 0.0)
    assert cache_key(MODEL, "v1", MESSAGES, 0.0) != cache_key(MODEL, "v1", MESSAGES, 0.7)
    assert cache_key(MODEL, "v1", MESSAGES, 0.0, endpoint="http://a/v1") != cache_key(MODEL, "v1", MESSAGES, 0.0,
                                                                               endpoint="http://b/v1")


def test_corrupt_cache_entry_is_a_miss_and_is_rewritten(server: JudgeServer, make_client: ClientFactory,
                                                        tmp_path: Path) -> None:
    client = make_client(cache_dir=tmp_path)
    first = ask(client)
    path = next(tmp_path.rglob("*.json"))
    path.write_text("{ half a file", encoding="utf-8")
    again = ask(client)
    assert again.ok and not again.cached and server.count == 2
    assert json.loads(path.read_text(encoding="utf-8"))["key"] == first.cache_key


def test_cached_answer_failing_a_stricter_schema_check_is_asked_again(
        server: JudgeServer, make_client: ClientFactory, tmp_path: Path) -> None:
    client = make_client(cache_dir=tmp_path)
    ask(client)
    server.script('ok:{"score": 4, "rationale": "fine", "risk": "low"}')
    result = ask(client, schema_check=require_keys("risk"))
    assert result.ok and not result.cached and result.parsed == {"score": 4, "rationale": "fine", "risk": "low"}
    assert server.count == 2


# --- concurrency --------------------------------------------------------------


def _requests(n: int) -> list[JudgeRequest]:
    return [JudgeRequest(f"item-{i}", "v1", [*MESSAGES[:1], {"role": "user", "content": f"question {i}"}])
            for i in range(n)]


def test_map_respects_the_concurrency_limit_and_keeps_order(server: JudgeServer, make_client: ClientFactory) -> None:
    server.default = "delay:0.2:echo"
    client = make_client(max_concurrency=8)
    results = client.map(_requests(8), max_concurrency=2)
    assert server.max_in_flight == 2
    assert [r.prompt_id for r in results] == [f"item-{i}" for i in range(8)]
    assert [r.parsed for r in results] == [{"echo": f"question {i}"} for i in range(8)]
    assert client.stats.as_dict() == {"requests": 8, "http_requests": 8, "cache_hits": 0, "retries": 0, "ok": 8,
                                      "aborted": 0,
                                      "failures": {"parse_failure": 0, "http_error": 0, "timeout": 0}}


def test_config_limit_bounds_http_requests_even_with_a_wider_pool(server: JudgeServer,
                                                                  make_client: ClientFactory) -> None:
    server.default = "delay:0.2:echo"
    results = make_client(max_concurrency=2).map(_requests(6), max_concurrency=6)
    assert server.max_in_flight == 2
    assert all(r.ok for r in results)


def test_map_counts_cache_hits_retries_and_failures_by_kind(server: JudgeServer, make_client: ClientFactory,
                                                            tmp_path: Path) -> None:
    server.default = "echo"
    client = make_client(cache_dir=tmp_path, max_retries=1, max_parse_retries=0, max_concurrency=1)
    client.map(_requests(2))  # warm the cache for items 0 and 1
    server.script("status:500", "status:500", "garbage", "status:429")
    # sequential (one worker) so the script lines up: item 2 fails twice, item 3 garbage, item 4 retried
    results = client.map(_requests(5))
    assert [r.parse_status for r in results] == ["ok", "ok", "http_error", "parse_failure", "ok"]
    assert [r.cached for r in results] == [True, True, False, False, False]
    stats = client.stats.as_dict()
    assert stats["requests"] == 7 and stats["cache_hits"] == 2 and stats["http_requests"] == 2 + 5
    assert stats["retries"] == 2
    assert stats["failures"] == {"parse_failure": 1, "http_error": 1, "timeout": 0}


def test_map_of_nothing_and_bad_limits(make_client: ClientFactory) -> None:
    client = make_client()
    assert client.map([]) == []
    with pytest.raises(ValueError):
        client.map(_requests(1), max_concurrency=0)


# --- availability and configuration --------------------------------------------


def test_without_a_key_the_judge_is_unavailable_with_a_reason(server: JudgeServer) -> None:
    available, reason = judge_availability(JudgeConfig(model=MODEL, base_url=server.url))
    assert not available and reason == "OPENAI_API_KEY not set"
    with pytest.raises(ConfigError, match="OPENAI_API_KEY not set"):
        JudgeClient(JudgeConfig(model=MODEL, base_url=server.url))
    assert server.count == 0


def test_key_comes_from_the_environment_and_never_shows(server: JudgeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    config = JudgeConfig.from_profile(JudgeEndpoint(base_url=server.url, model=MODEL), cache_dir="~/judge-cache")
    assert config.api_key == KEY
    available, reason = judge_availability(config)
    assert available and KEY not in reason and MODEL in reason
    assert KEY not in repr(config) and KEY not in json.dumps(config.describe())
    assert config.describe()["api_key_configured"] is True
    assert config.cache_dir == Path("~/judge-cache").expanduser()
    with pytest.raises(ConfigError):
        JudgeConfig.from_profile(JudgeEndpoint(), api_key="sk-from-a-profile")
    assert JudgeConfig.from_profile(JudgeEndpoint(model="a"), model="b", max_retries=0).model == "b"


def test_base_url_falls_back_to_the_environment_then_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    assert JudgeConfig().resolved_base_url == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert JudgeConfig().resolved_base_url == "http://127.0.0.1:9/v1"
    assert JudgeConfig(base_url="http://judge.local/v1").resolved_base_url == "http://judge.local/v1"


def test_bad_settings_are_config_errors() -> None:
    available, reason = judge_availability(JudgeConfig(base_url="judge.local:8000", api_key=KEY))
    assert not available and "not an http(s) URL" in reason
    assert not judge_availability(JudgeConfig(model=" ", base_url="http://x/v1", api_key=KEY))[0]
    for bad in ({"timeout_s": 0}, {"max_retries": -1}, {"max_concurrency": 0}, {"max_tokens": 0}):
        with pytest.raises(ConfigError):
            JudgeConfig(**bad)


# --- the key never leaks -----------------------------------------------------------


def test_api_key_never_appears_in_results_errors_cache_or_logs(
        server: JudgeServer, make_client: ClientFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's and the HTTP stack's included
    cache_dir = tmp_path / "cache"
    ask(make_client())  # warm-up: the SDK's first request imports more, which must not eat the short timeout
    client = make_client(cache_dir=cache_dir, max_retries=1, max_parse_retries=1, timeout_s=0.5, backoff_base_s=0.0)
    # A hostile endpoint echoes the Authorization header back, in errors and in replies.
    server.script("ok", "leak:401", "leak:500", "leak:500", "leak:200", "garbage", "garbage",
                  "delay:2", "delay:2", "status:429", "ok")
    results = [ask(client, content=f"item {i}") for i in range(7)]
    assert [r.parse_status for r in results] == ["ok", "http_error", "http_error", "ok", "parse_failure", "timeout",
                                                 "ok"]
    assert "Bearer ***" in results[1].error and "Bearer ***" in results[3].raw  # the echo happened, masked
    assert len(list(cache_dir.rglob("*.json"))) == 3  # only the three answers that parsed
    rerun = [ask(make_client(cache_dir=cache_dir), content=f"item {i}") for i in range(7)]
    assert [r.cached for r in rerun] == [True, False, False, True, False, False, True]

    texts = [repr(r) for r in results + rerun]
    texts += [json.dumps(r.to_record()) for r in results + rerun]
    texts += [p.read_text(encoding="utf-8") for p in cache_dir.rglob("*") if p.is_file()]
    texts += [caplog.text, repr(client), repr(client.stats)]
    for text in texts:
        assert KEY not in text
        assert KEY[8:] not in text  # nor its distinctive tail


# --- parsing, redaction and Retry-After in isolation ------------------------------


@pytest.mark.parametrize("text,expected", [
    ('{"a": 1}', {"a": 1}),
    ('  \n{"a": {"b": [1, 2]}}\n', {"a": {"b": [1, 2]}}),
    ('```json\n{"a": 1}\n```', {"a": 1}),
    ('```\n{"a": 1}\n```', {"a": 1}),
    ('Verdict:\n```JSON\n{"a": 1}\n```\nThanks', {"a": 1}),
    ('My answer is {"a": 1} and that is final {"b": 2}', {"a": 1}),
    ('The set {x} is not JSON, but {"a": "}"} is', {"a": "}"}),
    ('<think>maybe {"a": 0}</think>\n{"a": 1}', {"a": 1}),
    ('[1, 2] then {"a": 1}', {"a": 1}),
])
def test_extract_json_object(text: str, expected: dict[str, Any]) -> None:
    assert extract_json_object(text) == expected


@pytest.mark.parametrize("text", [None, "", "   ", "no json here", "[1, 2]", '"just a string"', "{broken: json}",
                                  "{" * 5000])
def test_extract_json_object_rejects(text: str | None) -> None:
    with pytest.raises(ParseError):
        extract_json_object(text)


def test_schema_checks_of_every_shape() -> None:
    parsed = {"score": 3, "flag": True}
    assert check_schema(parsed, None) is None
    assert check_schema(parsed, lambda p: True) is None
    assert check_schema(parsed, lambda p: None) is None
    assert check_schema(parsed, lambda p: False) == "schema check failed"
    assert check_schema(parsed, lambda p: "score out of range") == "schema check failed: score out of range"
    assert "KeyError" in (check_schema(parsed, lambda p: p["missing"]) or "")
    assert check_schema(parsed, require_keys("score", types={"score": int, "flag": bool})) is None
    assert check_schema({"score": True}, require_keys("score", types={"score": int})) is not None
    assert check_schema({"score": 2.5}, require_keys("score", types={"score": (int, float)})) is None


def test_redact_masks_the_key_and_token_shapes() -> None:
    text = f"auth Bearer {KEY} key={KEY} other sk-proj-abcdefgh1234 header 'Authorization': 'Bearer xyz123'"
    masked = redact(text, (KEY,))
    assert KEY not in masked and "sk-proj-abcdefgh1234" not in masked and "xyz123" not in masked
    assert redact("the bearer of bad news", (), token_patterns=False) == "the bearer of bad news"
    assert redact("risk-assessment and task-force", ()) == "risk-assessment and task-force"


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "-3"}) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 50 <= (retry_after_seconds({"retry-after": future}) or 0) <= 61


# --- the test server itself ------------------------------------------------------


def test_server_stops_promptly_even_with_a_request_parked_in_a_delay() -> None:
    srv = JudgeServer(default="delay:30").start()
    client = JudgeClient(JudgeConfig(model=MODEL, base_url=srv.url, api_key=KEY, timeout_s=10, max_retries=0))
    worker = threading.Thread(target=ask, args=(client,), daemon=True)
    worker.start()
    deadline = time.monotonic() + 5
    while srv.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    srv.stop()
    worker.join(timeout=5)
    client.close()
    assert time.monotonic() - started < 2 and not worker.is_alive()


def test_server_rejects_unknown_behaviours() -> None:
    with JudgeServer() as srv, pytest.raises(ValueError):
        srv.script("explode")
