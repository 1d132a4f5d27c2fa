"""A dry run on a machine without the profile's GPU says so, plans for the profile's card and exits like the run."""

from __future__ import annotations

import json
from pathlib import Path

from medllm_core.kernel.errors import ExitCode
from medllm_tui.runs import recent_runs
from tests.test_bad_input_cli import REPO, cli, no_traceback


def test_gpu_profile_dry_run_on_a_cpu_box_plans_the_profiles_card_and_exits_3(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli(["--run", str(REPO / "profiles" / "v100_dual.toml"), "--dry-run", "--output-root", str(out)],
                 tmp_path)
    no_traceback(result)
    assert result.returncode == int(ExitCode.PREFLIGHT_BLOCKED), result.stdout + result.stderr
    text = " ".join(result.stdout.split())
    assert "this machine lacks the profile's GPU" in text
    assert "2 × 32 GB" in text and "fp16 with loss scaling" in text and "DDP over 2 GPUs" in text
    assert "exit 0" not in text and "exit 3" in text
    assert "the real run would stop at the preflight gate" in result.stderr
    assert recent_runs(out) == [], "a dry run is not a run to attach to"


def test_attach_list_skips_dry_runs_but_keeps_real_ones(tmp_path: Path) -> None:
    runs = tmp_path / "reports" / "runs"
    for name, status, code in (("20261202-100000-a-1", "ok", 0), ("20261202-110000-b-2", "dry_run", 0)):
        folder = runs / name
        folder.mkdir(parents=True)
        events = [{"type": "run_started", "run_id": name, "profile": "p", "pid": 1},
                  {"type": "run_finished", "status": status, "exit_code": code}]
        (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    assert [r.run_id for r in recent_runs(tmp_path)] == ["20261202-100000-a-1"]
