"""A run started from the TUI outlives the TUI, and `attach` rebuilds its dashboard.

The "TUI process" is a real MedllmApp in its own process, driven by keys
(start screen → wizard → Ctrl+R). It is killed with SIGKILL together with its
whole process group, as a dropped SSH session would; the training process was
started in a session of its own and must finish on its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medllm_core.kernel.profile import load_profile, save_profile
from medllm_tui.app import MedllmApp
from medllm_tui.launch import process_alive
from medllm_tui.screens.dashboard import DashboardScreen
from medllm_tui.wizard_model import portable_profile
from tests.tui_support import fake_deps

REPO = Path(__file__).resolve().parents[1]

DRIVER = r"""
import asyncio, sys
from pathlib import Path
from medllm_core.kernel.hardware import HardwareInfo
from medllm_tui.app import MedllmApp
from medllm_tui.deps import TuiDeps

root = Path(sys.argv[1])
deps = TuiDeps(output_root=root, user_dirs=(root / "profiles" / "user",), save_dir=root / "profiles" / "user",
               probe=lambda: HardwareInfo(backend="cpu", cpu_count=2))

async def main():
    app = MedllmApp(deps)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("enter")          # start screen: New run
        await pilot.pause()
        await pilot.press("end", "enter")   # the user's own profile is listed last
        await pilot.pause()
        await pilot.press("enter")          # tier: keep tiny
        await pilot.pause()
        await pilot.press("ctrl+n")         # toggles: keep
        await pilot.pause()
        await pilot.press("ctrl+r")         # start the run
        while app.screen.__class__.__name__ != "DashboardScreen" or app.screen.run_dir is None:
            await pilot.pause(0.2)
        print("RUN_DIR", app.screen.run_dir, flush=True)
        await asyncio.sleep(600)            # a TUI left open, until it is killed

asyncio.run(main())
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _short_profile(root: Path) -> Path:
    # cpu_tiny with only SFT and fewer steps: the test is about the process, not the training.
    overrides = {"name": "detach_test", "stages.sft.max_steps": 6, "stages.sft.save_steps": 3,
                 "stages.dpo.enabled": False, "stages.simpo.enabled": False, "stages.kto.enabled": False}
    profile = load_profile(REPO / "profiles" / "cpu_tiny.toml", environ={}, cli_overrides=overrides)
    return save_profile(portable_profile(profile), root / "profiles" / "user" / "detach_test.toml")


def _finished(run_dir: Path) -> dict | None:
    for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("type") == "run_finished":
            return event
    return None


@pytest.mark.slow
@pytest.mark.anyio
async def test_run_survives_killed_tui_and_reattaches(tmp_path: Path) -> None:
    _short_profile(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("DRY_RUN", "FORCE_SKIP_TRAINING", "OPENAI_API_KEY")}
    env["MEDLLM_ENV_FILE"] = str(tmp_path / "absent.env")
    tui = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        run_dir = None
        deadline = time.monotonic() + 90
        assert tui.stdout is not None
        while run_dir is None and time.monotonic() < deadline:
            line = tui.stdout.readline()
            if line.startswith("RUN_DIR "):
                run_dir = Path(line.split(" ", 1)[1].strip())
            elif not line and tui.poll() is not None:
                break
        assert run_dir is not None, f"the TUI never showed a run folder (rc={tui.poll()})"
        run_pid = int(run_dir.name.rsplit("-", 1)[1])
        assert _finished(run_dir) is None, "the run finished before the TUI was killed; nothing was tested"
    finally:
        os.killpg(tui.pid, signal.SIGKILL)  # the TUI and everything in its session, like a dropped SSH link
        tui.wait(timeout=30)

    assert process_alive(run_pid), "killing the TUI killed the run"
    deadline = time.monotonic() + 240
    while _finished(run_dir) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    finished = _finished(run_dir)
    assert finished is not None and finished["exit_code"] == 0, finished
    assert (tmp_path / "reports" / "migration" / "gpu_completion_check.json").is_file()

    deps = fake_deps(tmp_path)
    deps.alive = process_alive
    app = MedllmApp(deps, attach=run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        status = str(screen.query_one("#status").render())
        assert "finished: exit 0 (ok)" in status and "strict_pass ✓" in status
        assert "sft               trained" in str(screen.query_one("#stages").render())
        assert len(screen.view.losses["sft"]) == 6
