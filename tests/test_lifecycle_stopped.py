"""Issue 15 item 1: a stage stopped on request is "stopped", never "failed".

Ctrl-C (SIGINT) in the middle of SFT is a stop request too: run_state.json, the events, the
headless printer and the dashboard model say ``stopped``, the exit code is 130 (``--help``:
interrupted), and ``--resume`` continues the stage from its last checkpoint.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from medllm_core.kernel.headless import HeadlessPrinter
from medllm_core.kernel.resume import prepare_resume
from medllm_core.kernel.run_view import RunView
from medllm_core.kernel.runner import execute, new_run_info
from tests.test_recovery import _events, _inject, _profile


def test_sigint_mid_stage_records_stopped_and_resume_continues_from_the_checkpoint(tmp_path, monkeypatch):
    profile, registry = _profile(tmp_path)  # max_steps 12, save_steps 4
    run = new_run_info(profile)

    def ctrl_c_at_step_6(call, output):
        if call == 6:
            raise KeyboardInterrupt  # what SIGINT raises in the main thread
        return None

    _inject(monkeypatch, ctrl_c_at_step_6)
    stopped = execute(profile, registry, run=run)
    assert int(stopped.exit_code) == 130, stopped.message
    assert stopped.results["sft"].status == "stopped"
    state = json.loads((run.run_dir / "run_state.json").read_text())
    assert state["results"]["sft"]["status"] == "stopped" and "sft" not in state["running"], state
    events = _events(run.run_dir)
    sft_end = [e for e in events if e["type"] == "stage_finished" and e["stage"] == "sft"]
    assert [e["status"] for e in sft_end] == ["stopped"]

    # The dashboard model and the headless printer read the same events and say "stopped".
    view = RunView()
    view.apply_all(events)
    assert view.stages["sft"].state == "stopped"
    out = io.StringIO()
    printer = HeadlessPrinter(run.events_path, console=Console(file=out, width=200, color_system=None))
    for event in events:
        printer.handle(event)
    lines = [line for line in out.getvalue().splitlines() if " sft " in line]
    assert any("sft stopped" in line and "■" in line for line in lines), lines
    assert not any("sft failed" in line for line in lines), lines

    monkeypatch.undo()
    resumed = execute(profile, registry, resume=prepare_resume(profile, run.run_dir))
    assert resumed.exit_code == 0, resumed.message
    metrics = json.loads(Path(resumed.results["sft"].metrics_path).read_text())
    assert metrics["steps"] == 12 and metrics["failed"] is False
    assert any(d["kind"] == "resume" and "checkpoint-4" in d["summary"] for d in metrics["decisions"]), \
        metrics["decisions"]
