"""What a user reads in the CLI's listings and in preflight facts: nothing lost to markup, nothing empty."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from medllm_core.kernel.errors import ExitCode
from medllm_core.kernel.hardware import HardwareInfo, cpu_model

REPO = Path(__file__).resolve().parents[1]


def medllm(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "250", "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run([sys.executable, "-m", "medllm_tui", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_plugins_listing_keeps_brackets_and_shows_what_a_method_starts_from() -> None:
    out = medllm("plugins")
    kto = next(line for line in out.splitlines() if line.startswith("│ kto") and "training" in line)
    assert "[data.kto]" in kto, kto  # not eaten as console markup
    assert "sft adapter" in kto, kto  # KTO continues the SFT adapter: not "-"


def test_help_lists_every_exit_code() -> None:
    out = medllm("--help")
    for code in ExitCode:
        assert f"{int(code)} " in out.replace("\n", " "), f"exit code {int(code)} missing from --help"
    assert "130 interrupted" in " ".join(out.split())


def test_preflight_names_the_cpu() -> None:
    assert cpu_model().strip()
    assert HardwareInfo(backend="cpu").cpu.strip()


def test_readme_names_every_blocking_readiness_condition() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in ("strict_pass", "evaluation", "eval_items", "above_chance", "extraction_failures", "real_model",
                 "reports_present"):
        assert f"`{name}`" in readme, name


def test_reports_are_readable_like_checkpoints_and_private_files_stay_private(tmp_path: Path) -> None:
    import stat

    from medllm_core.kernel import atomic

    previous = os.umask(0o022)
    atomic._umask.cache_clear()
    try:
        report = atomic.write_json(tmp_path / "reports" / "x_metrics.json", {"a": 1})
        assert stat.S_IMODE(report.stat().st_mode) == 0o644  # was 0600 (tempfile's mode)
        secret = atomic.write_text(tmp_path / ".env", "OPENAI_API_KEY=sk-x\n", private=True)
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        os.umask(0o077)  # a user who wants everything private gets that
        atomic._umask.cache_clear()
        strict = atomic.write_json(tmp_path / "strict.json", {})
        assert stat.S_IMODE(strict.stat().st_mode) == 0o600
    finally:
        os.umask(previous)
        atomic._umask.cache_clear()
