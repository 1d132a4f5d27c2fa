"""The ORPO stage trains the tiny model for real and leaves the evidence the built-in stages leave."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from medllm_core.testing import PipelineRun, run_pipeline

pytestmark = pytest.mark.slow

# Small but real: a few optimizer steps on CPU, with checkpoints along the way.
QUICK_ORPO = {
    "stages.orpo.max_steps": 4,
    "stages.orpo.save_steps": 2,
    "stages.orpo.learning_rate": 5e-3,
    "stages.orpo.micro_batch_size": 4,
    "stages.orpo.gradient_accumulation_steps": 1,
    "stages.orpo.max_length": 256,
    "stages.orpo.gradient_checkpointing": False,
    "stages.orpo.warmup_ratio": 0.0,
}


@pytest.fixture(scope="module")
def orpo_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    return run_pipeline(tmp_path_factory.mktemp("orpo"), only=["sft", "orpo", "completion_check"],
                        overrides=QUICK_ORPO)


def test_orpo_trains_after_sft(orpo_run: PipelineRun) -> None:
    assert orpo_run.exit_code == 0, orpo_run.message
    assert orpo_run.stage_result("orpo").status == "trained"
    assert orpo_run.finished_order() == ["preflight", "sft", "orpo", "completion_check"]
    losses = [e["loss"] for e in orpo_run.events("loss", stage="orpo")]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)


def test_metrics_and_checkpoint_where_the_builtin_stages_put_theirs(orpo_run: PipelineRun) -> None:
    metrics = orpo_run.read_json("reports/training/orpo_metrics.json")
    assert metrics["skipped"] is False and metrics["steps"] == 4
    assert metrics["method"] == "orpo" and metrics["starts_from"] == "sft"
    assert metrics["trainer"] == "trl.experimental.orpo.ORPOTrainer"
    assert metrics["sft_checkpoint"].endswith("checkpoints/layer_b/tiny_qwen2_sft/final")
    assert metrics["settings"]["beta"] == 0.1
    assert Path(metrics["loss_curve_png"]).is_file()
    final = orpo_run.artifact("checkpoints/orpo-real-baseline/final")
    assert (final / "adapter_model.safetensors").is_file() and (final / "tokenizer_config.json").is_file()
    assert orpo_run.stage_result("orpo").checkpoint_path == str(final)
    assert orpo_run.artifact("checkpoints/orpo-real-baseline/checkpoint-4").is_dir()


def test_completion_check_requires_orpo(orpo_run: PipelineRun) -> None:
    check = orpo_run.strict_check()
    assert check["required_stages"] == ["sft", "orpo"]
    passed = {c["name"] for c in check["criteria"] if c["stage"] == "orpo" and c["passed"]}
    assert {"not_skipped", "steps_positive", "loss_curve_healthy", "final_checkpoint_loads"} <= passed
    assert check["strict_pass"] is True


def test_skipped_orpo_fails_the_strict_check_and_says_why(medllm_run) -> None:
    run = medllm_run(only=["orpo", "completion_check"])  # no SFT: nothing to start from; trains nothing
    assert run.exit_code == 5
    result = run.stage_result("orpo")
    assert result.status == "skipped" and "needs the SFT model" in result.reason
    assert run.metrics("orpo")["skipped"] is True
    assert any(f.startswith("orpo: not_skipped") for f in run.strict_check()["failures"])


def test_not_required_when_the_profile_says_so(medllm_run) -> None:
    run = medllm_run(only=["orpo", "completion_check"], overrides={"stages.orpo.required": False,
                                                                   "stages.sft.enabled": False})
    # With ORPO not required (and SFT off) no training stage is required: the check says so.
    assert "orpo" not in run.strict_check()["required_stages"]
    assert run.strict_check()["failures"] == ["no required training stage is enabled in this run"]


# --- a training method joins the whole pipeline through the artifacts it declares ----------

QUICK_DPO = {key.replace("orpo", "dpo"): value for key, value in QUICK_ORPO.items() if "beta" not in key}
WHOLE = ["sft", "dpo", "orpo", "eval", "method_comparison", "completion_check", "thesis_reports", "readiness"]


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    return run_pipeline(tmp_path_factory.mktemp("orpo_whole"), only=WHOLE,
                        overrides={**QUICK_ORPO, **QUICK_DPO, "stages.eval.max_items": 3,
                                   "stages.eval.max_new_tokens_open": 8, "stages.eval.max_new_tokens_mcq": 8})


def test_orpo_is_an_eval_variant(whole_run: PipelineRun) -> None:
    assert whole_run.exit_code == 0, whole_run.message
    results = whole_run.read_json("reports/eval/eval_results.json")
    assert set(results["variants"]) == {"base", "sft", "dpo", "orpo"}
    assert results["baseline_variant"] == "sft"
    assert {c["variant"] for c in results["comparisons_vs_baseline"]} == {"dpo", "orpo"}
    assert whole_run.artifact("reports/eval/predictions/orpo_mcq.jsonl").is_file()


def test_orpo_is_in_the_method_comparison(whole_run: PipelineRun) -> None:
    comparison = whole_run.read_json("reports/training/method_comparison.json")
    assert [m["method"] for m in comparison["methods"]] == ["dpo", "orpo"]
    orpo = next(m for m in comparison["methods"] if m["method"] == "orpo")
    assert orpo["steps"] == 4 and orpo["status"] == "trained"
    assert "| orpo | trained | 4 |" in whole_run.artifact("reports/training/method_comparison.md").read_text()


def test_orpo_is_required_by_the_completion_check_and_in_the_reports(whole_run: PipelineRun) -> None:
    assert whole_run.strict_check()["required_stages"] == ["sft", "dpo", "orpo"]
    report = whole_run.artifact("reports/eval_default.md").read_text(encoding="utf-8")
    assert "| orpo |" in report
    record = whole_run.read_json("reports/thesis_support/experiment_record.json")
    assert "orpo" in json.dumps(record)
    draft = whole_run.artifact("reports/thesis_support/thesis_draft_material.md").read_text(encoding="utf-8")
    assert "orpo" in draft.lower()
