"""Issue 15 item 4: a STOP is honoured between evaluation batches, not only in training stages."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from medllm_core.kernel.events import EventReader
from tests.conftest import REPO, run_cli
from tests.test_resume import PROFILE, all_events, attempts, cli_env, finished, only_run_dir, sft_only

# Two SFT steps, then evaluation one item per batch: many batch boundaries to stop at.
FLAGS = [*sft_only(), "--set", "stages.sft.max_steps=2", "--set", "stages.sft.save_steps=2",
         "--set", "stages.eval.batch_size=1"]


def stop_in_eval(out: Path, proc: subprocess.Popen, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for events_path in (out / "reports" / "runs").glob("*/events.jsonl"):
            if any(e["type"] == "progress" and e.get("stage") == "eval" and e["step"] > 0
                   for e in EventReader(events_path).poll()):
                (events_path.parent / "STOP").write_text("stop\n")
                return time.time()
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before evaluation started")
        time.sleep(0.02)
    pytest.fail("evaluation did not start")


@pytest.fixture(scope="module")
def stopped_in_eval(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("stop_eval")
    with open(out.parent / f"{out.name}.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "medllm_tui", "--run", PROFILE, "--output-root", str(out),
                                 *FLAGS], cwd=REPO, env=cli_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            stopped_at = stop_in_eval(out, proc)
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    first = all_events(only_run_dir(out))
    result = run_cli(["--run", PROFILE, "--output-root", str(out), *FLAGS, "--resume"])
    return out, first, stopped_at, proc.returncode, result


@pytest.mark.slow
def test_stop_ends_the_evaluation_at_the_next_batch(stopped_in_eval):
    _, first, stopped_at, code, _ = stopped_in_eval
    assert code == 130
    evaluation = finished(first, "eval")
    assert evaluation["status"] == "stopped" and "stopped on request" in evaluation["reason"], evaluation
    assert evaluation["ts"] - stopped_at < 20, "the stop waited for the whole evaluation"
    progress = [e for e in first if e["type"] == "progress" and e.get("stage") == "eval"]
    assert progress[-1]["step"] < progress[-1]["total"]
    assert any(e["type"] == "decision" and e["kind"] == "stopped_on_request" and e.get("stage") == "eval"
               for e in first)


@pytest.mark.slow
def test_resume_after_an_eval_stop_finishes_the_evaluation(stopped_in_eval):
    out, _, _, _, result = stopped_in_eval
    assert result.returncode == 0, result.stdout + result.stderr
    last = attempts(all_events(only_run_dir(out)))[-1]
    assert finished(last, "eval")["status"] == "done"
