"""OOM recovery and the loss guard, on the tiny model, through the real runner and TRL trainer.

Faults are injected the way they happen on a GPU: a forward hook raises
``torch.OutOfMemoryError`` (or makes the logits NaN) at a chosen training step.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medllm_core.kernel.plugin_manager import load_plugins
from medllm_core.kernel.profile import load_profile
from medllm_core.kernel.runner import execute, new_run_info
from medllm_core.library.training import trl_common
from medllm_core.library.training.recovery import Attempt, next_after_loss_guard, next_after_oom
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _profile(tmp_path: Path, **overrides):
    registry = load_plugins(environ={})
    # SFT settings pinned here (not cpu_tiny's): the scenarios below count steps and halve a micro-batch of 4.
    cli = {"output_root": str(tmp_path), "stages.dpo.enabled": False, "stages.simpo.enabled": False,
           "stages.kto.enabled": False, "stages.sft.max_steps": 12, "stages.sft.save_steps": 4,
           "stages.sft.micro_batch_size": 4, "stages.sft.learning_rate": 1e-2, "stages.sft.max_length": 256,
           **overrides}
    profile = load_profile(REPO / "profiles/cpu_tiny.toml", environ={}, cli_overrides=cli,
                           stages=registry.catalogue())
    return profile, registry


def _inject(monkeypatch, make_fault):
    """Attach ``make_fault(call_number, hidden)`` as a forward hook on the final norm of every model
    the trainers load (the last module whose output every loss path, fused or not, consumes)."""
    calls = {"n": 0}
    original = trl_common.load_model

    def load_with_fault(*args, **kwargs):
        model = original(*args, **kwargs)

        def hook(module, inputs, output):
            if module.training:
                calls["n"] += 1
                return make_fault(calls["n"], output)
            return None

        model.model.norm.register_forward_hook(hook)
        return model

    monkeypatch.setattr(trl_common, "load_model", load_with_fault)
    return calls


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_oom_mid_stage_halves_micro_batch_keeps_effective_batch_and_continues(tmp_path, monkeypatch):
    profile, registry = _profile(tmp_path)
    fired = {"done": False}

    def oom_once_at_step_7(call, output):
        if call == 7 and not fired["done"]:
            fired["done"] = True
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected by test)")
        return None

    _inject(monkeypatch, oom_once_at_step_7)
    outcome = execute(profile, registry, run=new_run_info(profile))
    assert fired["done"]
    assert outcome.exit_code == 0, outcome.message
    metrics = json.loads(Path(outcome.results["sft"].metrics_path).read_text())
    assert metrics["steps"] == 12
    first, final = metrics["attempts"][0], metrics["final_settings"]
    assert (first["micro_batch_size"], first["gradient_accumulation_steps"]) == (4, 1)
    assert (final["micro_batch_size"], final["gradient_accumulation_steps"]) == (2, 2)
    assert final["effective_batch_size"] == first["effective_batch_size"] == 4
    retry = [d for d in metrics["decisions"] if d["kind"] == "oom_retry"]
    assert len(retry) == 1
    assert retry[0]["facts"]["failed_at_step"] == 6
    assert retry[0]["facts"]["continue_from"] == "checkpoint-4"
    assert retry[0]["facts"]["new_settings"]["micro_batch_size"] == 2
    assert "memory" in retry[0]["facts"] and "injected" in retry[0]["facts"]["error"]
    curve = json.loads(Path(metrics["loss_curve_file"]).read_text())["points"]
    assert [p["step"] for p in curve] == list(range(1, 13))  # continuous: no duplicated or missing steps
    events = _events(outcome.run_dir)
    assert any(e["type"] == "decision" and e["kind"] == "oom_retry" for e in events)


def test_oom_that_never_ends_fails_with_a_clear_message(tmp_path, monkeypatch):
    profile, registry = _profile(tmp_path, **{"stages.sft.oom_max_retries": 5})

    def always_oom(call, output):
        raise torch.OutOfMemoryError("CUDA out of memory (injected by test)")

    _inject(monkeypatch, always_oom)
    outcome = execute(profile, registry, run=new_run_info(profile))
    assert outcome.exit_code == 4
    result = outcome.results["sft"]
    assert result.status == "failed" and "no smaller setting left" in result.reason
    metrics = json.loads(Path(result.metrics_path).read_text())
    kinds = [d["kind"] for d in metrics["decisions"] if d["kind"].startswith("oom_")]
    # 4 → 2 → 1, then activation checkpointing, then give up (max length may not shrink by default)
    assert kinds == ["oom_retry", "oom_retry", "oom_retry", "oom_give_up"]
    assert metrics["attempts"][-1]["gradient_checkpointing"] is True
    check = json.loads((tmp_path / "reports/migration/gpu_completion_check.json").read_text())
    assert check["strict_pass"] is False


def test_nan_loss_trips_the_guard_and_is_recorded(tmp_path, monkeypatch):
    profile, registry = _profile(tmp_path)

    def nan_from_step_3(call, output):
        if call >= 3:
            return output * float("nan")
        return None

    _inject(monkeypatch, nan_from_step_3)
    outcome = execute(profile, registry, run=new_run_info(profile))
    assert outcome.exit_code == 4
    result = outcome.results["sft"]
    assert result.status == "failed" and "loss guard" in result.reason
    metrics = json.loads(Path(result.metrics_path).read_text())
    guard = [d for d in metrics["decisions"] if d["kind"] == "loss_guard"]
    assert guard and guard[0]["facts"]["step"] == 3
    assert "nan" in guard[0]["summary"].lower()
    assert guard[0]["summary"].endswith("stage stopped")  # fp32 on CPU: nothing to fall back to
    events = _events(outcome.run_dir)
    assert any(e["type"] == "decision" and e["kind"] == "loss_guard" for e in events)
    check = json.loads((tmp_path / "reports/migration/gpu_completion_check.json").read_text())
    assert check["strict_pass"] is False


def test_nan_with_lower_lr_fallback_retries_and_recovers(tmp_path, monkeypatch):
    profile, registry = _profile(tmp_path, **{"stages.sft.loss_guard_fallback": "lower_lr"})
    first_attempt_calls = {"n": 0}

    def nan_once(call, output):
        if call == 3:
            first_attempt_calls["n"] += 1
            return output * float("nan")
        return None

    _inject(monkeypatch, nan_once)
    outcome = execute(profile, registry, run=new_run_info(profile))
    assert outcome.exit_code == 0, outcome.message
    metrics = json.loads(Path(outcome.results["sft"].metrics_path).read_text())
    assert metrics["final_settings"]["learning_rate"] == pytest.approx(1e-3)
    # speed_*, long_rows (the data's own facts) and quantization (the base model's setup) are not recovery decisions
    recovery = [d["kind"] for d in metrics["decisions"]
                if d["kind"] not in ("long_rows", "quantization") and not d["kind"].startswith("speed_")]
    assert recovery == ["loss_guard"]


def _attempt(**kw) -> Attempt:
    base = dict(number=1, micro_batch_size=8, gradient_accumulation_steps=2, gradient_checkpointing=False,
                max_length=2048, dtype="fp16", learning_rate=1e-4)
    return Attempt(**{**base, **kw})


def test_oom_ladder_keeps_effective_batch_then_checkpointing_then_length():
    attempt, seen = _attempt(), []
    while (step := next_after_oom(attempt, min_micro_batch=1, allow_shorter_max_length=True)) is not None:
        attempt = step[0]
        seen.append((attempt.micro_batch_size, attempt.gradient_accumulation_steps,
                     attempt.gradient_checkpointing, attempt.max_length))
    assert seen == [(4, 4, False, 2048), (2, 8, False, 2048), (1, 16, False, 2048), (1, 16, True, 2048),
                    (1, 16, True, 1024), (1, 16, True, 512), (1, 16, True, 256)]
    assert next_after_oom(_attempt(micro_batch_size=2), min_micro_batch=2,
                          allow_shorter_max_length=False)[0].gradient_checkpointing is True  # KTO floor


def test_loss_guard_policy_fp16_goes_to_fp32_first():
    new, why = next_after_loss_guard(_attempt(), "fp32", tries_left=1)
    assert new.dtype == "fp32" and "fp32" in why
    assert next_after_loss_guard(_attempt(dtype="fp32"), "fp32", tries_left=1) is None
    assert next_after_loss_guard(_attempt(), "fp32", tries_left=0) is None
    new, _ = next_after_loss_guard(_attempt(dtype="bf16"), "lower_lr", tries_left=1)
    assert new.learning_rate == pytest.approx(1e-5)


def test_stop_request_stops_at_a_step_with_a_checkpoint_and_resume_finishes(tmp_path, monkeypatch):
    from medllm_core.kernel.context import STOP_FILE
    from medllm_core.kernel.resume import prepare_resume

    profile, registry = _profile(tmp_path, **{"stages.sft.save_steps": 100})
    run = new_run_info(profile)

    def request_stop_at_step_5(call, output):
        if call == 5:
            (run.run_dir / STOP_FILE).touch()  # what the TUI's stop action does
        return None

    _inject(monkeypatch, request_stop_at_step_5)
    stopped = execute(profile, registry, run=run)
    assert stopped.exit_code == 130, stopped.message
    sft = stopped.results["sft"]
    # Issue 15 item 1: a stop on request is "stopped", never "failed", in every record of it.
    assert sft.status == "stopped" and "stopped on request at step 5" in sft.reason
    state = json.loads((run.run_dir / "run_state.json").read_text())
    assert state["results"]["sft"]["status"] == "stopped"
    finished_sft = [json.loads(line) for line in run.events_path.read_text().splitlines()
                    if '"stage_finished"' in line and '"sft"' in line]
    assert finished_sft[-1]["status"] == "stopped", finished_sft[-1]
    stopped_metrics = json.loads(Path(sft.metrics_path).read_text())
    assert stopped_metrics["stopped"] is True and stopped_metrics["failed"] is False, stopped_metrics
    assert stopped_metrics["steps"] == 5
    summary = (tmp_path / "reports/migration/day1_run_summary.md").read_text()
    assert "| stopped |" in summary and "| failed |" not in summary
    assert stopped.results["completion_check"].reason == "run stopped on request (STOP file)"
    output_dir = tmp_path / "checkpoints/layer_b/tiny_qwen2_sft"
    assert (output_dir / "checkpoint-5").is_dir()  # saved at the stop although save_steps is 100
    assert not (output_dir / "final").exists()

    monkeypatch.undo()
    resumed = execute(profile, registry, resume=prepare_resume(profile, run.run_dir))
    assert resumed.exit_code == 0, resumed.message
    metrics = json.loads(Path(resumed.results["sft"].metrics_path).read_text())
    assert metrics["steps"] == 12
    assert any(d["kind"] == "resume" and "checkpoint-5" in d["summary"] for d in metrics["decisions"])
    curve = json.loads(Path(metrics["loss_curve_file"]).read_text())["points"]
    assert [p["step"] for p in curve] == list(range(1, 13))
