"""Typed records: events.jsonl (schema, forward/backward compatibility), run_state.json, training metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medllm_core.kernel import events as ev

FIXTURE = Path(__file__).parent / "fixtures" / "events" / "cpu_tiny_sft_only.jsonl"


def test_every_event_of_an_old_file_parses_and_keeps_its_field_names() -> None:
    raw = ev.read_events(FIXTURE)
    records = [ev.parse_event(e) for e in raw]
    assert all(r is not None for r in records)
    started = records[0]
    assert isinstance(started, ev.RunStarted) and started.schema == ev.LEGACY_SCHEMA
    for event, record in zip(raw, records, strict=True):
        written = record.to_dict()
        assert written["type"] == event["type"]
        assert set(event) <= set(written) | {"schema"}
        assert all(written[k] == v for k, v in event.items() if k != "stages")


def test_unknown_types_and_fields_are_tolerated() -> None:
    assert ev.parse_event({"type": "from_the_future", "x": 1}) is None
    assert ev.parse_event(["not", "an", "event"]) is None
    record = ev.parse_event({"type": "loss", "stage": "sft", "step": 3, "loss": 1.5, "new_field": 7})
    assert isinstance(record, ev.Loss) and record.step == 3 and record.extra == {"new_field": 7}
    assert record.to_dict()["new_field"] == 7


def test_writer_stamps_schema_on_run_started_and_validates_emit(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with ev.EventLog(path, secrets=["s3cret-token"]) as log:
        log.write(ev.RunStarted(run_id="r1", profile="p"))
        log.emit(ev.LOG, "sft", level="info", message="token s3cret-token")
        log.write(ev.StageFinished(stage="sft", status="trained", duration_s=1.0))
        with pytest.raises(TypeError):
            log.emit(ev.LOSS, "sft", step=1, los=2.0)
        with pytest.raises(ValueError):
            log.emit("no_such_type")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["schema"] == ev.EVENTS_SCHEMA and list(lines[0])[:3] == ["ts", "type", "pid"]
    assert "schema" not in lines[1] and lines[1]["message"] == "token ***"
    assert "reused" not in lines[2]
    records = ev.read_records(path)
    assert [type(r) for r in records] == [ev.RunStarted, ev.Log, ev.StageFinished]


def test_run_state_round_trips_and_carries_unreached_stages(tmp_path: Path) -> None:
    from medllm_core.kernel.context import Decision
    from medllm_core.kernel.run_state import RUN_STATE_SCHEMA, RunState
    from medllm_core.kernel.stages import StageResult

    old = RunState(run_id="r", attempt=1, results={"a": StageResult.trained(metrics_path="m.json"),
                                                   "b": StageResult.done()},
                   fingerprints={"a": "fa", "b": "fb"}, running={"c": "fc"},
                   decisions=[Decision("precision", "fp32", {}, "a"), Decision("x", "y", {}, "b")])
    path = old.save(tmp_path / "run_state.json")
    data = json.loads(path.read_text())
    assert list(data) == ["run_id", "attempt", "results", "fingerprints", "artifacts", "inputs", "running",
                          "decisions", "schema"] and data["schema"] == RUN_STATE_SCHEMA
    loaded = RunState.load(path)
    assert loaded.to_dict() == data
    current = RunState(run_id="r", attempt=2, results={"b": StageResult.done()}, fingerprints={"b": "fb2"})
    merged = loaded.carry_into(current)
    assert list(merged.results) == ["a", "b"] and merged.fingerprints == {"a": "fa", "b": "fb2"}
    assert merged.running == {"c": "fc"} and [d.stage for d in merged.decisions] == ["a"]
    assert RunState.from_dict({"results": {}}).attempt == 1 and RunState.from_dict({}).schema == 1
    with pytest.raises(ValueError):
        RunState.from_dict([])


def test_training_metrics_keep_the_contract_keys(tmp_path: Path) -> None:
    from medllm_core.library.training.metrics import TrainingMetrics

    skipped = TrainingMetrics(outcome="skipped", stage="sft", method="sft", skipped=True, reason="gate closed",
                              extra={"reference_model": "base"})
    data = skipped.to_dict()
    assert list(data) == ["stage", "method", "model", "model_slug", "device", "precision", "precision_reason",
                          "settings", "lora", "seed", "checkpoint", "reference_model", "skipped", "reason", "steps",
                          "final_loss", "loss_curve_file", "decisions"]
    trained = TrainingMetrics(stage="dpo", method="dpo", steps=4, final_loss=0.5, peak_memory={"peak_rss_gb": 1.0},
                              reward_accuracy=0.75, rewards_first_step={}, rewards_last_step={},
                              extra={"reference_model": "SFT model", "starts_from": "sft"})
    path = trained.write(tmp_path / "dpo_metrics.json")
    written = json.loads(path.read_text())
    assert written["reward_accuracy"] == 0.75 and written["starts_from"] == "sft" and "failed" in written
    back = TrainingMetrics.from_file(path)
    assert back.to_dict() == written and back.reference_model == "SFT model"
    assert back.peak_memory_gb == 1.0 and back.peak_memory_kind == "process RSS"
    assert "reward_margin" not in TrainingMetrics(steps=1).to_dict()
    assert TrainingMetrics.from_dict({"failed": True, "steps": 3}).outcome == "failed"


def test_report_paths_spell_the_readme_contract(tmp_path: Path) -> None:
    from medllm_core.kernel.context import RunInfo
    from medllm_core.library.report_paths import ReportPaths, sft_prefix

    run = RunInfo(run_id="r", output_dir=tmp_path, run_dir=tmp_path / "reports" / "runs" / "r")
    paths = ReportPaths.of(run)

    def rel(path: Path) -> str:
        return path.relative_to(tmp_path).as_posix()

    assert rel(paths.day1_summary) == "reports/migration/day1_run_summary.md"
    assert rel(paths.preflight) == "reports/migration/preflight.json"
    assert rel(paths.completion_check_md) == "reports/migration/gpu_completion_check.md"
    assert rel(paths.training_file(sft_prefix("tiny_qwen2"), "_metrics.json")) == \
        "reports/training/layer_b_tiny_qwen2_sft_metrics.json"
    assert rel(paths.training_file("dpo", "_loss_curve.png")) == "reports/training/dpo_loss_curve.png"
    assert rel(paths.method_comparison_json) == "reports/training/method_comparison.json"
    assert rel(paths.sft_checkpoints("qwen25_7b")) == "checkpoints/layer_b/qwen25_7b_sft"
    assert rel(paths.method_checkpoints("kto")) == "checkpoints/kto-real-baseline"
    assert rel(paths.mcq_predictions("base")) == "reports/eval/predictions/base_mcq.jsonl"
    assert rel(paths.responses("safety")) == "reports/eval/safety_responses.json"
    assert rel(paths.judge_items) == "reports/eval/judge_items.jsonl"
    assert rel(paths.accuracy_plot) == "reports/eval/accuracy_ci.png"
    assert rel(paths.eval_default_md) == "reports/eval_default.md"
    assert rel(paths.experiment_record) == "reports/thesis_support/experiment_record.json"
    assert rel(paths.thesis_readiness_md) == "reports/thesis_support/thesis_readiness.md"
