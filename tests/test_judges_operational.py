"""The judge stages under operational trouble: garbage, a dead or dying endpoint, a stop, a resume.

Each test runs only the two judge stages and readiness through the real runner
(``execute``, ``--resume`` through ``prepare_resume``) on answers written in
place of an evaluation, against ``tests/judge_server.py`` on 127.0.0.1, so a
test takes seconds and no model is trained.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from medllm_core.kernel.context import STOP_FILE
from medllm_core.kernel.hardware import HardwareInfo
from medllm_core.kernel.plugin_manager import load_plugins
from medllm_core.kernel.profile import load_profile
from medllm_core.kernel.resume import prepare_resume
from medllm_core.kernel.runner import RunOutcome, environment_secrets, execute, new_run_info
from medllm_core.library.report_paths import ReportPaths
from medllm_core.library.thesis.eval_report import judge_lines
from tests.conftest import REPO
from tests.judge_server import JudgeServer

pytest.importorskip("openai")

API_KEY = "sk-test-operational-SECRET-7c1d9e"
OFF = ("preflight", "sft", "dpo", "simpo", "kto", "eval", "completion_check", "method_comparison", "thesis_reports")
VARIANTS = ("base", "sft")
OPEN_ITEMS = 5  # per variant: 10 grading requests (no pairwise: the plan has no trained baseline)
SAFETY_ITEMS = 4  # per variant: 8 risk requests


@pytest.fixture(autouse=True)
def _judge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def _write_answers(out: Path, run: Any) -> None:
    paths = ReportPaths.of(run)
    paths.open_responses.parent.mkdir(parents=True, exist_ok=True)
    paths.open_responses.write_text(json.dumps({v: [
        {"id": f"q{i}", "prompt": f"open question {i}", "response": f"{v} answer {i}", "reference": "reference"}
        for i in range(OPEN_ITEMS)] for v in VARIANTS}), encoding="utf-8")
    paths.safety_responses.write_text(json.dumps({v: [
        {"id": f"s{i}", "prompt": f"risky question {i}", "response": f"{v} reply {i}",
         "category": "benign" if i % 2 else "dosing"} for i in range(SAFETY_ITEMS)] for v in VARIANTS}),
        encoding="utf-8")


def _profile(out: Path, base_url: str, **extra: Any):
    registry = load_plugins(environ={})
    cli = {"output_root": str(out), **{f"stages.{name}.enabled": False for name in OFF},
           "judges.llm_judge": True, "judges.risk_judge": True, "judges.base_url": base_url,
           "judges.model": "judge-test-model", "judges.timeout_s": 5.0, "judges.backoff_base_s": 0.01, **extra}
    return registry, load_profile(REPO / "profiles/cpu_tiny.toml", environ={}, cli_overrides=cli,
                                  stages=registry.catalogue())


def _run(out: Path, base_url: str, **extra: Any) -> RunOutcome:
    registry, profile = _profile(out, base_url, **extra)
    run = new_run_info(profile)
    _write_answers(out, run)
    return execute(profile, registry, run=run, hardware=HardwareInfo(backend="cpu"), secrets=environment_secrets())


def _resume(out: Path, outcome: RunOutcome, base_url: str, **extra: Any) -> RunOutcome:
    registry, profile = _profile(out, base_url, **extra)
    return execute(profile, registry, hardware=HardwareInfo(backend="cpu"), secrets=environment_secrets(),
                   resume=prepare_resume(profile, outcome.run_dir))


def _json(out: Path, name: str) -> dict[str, Any]:
    return json.loads((out / "reports/eval" / name).read_text(encoding="utf-8"))


def _readiness(out: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((out / "reports/thesis_support/thesis_readiness.json").read_text(encoding="utf-8"))
    return {c["name"]: c for c in data["conditions"]}


def _leaks(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and API_KEY[8:].encode() in p.read_bytes()]


def _free_port() -> int:
    with socket.socket() as sock:  # free a moment ago: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_garbage_judge_fails_both_stages_and_readiness_does_not_count_them(tmp_path: Path) -> None:
    with JudgeServer(default="garbage") as server:
        outcome = _run(tmp_path, server.url)
    judge, risk = outcome.results["llm_judge"], outcome.results["risk_judge"]
    assert judge.status == "failed" and not judge.reusable
    assert "0 of 10 items judged" in judge.reason and "10 parse failures" in judge.reason
    assert risk.status == "failed" and not risk.reusable and "8 parse failures" in risk.reason
    block = _json(tmp_path, "judge_results.json")
    assert block["status"] == "failed" and block["coverage"] == 0
    assert (block["judged"], block["parse_failures"], block["transport_failures"]) == (0, 10, 0)
    assert block["accounting"]["single"]["per_variant"]["sft"]["parse_failures"] == OPEN_ITEMS
    assert block["single"]["base"]["parse_failures"] == OPEN_ITEMS
    llm_risk = _json(tmp_path, "risk_results.json")["llm"]
    assert llm_risk["status"] == "failed" and llm_risk["parse_failures"] == 8
    assert llm_risk["per_variant"]["base"]["parse_failures"] == SAFETY_ITEMS
    conditions = _readiness(tmp_path)
    for name in ("llm_judge", "risk_judge"):
        assert not conditions[name]["met"]
        assert "not counted as run (failed, coverage 0%)" in conditions[name]["reason"]
    assert "10 parse failures" in conditions["llm_judge"]["reason"]
    assert _leaks(tmp_path) == []


def test_judge_below_min_coverage_is_partial_and_a_resume_asks_only_for_what_is_missing(tmp_path: Path) -> None:
    with JudgeServer(default="judge") as server:
        # one request at a time, so the script lines up: 3 garbage replies use up one item's parse retries
        server.script(*["garbage"] * 9)  # items 1-3 of 10 fail: 70% < 80%
        first = _run(tmp_path, server.url, **{"judges.max_concurrency": 1})
        sent_first = server.count
        judge = first.results["llm_judge"]
        assert judge.status == "failed" and not judge.reusable
        assert "LLM judge partial: coverage below min_coverage 0.8: 7 of 10 items judged (70%)" in judge.reason
        block = _json(tmp_path, "judge_results.json")
        assert (block["status"], block["coverage"], block["parse_failures"]) == ("partial", 0.7, 3)
        assert first.results["risk_judge"].status == "done"  # its 8 items all came back well
        condition = _readiness(tmp_path)["llm_judge"]
        assert not condition["met"] and "partial, coverage 70%" in condition["reason"]

        resumed = _resume(tmp_path, first, server.url, **{"judges.max_concurrency": 1})
        # the 7 cached verdicts are reused, the 3 failed items asked again; risk_judge is reused whole
        assert server.count - sent_first == 3
    assert resumed.exit_code == 0, resumed.message
    assert resumed.results["llm_judge"].status == "done" and resumed.results["llm_judge"].reusable
    assert _json(tmp_path, "judge_results.json")["coverage"] == 1.0
    assert _readiness(tmp_path)["llm_judge"]["met"]


def test_dead_endpoint_trips_the_circuit_breaker_quickly_with_a_clear_reason(tmp_path: Path) -> None:
    port = _free_port()
    # Credentials in the URL must not come back in the reason (safe_url drops them).
    started = time.monotonic()
    outcome = _run(tmp_path, f"http://user:hunter2-credential@127.0.0.1:{port}/v1",
                   **{"judges.max_retries": 3, "judges.backoff_base_s": 1.0})
    elapsed = time.monotonic() - started
    assert elapsed < 20  # before: every item ran out its retries with backoff, minutes for a real evaluation
    judge = outcome.results["llm_judge"]
    assert judge.status == "failed" and not judge.reusable
    assert f"endpoint unreachable: 5 consecutive connection errors to http://127.0.0.1:{port}/v1" in judge.reason
    assert "hunter2" not in judge.reason and API_KEY[8:] not in judge.reason
    block = _json(tmp_path, "judge_results.json")
    assert block["status"] == "failed" and block["judged"] == 0
    assert block["not_requested"] + block["transport_failures"] == 10
    assert "endpoint unreachable" in _readiness(tmp_path)["llm_judge"]["reason"]
    assert _leaks(tmp_path) == []


def test_endpoint_dying_mid_stage_sends_few_requests_and_resume_asks_only_for_the_missing(tmp_path: Path) -> None:
    with JudgeServer(default="drop") as server:
        server.script(*["judge"] * 4)  # four answers, then every connection is dropped
        first = _run(tmp_path, server.url, **{"judges.max_retries": 3})
        sent_first = server.count
        # the breaker trips at the 5th error in a row; at most the requests in flight then follow
        assert sent_first <= 4 + 5 + 4 + 5 + 4  # llm_judge, then risk_judge on a server that is still dead
        judge = first.results["llm_judge"]
        assert judge.status == "failed" and "endpoint unreachable: 5 consecutive connection errors" in judge.reason
        assert "LLM judge partial" in judge.reason and "4 of 10 items judged" in judge.reason
        assert first.results["risk_judge"].status == "failed"

        server.default = "judge"  # the endpoint is back
        resumed = _resume(tmp_path, first, server.url)
        assert server.count - sent_first == (10 - 4) + 8  # the four cached verdicts are not asked again
    assert resumed.exit_code == 0, resumed.message
    assert {n: r.status for n, r in resumed.results.items() if "judge" in n} == {"llm_judge": "done",
                                                                                 "risk_judge": "done"}
    assert _leaks(tmp_path) == []


def test_stop_request_ends_a_judge_stage_within_seconds(tmp_path: Path) -> None:
    with JudgeServer(default="delay:60:judge") as server:  # an endpoint that hangs
        registry, profile = _profile(tmp_path, server.url, **{"judges.timeout_s": 60.0})
        run = new_run_info(profile)
        _write_answers(tmp_path, run)
        stopper = threading.Timer(1.5, lambda: (run.run_dir / STOP_FILE).touch())
        stopper.start()
        started = time.monotonic()
        outcome = execute(profile, registry, run=run, hardware=HardwareInfo(backend="cpu"))
        elapsed = time.monotonic() - started
        stopper.join()
    assert elapsed < 10  # before: the stage waited for every request's timeout and retries (181 s)
    judge = outcome.results["llm_judge"]
    # a stopped stage is "stopped", never "failed", and is not reused on resume (its cache is)
    assert judge.status == "stopped" and not judge.reusable and "stop" in judge.reason
    assert outcome.results["risk_judge"].status == "skipped"  # the runner starts nothing after a stop
    assert outcome.exit_code != 0


def test_progress_max_tokens_and_retry_budget(tmp_path: Path) -> None:
    with JudgeServer(default="garbage") as server:
        outcome = _run(tmp_path, server.url, **{"judges.max_tokens": 64, "judges.max_total_retries": 3,
                                                "judges.max_concurrency": 1, "stages.risk_judge.enabled": False})
        bodies = [r.body for r in server.requests]
        sent = server.count
    assert outcome.results["llm_judge"].status == "failed"
    assert {b.get("max_tokens") for b in bodies} == {64}
    assert sent == 10 + 3  # every item asked once, plus the stage's whole retry budget
    events = [json.loads(line) for line in outcome.run_dir.joinpath("events.jsonl").read_text().splitlines()]
    steps = [e["step"] for e in events if e["type"] == "progress" and e["stage"] == "llm_judge"]
    assert steps == list(range(11)) and all(e["total"] == 10 for e in events
                                            if e["type"] == "progress" and e["stage"] == "llm_judge")
    assert "retries are spent" in (tmp_path / "reports/eval/judge_items.jsonl").read_text()


def test_default_max_tokens_is_sent_and_the_cache_is_per_endpoint(tmp_path: Path) -> None:
    solo = {"stages.risk_judge.enabled": False}
    with JudgeServer(default="judge") as first, JudgeServer(default="judge") as second:
        assert _run(tmp_path, first.url, **solo).results["llm_judge"].status == "done"
        assert first.count == 10 and {r.body["max_tokens"] for r in first.requests} == {512}
        assert _run(tmp_path, first.url, **solo).results["llm_judge"].status == "done"
        assert first.count == 10  # a rerun against the same endpoint costs nothing
        # the same model name at another endpoint is another judge: nothing comes from the first one's answers
        assert _run(tmp_path, second.url, **solo).results["llm_judge"].status == "done"
        assert second.count == 10
    assert _leaks(tmp_path) == []


def test_judge_table_shows_judged_parse_and_transport_failures() -> None:
    block = {"status": "done", "model": "j", "prompt_version": "1", "criteria": ["overall"],
             "single": {"sft": {"judged": 8, "parse_failures": 1, "transport_failures": 1, "mean": {"overall": 7}}}}
    text = "\n".join(judge_lines(block))
    assert "| variant | judged | parse failures | transport failures | overall |" in text
    assert "| sft | 8 | 1 | 1 | 7 |" in text


def test_client_breaker_counts_http_errors_in_a_row_and_a_rate_limit_does_not_trip_it() -> None:
    from medllm_core.library.judges import JudgeClient, JudgeConfig, JudgeRequest

    requests = [JudgeRequest(f"item-{i}", "v1", [{"role": "user", "content": f"question {i}"}]) for i in range(4)]
    with JudgeServer(default="status:500") as server:
        server.script("status:429", "status:429", "status:429")  # rate limits: backoff, not a dead endpoint
        config = JudgeConfig(model="m", base_url=server.url, api_key=API_KEY, max_retries=10, backoff_base_s=0.0,
                             max_concurrency=1, circuit_breaker=3)
        with JudgeClient(config) as client:
            results = client.map(requests)
        assert server.count == 3 + 3  # three 429s, then the third 500 in a row trips the breaker
    assert client.abort_reason.startswith(f"endpoint failing: 3 consecutive HTTP errors to {server.url}")
    assert results[0].parse_status == "http_error" and "not retried: endpoint failing" in results[0].error
    assert [r.parse_status for r in results[1:]] == ["aborted"] * 3
    assert all(r.error.startswith("not asked: endpoint failing") for r in results[1:])
