"""Issue 15 item 1: a STOP on a stage's last step finishes the stage like a clean run.

A stop arriving at the last step used to label the finished 12/12 stage "failed", and the
``--resume`` after it trained a 13th step (``checkpoint-13``, a loss curve past ``max_steps``).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medllm_core.kernel.events import EventReader
from tests.conftest import REPO, run_cli
from tests.test_resume import PROFILE, SLUG, all_events, attempts, cli_env, finished, only_run_dir, sft_only

MAX_STEPS = 12


def short_sft() -> list[str]:
    return [*sft_only(), "--set", f"stages.sft.max_steps={MAX_STEPS}", "--set", "stages.sft.save_steps=4"]


def stop_after_loss(out: Path, proc: subprocess.Popen, step: int, timeout: float = 300) -> None:
    """Write the STOP file once SFT logged ``step``; the callback sees it at the next step's end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for events_path in (out / "reports" / "runs").glob("*/events.jsonl"):
            if any(e["type"] == "loss" and e.get("stage") == "sft" and e["step"] >= step
                   for e in EventReader(events_path).poll()):
                (events_path.parent / "STOP").write_text("stop\n")
                return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before SFT reached step {step}")
        time.sleep(0.02)
    pytest.fail(f"SFT did not reach step {step} within {timeout}s")


@pytest.fixture(scope="module")
def stopped_on_last_step(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("stop_last")
    with open(out.parent / f"{out.name}.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "medllm_tui", "--run", PROFILE, "--output-root", str(out),
                                 *short_sft()], cwd=REPO, env=cli_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            stop_after_loss(out, proc, MAX_STEPS - 1)
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    first = all_events(only_run_dir(out))
    # Issue 15 item 2: the stop names the exact command; running it (overrides and all) continues the run.
    message = [e for e in first if e["type"] == "run_finished"][-1]["message"]
    assert "continue with: medllm-tui " in message, message
    command = shlex.split(message.split("continue with: ", 1)[1])
    assert command[-2:] == ["--resume", str(only_run_dir(out))], command
    stopped_summary = (out / "reports/migration/day1_run_summary.md").read_text()
    assert f"continue with: {shlex.join(command)}" in stopped_summary  # before the resume rewrites it
    result = run_cli(command[1:])
    return out, first, result, command


@pytest.mark.slow
def test_stop_on_the_last_step_finishes_the_stage(stopped_on_last_step):
    _, first, _, _ = stopped_on_last_step
    sft = finished(first, "sft")
    assert sft["status"] == "trained", sft
    assert sft["summary"]["steps"] == MAX_STEPS


@pytest.mark.slow
def test_resume_after_a_stop_on_the_last_step_never_exceeds_max_steps(stopped_on_last_step):
    out, _, result, _ = stopped_on_last_step
    assert result.returncode == 0, result.stdout + result.stderr
    for attempt in attempts(all_events(only_run_dir(out))):
        steps = [e["step"] for e in attempt if e["type"] in ("loss", "progress") and e.get("stage") == "sft"]
        assert all(step <= MAX_STEPS for step in steps), steps
    metrics = json.loads((out / f"reports/training/layer_b_{SLUG}_sft_metrics.json").read_text())
    assert metrics["steps"] == MAX_STEPS
    names = {p.name for p in (out / f"checkpoints/layer_b/{SLUG}_sft").iterdir()}
    assert f"checkpoint-{MAX_STEPS + 1}" not in names, names


def fake_checkpoint(output_dir: Path, step: int, max_steps: int) -> Path:
    path = output_dir / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"x")
    (path / "optimizer.pt").write_bytes(b"x")
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": max_steps}))
    return path


def test_a_checkpoint_taken_on_the_last_step_is_not_resumed_from(tmp_path):
    # A kill between the last step's checkpoint and the final save left checkpoint-12 of 12: the
    # Trainer would train step 13 from it, so the resume continues from checkpoint-8 instead.
    from medllm_core.library.training.checkpoints import resumable_checkpoint

    fake_checkpoint(tmp_path, 4, 12)
    eight = fake_checkpoint(tmp_path, 8, 12)
    fake_checkpoint(tmp_path, 12, 12)
    assert resumable_checkpoint(tmp_path) == eight


def test_only_a_last_step_checkpoint_means_a_clean_start(tmp_path):
    from medllm_core.library.training.checkpoints import resumable_checkpoint

    fake_checkpoint(tmp_path, 12, 12)
    assert resumable_checkpoint(tmp_path) is None
    fake_checkpoint(tmp_path, 10, -1)  # epoch-based state without a positive max_steps is resumable
    assert resumable_checkpoint(tmp_path) == tmp_path / "checkpoint-10"


@pytest.mark.slow
def test_the_printed_resume_command_repeats_the_overrides_and_names_the_folder(stopped_on_last_step):
    out, first, result, command = stopped_on_last_step
    assert command[:3] == ["medllm-tui", "--run", PROFILE]
    assert "stages.sft.max_steps=12" in command and "--output-root" in command
    resumed = attempts(all_events(only_run_dir(out)))[-1]
    assert finished(resumed, "sft")["reused"] is True  # the exact command matched the run: nothing changed
