"""The stage graph decides what a resume reruns: exactly what depends on a changed artifact.

Real runs of the tiny CPU pipeline (every training method, evaluation, both judges over
a real OpenAI-compatible HTTP server on 127.0.0.1, comparison, check and reports),
then ``--resume`` with one method's settings changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medllm_core.kernel.events import read_events
from medllm_core.kernel.graph import plan_stages, training_methods
from medllm_core.kernel.plugin_manager import load_plugins
from medllm_core.kernel.profile import load_profile
from medllm_core.kernel.resume import prepare_resume
from medllm_core.kernel.runner import environment_secrets, execute, new_run_info
from tests.conftest import REPO
from tests.judge_server import JudgeServer

API_KEY = "sk-test-graph-0b7e51"
QUICK = {
    "stages.sft.max_steps": 6, "stages.sft.save_steps": 6,
    "stages.dpo.max_steps": 3, "stages.dpo.save_steps": 3,
    "stages.simpo.max_steps": 3, "stages.simpo.save_steps": 3,
    "stages.kto.max_steps": 3, "stages.kto.save_steps": 3,
    "stages.eval.max_items": 3, "stages.eval.max_new_tokens_open": 8, "stages.eval.max_new_tokens_mcq": 8,
    "judges.llm_judge": True, "judges.risk_judge": True, "judges.model": "judge-graph-model",
    "judges.timeout_s": 2.0, "judges.max_retries": 0, "judges.backoff_base_s": 0.01,
}


def _profile(out: Path, server: JudgeServer, **extra):
    registry = load_plugins(environ={})
    cli = {"output_root": str(out), "judges.base_url": server.url, **QUICK, **extra}
    profile = load_profile(REPO / "profiles/cpu_tiny.toml", environ={}, cli_overrides=cli,
                           stage_schemas=registry.settings_schemas())
    return profile, registry


def _execute(out: Path, server: JudgeServer, *, resume: bool = False, **extra):
    profile, registry = _profile(out, server, **extra)
    previous = prepare_resume(profile) if resume else None
    run = None if resume else new_run_info(profile)
    return execute(profile, registry, run=run, secrets=environment_secrets(), resume=previous)


def _last_attempt(run_dir: Path) -> list[dict]:
    events = read_events(run_dir / "events.jsonl")
    starts = [i for i, e in enumerate(events) if e["type"] == "run_started"]
    return events[starts[-1]:]


def _finished(events: list[dict]) -> dict[str, dict]:
    return {e["stage"]: e for e in events if e["type"] == "stage_finished"}


def test_plan_edges_come_from_the_artifacts():
    registry = load_plugins(environ={})
    profile = load_profile(REPO / "profiles/cpu_tiny.toml", environ={}, stage_schemas=registry.settings_schemas())
    plan = {p.spec.name: p for p in plan_stages(profile, registry)}
    assert plan["dpo"].upstream == ("sft",)
    assert set(plan["eval"].upstream) == {"sft", "dpo", "simpo", "kto"}
    assert plan["llm_judge"].upstream == ("eval",) and plan["risk_judge"].upstream == ("eval",)
    assert set(plan["method_comparison"].upstream) == {"sft", "dpo", "simpo", "kto"}
    assert {p.spec.name for p in training_methods(plan.values())} == {"dpo", "simpo", "kto"}


@pytest.fixture(scope="module")
def retrained_dpo(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    out = tmp_path_factory.mktemp("graph")
    with JudgeServer(default="judge") as server:
        first = _execute(out, server)
        first_requests = server.count
        first_eval = json.loads((out / "reports/eval/eval_results.json").read_text())
        second = _execute(out, server, resume=True, **{"stages.dpo.max_steps": 4})
        second_bodies = [r.body for r in server.requests[first_requests:]]
    monkeypatch.undo()
    return out, first, first_requests, first_eval, second, second_bodies


@pytest.mark.slow
def test_retraining_one_method_reruns_exactly_what_depends_on_it(retrained_dpo):
    out, first, _, _, second, _ = retrained_dpo
    assert first.exit_code == 0, first.message
    assert second.exit_code == 0, second.message
    finished = _finished(_last_attempt(second.run_dir))
    reused = {name for name, e in finished.items() if e.get("reused")}
    assert {"sft", "simpo", "kto"} <= reused  # the other methods and SFT are not retrained
    rerun = set(finished) - reused
    # DPO, everything that reads its adapter or its metrics, and the always-fresh checks and reports
    assert {"dpo", "eval", "llm_judge", "risk_judge", "method_comparison", "completion_check", "thesis_reports",
            "readiness"} <= rerun
    assert json.loads((out / "reports/training/dpo_metrics.json").read_text())["steps"] == 4
    comparison = json.loads((out / "reports/training/method_comparison.json").read_text())
    assert {m["method"]: m["steps"] for m in comparison["methods"]}["dpo"] == 4


@pytest.mark.slow
def test_only_the_retrained_variant_is_evaluated_again(retrained_dpo):
    out, _, _, first_eval, second, _ = retrained_dpo
    results = json.loads((out / "reports/eval/eval_results.json").read_text())
    assert first_eval["reused_variants"] == []
    assert results["reused_variants"] == ["base", "sft", "simpo", "kto"]
    assert set(results["variants"]) == {"base", "sft", "dpo", "simpo", "kto"}
    for name in ("base", "sft", "simpo", "kto"):  # identical numbers: the same answers, not new ones
        assert results["variants"][name] == first_eval["variants"][name]
    logs = [e["message"] for e in _last_attempt(second.run_dir) if e["type"] == "log" and e.get("stage") == "eval"]
    assert "evaluating dpo" in logs and not any(m == "evaluating simpo" for m in logs)


@pytest.mark.slow
def test_judges_ask_again_only_about_the_retrained_variant(retrained_dpo):
    _, _, first_requests, _, _, second_bodies = retrained_dpo
    assert first_requests > 0
    # Every other variant's answers are unchanged, so their verdicts come from the response cache.
    assert len(second_bodies) < first_requests
    judge = json.loads((retrained_dpo[0] / "reports/eval/judge_results.json").read_text())
    assert judge["status"] == "done" and set(judge["single"]) == {"base", "sft", "dpo", "simpo", "kto"}


@pytest.mark.slow
def test_a_failed_judge_is_retried_on_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    only_sft = {"stages.dpo.enabled": False, "stages.simpo.enabled": False, "stages.kto.enabled": False,
                "judges.risk_judge": False}
    with JudgeServer(default="garbage") as server:  # every reply unparseable: no usable verdict
        first = _execute(tmp_path, server, **only_sft)
        assert first.exit_code == 4, first.message
        assert first.results["llm_judge"].status == "failed"
        assert "no usable verdict" in first.results["llm_judge"].reason
        failed_requests = server.count
        server.default = "judge"  # the endpoint recovers
        second = _execute(tmp_path, server, resume=True, **only_sft)
        assert server.count > failed_requests  # asked again, not reused
    assert second.exit_code == 0, second.message
    finished = _finished(_last_attempt(second.run_dir))
    assert not finished["llm_judge"].get("reused") and finished["llm_judge"]["status"] == "done"
    assert finished["sft"].get("reused") and finished["eval"].get("reused")
