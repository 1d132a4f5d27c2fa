"""Judges through the real pipeline and a real OpenAI-compatible HTTP server on 127.0.0.1.

The run trains a tiny SFT and DPO model, evaluates base/SFT/DPO, and judges the
answers over HTTP. The server answers well, or misbehaves on purpose (429,
500, timeouts, garbage); either way the run completes, failures are counted,
and the API key never reaches a file the run writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medllm_core.kernel.plugin_manager import load_plugins
from medllm_core.kernel.profile import load_profile
from medllm_core.kernel.runner import environment_secrets, execute, new_run_info
from tests.conftest import REPO
from tests.judge_server import JudgeServer

pytestmark = pytest.mark.slow

API_KEY = "sk-test-medllm-SECRET-4f9a2c"


def _run(tmp_path: Path, monkeypatch, server: JudgeServer | None, *, key: str | None = API_KEY, **extra):
    if key:
        monkeypatch.setenv("OPENAI_API_KEY", key)
    else:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    registry = load_plugins(environ={})
    cli = {
        "output_root": str(tmp_path),
        "stages.simpo.enabled": False, "stages.kto.enabled": False,
        "stages.sft.max_steps": 6, "stages.sft.save_steps": 6, "stages.dpo.max_steps": 3, "stages.dpo.save_steps": 3,
        "stages.eval.max_items": 4, "stages.eval.max_new_tokens_open": 12,
        "judges.llm_judge": True, "judges.risk_judge": True, "judges.v2_llm_fallback": True,
        "judges.base_url": server.url if server else "", "judges.model": "judge-test-model",
        "judges.timeout_s": 0.5, "judges.max_retries": 2, "judges.backoff_base_s": 0.01,
        **extra,
    }
    profile = load_profile(REPO / "profiles/cpu_tiny.toml", environ={}, cli_overrides=cli,
                           stages=registry.catalogue())
    return execute(profile, registry, run=new_run_info(profile), secrets=environment_secrets())


def _scan_for_key(root: Path) -> list[str]:
    leaks = []
    for path in root.rglob("*"):
        if path.is_file() and API_KEY.encode() in path.read_bytes():
            leaks.append(str(path))
    return leaks


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    out = tmp_path_factory.mktemp("judged")
    with JudgeServer(default="judge") as server:
        outcome = _run(out, monkeypatch, server)
        requests = server.count
    monkeypatch.undo()
    return out, outcome, requests


def test_judge_tables_fill_with_a_well_behaved_judge(good_run):
    out, outcome, requests = good_run
    assert outcome.exit_code == 0, outcome.message
    judge = json.loads((out / "reports/eval/judge_results.json").read_text())
    assert judge["status"] == "done" and judge["model"] == "judge-test-model"
    assert set(judge["single"]) == {"base", "sft", "dpo"}
    assert judge["single"]["sft"]["scored"] == 4 and judge["single"]["sft"]["mean"]["overall"] == 7
    # the stub judge always prefers answer A: the two orders disagree, so every pair is a tie
    assert judge["pairwise_vs_baseline"]["dpo"] == {"wins": 0, "ties": 4, "losses": 0, "n": 4, "failed": 0}
    items = [json.loads(x) for x in (out / "reports/eval/judge_items.jsonl").read_text().splitlines()]
    assert all(i["model"] == "judge-test-model" and i["prompt_version"] and i["raw"] for i in items)
    assert {i["parse_status"] for i in items} == {"ok"}
    risk = json.loads((out / "reports/eval/risk_results.json").read_text())
    assert risk["llm"]["status"] == "done" and risk["prescreen"]["label"].startswith("Rule-based")
    report = (out / "reports/eval_default.md").read_text()
    assert "## LLM judge" in report and "judge-test-model" in report and "| dpo | 4 | 0 |" in report
    assert "LLM medical-risk judge" in report and "Rule-based pre-screen" in report
    readiness = json.loads((out / "reports/thesis_support/thesis_readiness.json").read_text())
    conditions = {c["name"]: c for c in readiness["conditions"]}
    assert conditions["llm_judge"]["met"] and conditions["risk_judge"]["met"]
    assert requests > 0


def test_no_file_and_no_event_carries_the_api_key(good_run):
    out, _, _ = good_run
    assert _scan_for_key(out) == []


def test_rerun_hits_the_response_cache(good_run, monkeypatch, tmp_path):
    out, _, _ = good_run
    cache = out / ".medllm_cache/judge_cache"
    assert any(cache.rglob("*.json"))
    assert API_KEY not in "".join(p.read_text() for p in cache.rglob("*.json"))


def test_misbehaving_judge_is_survived_and_counted(tmp_path, monkeypatch):
    with JudgeServer(default="judge") as server:
        server.script("status:429", "status:500", "status:500", "status:500", "garbage", "garbage", "garbage",
                      "delay:2", "delay:2", "delay:2", "status:503")
        # fallback off: the scripted failures then land on the LLM judge stage
        # One request at a time, so the script is deterministic: the first item sees 429, 500, 500 and runs
        # out of retries (http_error); later items recover from 500s, garbage and timeouts.
        outcome = _run(tmp_path, monkeypatch, server, **{"judges.v2_llm_fallback": False,
                                                         "judges.max_concurrency": 1})
        total_requests = server.count
    assert outcome.exit_code == 0, outcome.message
    judge = json.loads((tmp_path / "reports/eval/judge_results.json").read_text())
    stats = judge["stats"]
    assert stats["retries"] > 0
    failures = stats["failures"]
    assert failures["http_error"] >= 1  # the first item exhausted its retries and is counted, not hidden
    assert sum(failures.values()) >= 2  # garbage / timeouts beyond the budget are counted too
    risk = json.loads((tmp_path / "reports/eval/risk_results.json").read_text())
    logical = stats["requests"] + risk["llm"]["stats"]["requests"]
    # bounded: no item used more than 1 + max_retries + max_parse_retries HTTP attempts
    assert total_requests <= logical * (1 + 2 + 2)
    report = (tmp_path / "reports/eval_default.md").read_text()
    assert "parse failures" in report
    assert _scan_for_key(tmp_path) == []


def test_without_a_key_judges_are_skipped_with_evidence_and_readiness_says_so(tmp_path, monkeypatch):
    outcome = _run(tmp_path, monkeypatch, None, key=None)
    assert outcome.exit_code == 0, outcome.message
    assert outcome.results["llm_judge"].status == "skipped"
    assert "OPENAI_API_KEY not set" in outcome.results["llm_judge"].reason
    readiness = json.loads((tmp_path / "reports/thesis_support/thesis_readiness.json").read_text())
    assert readiness["ready_for_writing"] is False
    assert any(u.startswith("llm_judge: enabled but did not run: OPENAI_API_KEY not set") for u in readiness["unmet"])
    eval_results = json.loads((tmp_path / "reports/eval/eval_results.json").read_text())
    assert eval_results["variants"]  # evaluation itself still ran


def test_required_judge_without_a_key_fails_the_run(tmp_path, monkeypatch):
    outcome = _run(tmp_path, monkeypatch, None, key=None, **{"judges.required": True})
    assert outcome.exit_code == 4
    assert outcome.results["llm_judge"].status == "failed"


def test_reliability_and_risk_statistics_are_stored_and_reported(good_run):
    out, outcome, _ = good_run
    judge = json.loads((out / "reports/eval/judge_results.json").read_text())
    reliability = judge["reliability"]
    # the stub judge always prefers answer A, so the two orders never agree: consistency 0 of 4
    dpo = reliability["pairwise"]["dpo"]
    assert (dpo["n"], dpo["consistent"], dpo["consistency_rate"]) == (4, 0, 0.0)
    assert reliability["baseline"] == "sft"
    assert reliability["rubric"]["per_variant"]["sft"]["overall"]["mean"] == 7
    risk = json.loads((out / "reports/eval/risk_results.json").read_text())
    assert risk["llm"]["statistics"]["baseline"] == "sft" and risk["prescreen"]["statistics"]["per_variant"]
    report = (out / "reports/eval_default.md").read_text()
    assert "swap" in report.lower()


def test_two_judge_models_write_every_new_table_and_leak_no_key(tmp_path, monkeypatch):
    labels = tmp_path / "human_labels.csv"
    # The stub judge's two orders always disagree, so every agreed pairwise verdict is a tie.
    labels.write_text("id,variant,verdict\nopen-001,dpo,tie\nopen-002,dpo,tie\nopen-003,dpo,variant\n",
                      encoding="utf-8")
    with JudgeServer(default="judge") as server:
        outcome = _run(tmp_path, monkeypatch, server, **{"judges.models": ["judge-a", "judge-b"],
                                                         "stages.llm_judge.human_labels": str(labels)})
        seen = {r.body.get("model") for r in server.requests}
    assert outcome.exit_code == 0, outcome.message
    judge = json.loads((tmp_path / "reports/eval/judge_results.json").read_text())
    assert judge["status"] == "done" and judge["judge_models"] == ["judge-a", "judge-b"]
    panel = judge["reliability"]["judges"]
    assert panel["models"] == ["judge-a", "judge-b"] and panel["pairwise"]["n"] == 8  # 4 items × 2 orders
    assert set(panel["rubric"]) == set(judge["criteria"])
    items = [json.loads(x) for x in (tmp_path / "reports/eval/judge_items.jsonl").read_text().splitlines()]
    assert {i["model"] for i in items} == {"judge-a", "judge-b"}
    assert {"judge-a", "judge-b"} <= seen
    report = (tmp_path / "reports/eval_default.md").read_text()
    human = judge["reliability"]["human"]["verdict"]
    assert (human["labelled"], human["n"]) == (3, 3) and human["agreement"] == pytest.approx(2 / 3)
    for heading in ("LLM judge: reliability", "position-swap consistency", "Rubric scores with 95% bootstrap",
                    "Agreement between judge models (judge-a, judge-b)", "Judge against human labels"):
        assert heading in report, heading
    assert _scan_for_key(tmp_path) == []


def test_a_bad_human_labels_file_stops_the_run_before_training(tmp_path, monkeypatch):
    labels = tmp_path / "labels.csv"
    labels.write_text("id,verdict\nopen-001,tie\n,variant\n", encoding="utf-8")
    outcome = _run(tmp_path, monkeypatch, None, **{"stages.llm_judge.human_labels": str(labels)})
    assert outcome.exit_code == 2, outcome.message
    assert "labels.csv" in outcome.message and "id" in outcome.message, outcome.message
    assert not (tmp_path / "checkpoints").exists()
