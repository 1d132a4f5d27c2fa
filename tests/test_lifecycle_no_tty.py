"""Issue 15 item 7: plain ``medllm-tui`` without a terminal explains the headless mode and exits 2."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_plain_medllm_tui_without_a_tty_exits_2_with_a_hint(tmp_path):
    # stdin and stdout are pipes here, as from a script or cron; before, the app drew and hung.
    result = subprocess.run([sys.executable, "-m", "medllm_tui", "--output-root", str(tmp_path)], cwd=REPO,
                            stdin=subprocess.PIPE, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: the interactive TUI needs a terminal (stdin and stdout are not a TTY) "
                     "(run headless with 'medllm-tui --run PROFILE')"], result.stderr
    assert "Traceback" not in result.stderr


def test_attach_without_a_tty_exits_2_too(tmp_path):
    run_dir = tmp_path / "reports" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "events.jsonl").write_text("")
    result = subprocess.run([sys.executable, "-m", "medllm_tui", "attach", str(run_dir)], cwd=REPO,
                            stdin=subprocess.PIPE, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "needs a terminal" in result.stderr, result.stdout + result.stderr
