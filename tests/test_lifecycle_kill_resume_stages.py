"""Issue 15 acceptance: SIGKILL during a preference stage (DPO) and then during evaluation, each followed by
``--resume``, ends with the same dashboard model (stages, steps, curves, checks, exit) as an uninterrupted run.
(The SIGKILL during SFT is tests/test_resume.py::test_the_dashboard_of_a_killed_and_resumed_run_equals_a_clean_runs.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from medllm_core.kernel.events import EventReader
from tests.conftest import REPO, run_cli
from tests.test_resume import PROFILE, all_events, attempts, cli_env, dashboard_model, only_run_dir, sft_only

pytestmark = pytest.mark.slow

FLAGS = [*sft_only(), "--set", "stages.sft.max_steps=4", "--set", "stages.sft.save_steps=4",
         "--set", "stages.dpo.enabled=true", "--set", "stages.dpo.max_steps=12", "--set", "stages.dpo.save_steps=4",
         "--set", "stages.eval.batch_size=2", "--set", "stages.eval.max_items=12"]


def _dpo_past_step_6(event: dict) -> bool:
    return event["type"] == "loss" and event.get("stage") == "dpo" and event["step"] >= 6


def _eval_started(event: dict) -> bool:
    return event["type"] == "progress" and event.get("stage") == "eval" and event["step"] > 0


def kill_when(out: Path, args: list[str], seen: Callable[[dict], bool], timeout: float = 400) -> None:
    """Start the CLI, SIGKILL it as soon as an event of this attempt matches ``seen``."""
    runs = out / "reports" / "runs"
    before = {p: p.stat().st_size for p in runs.glob("*/events.jsonl")} if runs.is_dir() else {}
    with open(out.parent / f"{out.name}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "medllm_tui", *args], cwd=REPO, env=cli_env(),
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for path in runs.glob("*/events.jsonl"):
                    reader = EventReader(path)
                    reader.offset = before.get(path, 0)
                    if any(seen(e) for e in reader.poll()):
                        os.kill(proc.pid, signal.SIGKILL)
                        proc.wait()
                        return
                if proc.poll() is not None:
                    pytest.fail(f"the run ended (exit {proc.returncode}) before the kill point")
                time.sleep(0.05)
            pytest.fail("the kill point was not reached")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("clean_dpo_eval")
    result = run_cli(["--run", PROFILE, "--output-root", str(out), *FLAGS])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return dashboard_model(all_events(only_run_dir(out)))


@pytest.fixture(scope="module")
def killed_twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("killed_dpo_eval")
    base = ["--run", PROFILE, "--output-root", str(out), *FLAGS]
    kill_when(out, base, _dpo_past_step_6)
    kill_when(out, [*base, "--resume"], _eval_started)
    return out, run_cli([*base, "--resume"])


def test_killed_in_dpo_and_in_eval_then_resumed_shows_what_a_clean_run_shows(killed_twice, clean):
    out, result = killed_twice
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    events = all_events(only_run_dir(out))
    assert len(attempts(events)) == 3
    resumed = dashboard_model(events)
    assert resumed["stages"] == clean["stages"]
    assert resumed["curves"] == clean["curves"]
    assert resumed["curves"]["dpo"] == list(range(1, 13))  # the replayed steps after checkpoint-4 appear once
    assert resumed["checks"] == clean["checks"]
    assert resumed["exit"] == clean["exit"] == 0
    # DPO continued from its checkpoint in attempt 2 rather than restarting
    second = attempts(events)[1]
    dpo_losses = [e["step"] for e in second if e["type"] == "loss" and e.get("stage") == "dpo"]
    assert dpo_losses and dpo_losses[0] > 1, dpo_losses
