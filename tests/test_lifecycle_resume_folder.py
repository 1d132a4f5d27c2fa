"""Issue 15 item 2: ``medllm-tui --resume [RUN_DIR]`` without ``--run`` continues a run folder from its own saved
effective profile; the stop message prints the exact command."""

from __future__ import annotations

import json
from pathlib import Path

from medllm_tui.cli import main
from tests.test_recovery import REPO, _inject

SETS = ["--set", "stages.dpo.enabled=false", "--set", "stages.simpo.enabled=false", "--set",
        "stages.kto.enabled=false", "--set", "stages.sft.max_steps=12", "--set", "stages.sft.save_steps=4",
        "--set", "stages.sft.max_length=256"]


def test_resume_by_folder_alone_continues_the_stopped_stage(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"

    def ctrl_c_at_step_6(call, output):
        if call == 6:
            raise KeyboardInterrupt
        return None

    _inject(monkeypatch, ctrl_c_at_step_6)
    code = main(["--run", str(REPO / "profiles/cpu_tiny.toml"), "--output-root", str(out), *SETS])
    assert code == 130
    stopped = capsys.readouterr()
    run_dir = next((out / "reports" / "runs").iterdir())
    # the message names the command, not just the flag
    assert f"continue with: medllm-tui --run {REPO / 'profiles/cpu_tiny.toml'}" in stopped.err, stopped.err
    assert f"--resume {run_dir}" in stopped.err

    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)  # relative data paths in the saved profile resolve from the original profile
    code = main(["--resume", "--output-root", str(out)])  # no --run: the latest run, from its own profile
    captured = capsys.readouterr()
    assert code == 0, captured.out[-3000:] + captured.err[-2000:]
    state = json.loads((run_dir / "run_state.json").read_text())
    assert state["results"]["sft"]["status"] == "trained", state["results"]["sft"]
    assert state["attempt"] == 2
    metrics = json.loads(Path(state["results"]["sft"]["metrics_path"]).read_text())
    assert metrics["steps"] == 12
    assert any(d["kind"] == "resume" and "checkpoint-4" in d["summary"] for d in metrics["decisions"])


def test_resume_by_folder_without_any_run_says_so(tmp_path, capsys):
    assert main(["--resume", "--output-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no run to resume under") and "Traceback" not in err, err
    assert main(["--resume", str(tmp_path)]) == 2
    assert "not a medllm run folder" in capsys.readouterr().err
