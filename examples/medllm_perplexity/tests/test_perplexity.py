"""The perplexity stage scores the base model and the SFT adapter and adds the metric to the reports."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from medllm_core.testing import PipelineRun, run_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    # SFT trains a few steps first (perplexity requires it), then the evaluation phase runs.
    return run_pipeline(tmp_path_factory.mktemp("ppl"), only=["perplexity"],
                        overrides={"stages.perplexity.max_rows": 8})


def test_scores_base_and_sft(eval_run: PipelineRun) -> None:
    assert eval_run.exit_code == 0, eval_run.message
    assert eval_run.finished_order() == ["preflight", "sft", "perplexity"]
    report = eval_run.metrics("perplexity")
    assert [m["model"] for m in report["models"]] == ["base", "sft"]
    assert report["heldout"]["rows"] == 8 and report["heldout"]["bundled"] is True
    for row in report["models"]:
        assert math.isfinite(row["perplexity"]) and row["perplexity"] > 1 and row["tokens"] > 100
    # SFT changed the model, so its score on the same answers differs from the base model's.
    base, sft = report["models"]
    assert base["perplexity"] != sft["perplexity"]


def test_metric_reaches_the_reports(eval_run: PipelineRun) -> None:
    summary = eval_run.stage_result("perplexity").summary
    assert set(summary) == {"ppl_base", "ppl_sft"}
    day1 = eval_run.artifact("reports/migration/day1_run_summary.md").read_text(encoding="utf-8")
    assert f"ppl_sft={summary['ppl_sft']}" in day1
    markdown = eval_run.artifact("reports/evaluation/perplexity.md").read_text(encoding="utf-8")
    assert "| sft |" in markdown and "| base |" in markdown
    checks = eval_run.events("check", stage="perplexity")
    assert checks and checks[0]["name"] == "perplexity_finite" and checks[0]["passed"] is True


def test_bad_heldout_file_is_rejected_before_training(medllm_run, tmp_path: Path) -> None:
    bad = tmp_path / "heldout.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n', encoding="utf-8")
    run = medllm_run(only=["perplexity"], overrides={"stages.perplexity.heldout_path": str(bad)})
    assert run.exit_code == 2
    assert f"{bad}:1" in run.message and "assistant turn" in run.message
    assert run.results == {}  # check_inputs runs before any stage, so SFT never started


def test_settings_are_validated_with_their_key(medllm_run) -> None:
    from medllm_core.api import ConfigError

    with pytest.raises(ConfigError, match=r"stages\.perplexity\.max_rows.*must be > 0"):
        medllm_run(only=["perplexity"], overrides={"stages.perplexity.max_rows": 0})
