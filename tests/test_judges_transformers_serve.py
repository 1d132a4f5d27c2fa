"""The judge stages against a real OpenAI-compatible server: ``transformers serve`` on 127.0.0.1.

``tests/judge_server.py`` is a scripted stand-in; this test puts the project's tiny
Qwen2 checkpoint (``build_tiny_model`` on the sample data) behind the server that
ships with transformers, and runs the cpu_tiny profile's judge stages against it
over HTTP, offline. The tiny model answers garbage, so the evidence must show that
every request reached the server and came back unparseable, and nothing may claim
a usable judge. Needs the serving extras (``pip install -e '.[dev]'``: FastAPI and
Uvicorn on top of ``[all]``); without them the test is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

API_KEY = "sk-test-medllm-SERVE-7d31b9e0"
READY_TIMEOUT_S = 120.0
# Without max_tokens transformers serve generates up to 1024 new tokens per reply (EOS aside): measured at
# 20-40 s a request on 2 CPU cores with the judges' ~1,200-token prompts, 7.5 minutes for this run. The
# stages' max_tokens setting (sent as the request's max_tokens, which the server honours) keeps it short.
JUDGE_MAX_TOKENS = 24


def _missing_serving() -> str | None:
    """Why ``transformers serve`` cannot run here, or None."""
    missing = [m for m in ("torch", "transformers", "trl", "openai") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{', '.join(missing)} not installed (pip install -e '.[all,dev]')"
    if importlib.util.find_spec("transformers.cli.serve") is None:
        return "this transformers version has no `transformers serve` command"
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        absent = [m for m in ("fastapi", "uvicorn", "pydantic", "openai") if importlib.util.find_spec(m) is None]
        return (f"`transformers serve` needs the serving extras, missing: {', '.join(absent) or '?'} "
                "(pip install -e '.[dev]')")
    return None


_SKIP_REASON = _missing_serving()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_SKIP_REASON is not None, reason=_SKIP_REASON or "")]


@dataclass
class ServedModel:
    url: str  # base_url for an OpenAI client: http://127.0.0.1:PORT/v1
    model: str  # the name the server answers to: the checkpoint folder (it is pinned to it)
    log: Path  # the server's stdout + stderr (uvicorn's access log included)

    def chat_posts(self) -> int:
        """Chat-completion requests the server answered, from its access log."""
        return len(re.findall(r'"POST /v1/chat/completions HTTP/1\.1" 200', self.log.read_text(errors="replace")))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str, timeout: float = 2.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return json.loads(reply.read())


def _post_json(url: str, body: dict, timeout: float = 120.0) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read())


def _wait_ready(proc: subprocess.Popen, url: str, log: Path) -> float:
    """Poll ``/v1/models`` until the server lists a model; seconds waited. Fails with the log on exit/timeout."""
    start = time.monotonic()
    while time.monotonic() - start < READY_TIMEOUT_S:
        if proc.poll() is not None:
            pytest.fail(f"transformers serve exited with {proc.returncode} before it was ready:\n"
                        f"{log.read_text(errors='replace')[-3000:]}")
        try:
            if _get_json(f"{url}/models").get("data"):
                return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            pass
        time.sleep(0.25)
    pytest.fail(f"transformers serve not ready after {READY_TIMEOUT_S:.0f}s:\n"
                f"{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedModel]:
    from medllm_core.library.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("transformers_serve")
    model_dir = build_tiny_model(root / "tiny-judge", sorted((REPO / "data/samples").glob("*.jsonl")), seed=7)
    port = _free_port()
    log = root / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "HF_", "TRANSFORMERS_"))}
    # Offline: no hub look-ups, no PyPI update check, nothing written to the user's HF cache.
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_UPDATE_CHECK="1",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HOME=str(root / "hf_home"), TOKENIZERS_PARALLELISM="false")
    # The folder as the positional (force) model: it is loaded before the port opens, and every request must
    # name it exactly (a different "model" is a 400), so a ready server is a loaded model.
    command = [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve",
               str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--log-level", "info"]
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=root)
    try:
        server = ServedModel(url=f"http://127.0.0.1:{port}/v1", model=str(model_dir), log=log)
        waited = _wait_ready(proc, server.url, log)
        print(f"\ntransformers serve ready after {waited:.1f}s on {server.url}")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def served_run(served: ServedModel, tmp_path_factory: pytest.TempPathFactory):
    from medllm_core.kernel.plugin_manager import load_plugins
    from medllm_core.kernel.profile import load_profile
    from medllm_core.kernel.runner import environment_secrets, execute, new_run_info

    out = tmp_path_factory.mktemp("served_run")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    endpoint = {"base_url": served.url, "model": served.model, "timeout_s": 120.0, "max_retries": 0,
                "max_concurrency": 2, "backoff_base_s": 0.0, "max_tokens": JUDGE_MAX_TOKENS}
    cli = {
        "output_root": str(out),
        "stages.dpo.enabled": False, "stages.simpo.enabled": False, "stages.kto.enabled": False,
        "stages.sft.max_steps": 2, "stages.sft.save_steps": 2,
        "stages.eval.max_items": 3, "stages.eval.max_new_tokens_open": 12, "stages.eval.max_new_tokens_mcq": 4,
        "stages.llm_judge.use_llm": True, "stages.risk_judge.use_llm": True,
        **{f"stages.llm_judge.{k}": v for k, v in endpoint.items()},
        **{f"stages.risk_judge.{k}": v for k, v in endpoint.items()},
    }
    try:
        registry = load_plugins(environ={})
        profile = load_profile(REPO / "profiles/cpu_tiny.toml", environ={}, cli_overrides=cli,
                               stages=registry.catalogue())
        posts_before = served.chat_posts()
        start = time.monotonic()
        outcome = execute(profile, registry, run=new_run_info(profile), secrets=environment_secrets())
        elapsed = time.monotonic() - start
    finally:
        monkeypatch.undo()
    return out, outcome, served.chat_posts() - posts_before, elapsed


def _items(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_judge_requests_reach_transformers_serve(served: ServedModel, served_run) -> None:
    out, outcome, posts, elapsed = served_run
    eval_dir = out / "reports/eval"
    judge_items, risk_items = _items(eval_dir / "judge_items.jsonl"), _items(eval_dir / "risk_items.jsonl")
    items = judge_items + risk_items
    assert judge_items and risk_items
    # Every item was asked over HTTP (nothing from a cache: a fresh run folder), of the served model.
    assert all(i["model"] == served.model and not i["cached"] and i["attempts"] >= 1 for i in items)
    assert posts >= sum(i["attempts"] for i in items) > 0
    # The server's own replies are the evidence: generated text and token counts, not a stub's fixed string.
    assert all(i["raw"] for i in items)
    assert all((i["usage"] or {}).get("completion_tokens", 0) > 0 for i in items)
    assert len({i["raw"] for i in items}) > 1
    assert all(i["usage"]["completion_tokens"] <= JUDGE_MAX_TOKENS * i["attempts"] for i in items)
    judge = json.loads((eval_dir / "judge_results.json").read_text())
    assert judge["model"] == served.model and judge["endpoint"]["base_url"] == served.url
    assert judge["endpoint"]["max_tokens"] == JUDGE_MAX_TOKENS
    assert json.loads((eval_dir / "risk_results.json").read_text())["llm"]["model"] == served.model
    latencies = sorted(i["latency_s"] / i["attempts"] for i in items)
    tokens = sorted(i["usage"]["completion_tokens"] / i["attempts"] for i in items)
    print(f"\n{len(items)} judge items, {posts} HTTP requests to transformers serve, run {elapsed:.1f}s; "
          f"per request: median {latencies[len(latencies) // 2]:.2f}s (max {latencies[-1]:.2f}s), "
          f"median {tokens[len(tokens) // 2]:.0f} completion tokens (max {tokens[-1]:.0f})")


def test_garbage_from_the_served_model_is_not_a_usable_judge(served_run) -> None:
    out, outcome, _, _ = served_run
    eval_dir = out / "reports/eval"
    items = _items(eval_dir / "judge_items.jsonl") + _items(eval_dir / "risk_items.jsonl")
    # A random tiny model writes no acceptable verdict JSON: every item is a recorded parse failure.
    assert all(not i["ok"] and i["parsed"] is None and i["parse_status"] != "ok" and i["error"] for i in items)
    judge = json.loads((eval_dir / "judge_results.json").read_text())
    assert judge["single"] and all(row["scored"] == 0 for row in judge["single"].values())
    assert sum(judge["stats"]["failures"].values()) == judge["stats"]["requests"] > 0
    risk = json.loads((eval_dir / "risk_results.json").read_text())
    assert risk["llm"]["parse_failures"] == risk["llm"]["requests"] > 0 and risk["llm"]["findings"] == []
    # Neither judge counts as evidence, in the stage outcome or the thesis readiness check.
    for stage in ("llm_judge", "risk_judge"):
        assert outcome.results[stage].status != "done", (stage, outcome.results[stage])
    conditions = _readiness_conditions(out)
    assert not conditions["llm_judge"]["met"]
    # Evaluation itself is unaffected.
    assert json.loads((eval_dir / "eval_results.json").read_text())["variants"]


def _readiness_conditions(out: Path) -> dict[str, dict]:
    readiness = json.loads((out / "reports/thesis_support/thesis_readiness.json").read_text())
    assert readiness["ready_for_writing"] is False
    return {c["name"]: c for c in readiness["conditions"]}


def test_readiness_does_not_count_a_risk_judge_without_verdicts(served_run) -> None:
    out, outcome, _, _ = served_run
    assert outcome.results["risk_judge"].status != "done"
    assert not _readiness_conditions(out)["risk_judge"]["met"]


def test_the_api_key_reaches_no_file_of_the_run(served_run) -> None:
    out, _, _, _ = served_run
    leaks = [str(p) for p in out.rglob("*") if p.is_file() and API_KEY.encode() in p.read_bytes()]
    assert leaks == []


def test_uncapped_and_capped_request_timing(served: ServedModel) -> None:
    """Without max_tokens the server generates up to 1024 new tokens or EOS: why the judges always send it."""
    body = {"model": served.model, "temperature": 0,
            "messages": [{"role": "user", "content": "Score the answer. Reply with JSON only."}]}
    timings = {}
    for label, extra in (("uncapped", {}), ("max_tokens=16", {"max_tokens": 16})):
        start = time.monotonic()
        reply = _post_json(f"{served.url}/chat/completions", {**body, **extra})
        timings[label] = (time.monotonic() - start, reply["usage"]["completion_tokens"],
                          reply["choices"][0]["finish_reason"])
    assert timings["max_tokens=16"][1] <= 16
    assert timings["uncapped"][1] <= 1024
    # A model the server is not pinned to is refused, not silently swapped.
    with pytest.raises(urllib.error.HTTPError) as refused:
        _post_json(f"{served.url}/chat/completions", {**body, "model": "some-other-model", "max_tokens": 1})
    assert refused.value.code == 400
    print("\n" + "; ".join(f"{k}: {t:.2f}s, {n} tokens, finish={f}" for k, (t, n, f) in timings.items()))
