"""The dashboard replays a recorded events.jsonl; every panel is checked, live and finished."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import RichLog

from medllm_core.kernel.context import STOP_FILE
from medllm_core.kernel.run_view import RunView
from medllm_tui.app import MedllmApp
from medllm_tui.cli import main
from medllm_tui.gpu import NvmlSampler
from medllm_tui.screens.dashboard import DashboardScreen
from medllm_tui.widgets.loss_plot import LossPlot
from tests.tui_support import FIXTURE_EVENTS, H100_PAIR, fake_deps, recorded_run


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _text(screen: DashboardScreen, selector: str) -> str:
    return str(screen.query_one(selector).render())


def _log_lines(screen: DashboardScreen) -> list[str]:
    return [strip.text for strip in screen.query_one("#log", RichLog).lines]


@pytest.mark.anyio
async def test_finished_run_rebuilds_every_panel(tmp_path: Path) -> None:
    run_dir = recorded_run(tmp_path)
    app = MedllmApp(fake_deps(tmp_path, gpus=H100_PAIR), attach=run_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        status = _text(screen, "#status")
        assert "20261128-011251-cpu_tiny-13383 · cpu_tiny · CPU (2 cores)" in status
        assert "finished: exit 0 (ok)" in status and "strict_pass ✓" in status
        stages = _text(screen, "#stages").splitlines()
        assert [line.split()[1:3] for line in stages] == [
            ["preflight", "done"], ["sft", "trained"], ["dpo", "off"], ["simpo", "off"], ["kto", "off"],
            ["completion_check", "done"], ["method_comparison", "skipped"]]
        assert stages[1].endswith("00:45")  # the recorded duration, not a clock
        memory = _text(screen, "#memory")
        assert "GPU0 H100 80GB HBM3 61.2 / 79.6 GB" in memory
        assert "GPU1 H100 80GB HBM3 N/A / N/A GB" in memory  # a device whose memory read failed
        assert "run cpu: 0.5 / N/A GB" in memory
        checks = _text(screen, "#checks").splitlines()
        assert len(checks) == 13 and all(line.startswith("✓") for line in checks)
        assert checks[0] == "✓ strict_pass"  # the verdict first, then failures, then the rest
        decisions = _text(screen, "#decisions")
        assert "precision preflight: fp32" in decisions
        assert "oom_retry sft: CUDA out of memory at step 11: micro-batch 4 → 2" in decisions
        plot = screen.query_one(LossPlot)
        assert plot.stage_shown(screen.view) == "sft" and len(screen.view.losses["sft"]) == 30
        assert plot.border_title == "loss: sft · 30 steps · last 7.6181"
        summary = _text(screen, "#summary")
        assert "day-1 summary: /tmp/tui_sample/reports/migration/day1_run_summary.md" in summary
        assert "strict check: /tmp/tui_sample/reports/migration/gpu_completion_check.md" in summary
        log = _log_lines(screen)
        assert log[0].startswith("run 20261128-011251-cpu_tiny-13383 started")
        assert any("metrics: /tmp/tui_sample/reports/training/layer_b_tiny_qwen2_sft_metrics.json" in x for x in log)
        assert "run finished: exit 0 (ok)" in log
        await pilot.press("x")  # nothing to stop in a finished run: no STOP file, no crash
        await pilot.pause()
        assert not (run_dir / STOP_FILE).exists()


@pytest.mark.anyio
async def test_live_run_updates_incrementally_and_stop_creates_the_stop_file(tmp_path: Path) -> None:
    run_dir = recorded_run(tmp_path, lines=40)  # mid-SFT
    deps = fake_deps(tmp_path)
    deps.alive = lambda pid: True
    app = MedllmApp(deps, attach=run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        assert "running" in _text(screen, "#status")
        sft = _text(screen, "#stages").splitlines()[1]
        assert "sft" in sft and "10/30" in sft and sft.endswith("00:55")  # elapsed from the injected clock
        assert "strict_pass" not in _text(screen, "#checks")
        assert not screen.query_one("#summary").has_class("shown")
        points = len(screen.view.losses["sft"])
        # The writer appends the rest; the timer picks it up without re-reading what was shown.
        remaining = FIXTURE_EVENTS.read_text(encoding="utf-8").splitlines(keepends=True)[40:]
        with open(run_dir / "events.jsonl", "a", encoding="utf-8") as handle:
            handle.write("".join(remaining[:20]))
        await pilot.pause(0.3)
        assert len(screen.view.losses["sft"]) > points
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert (run_dir / STOP_FILE).exists()
        assert "stopping at the next step" in _text(screen, "#status")
        with open(run_dir / "events.jsonl", "a", encoding="utf-8") as handle:
            handle.write("".join(remaining[20:]))
        await pilot.pause(0.3)
        assert "finished: exit 0 (ok)" in _text(screen, "#status")
        assert screen.view.events_seen == len(FIXTURE_EVENTS.read_text(encoding="utf-8").splitlines())


@pytest.mark.anyio
async def test_stop_can_be_declined_and_loss_key_cycles(tmp_path: Path) -> None:
    run_dir = recorded_run(tmp_path, lines=40)
    deps = fake_deps(tmp_path)
    deps.alive = lambda pid: True
    app = MedllmApp(deps, attach=run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("x", "n")
        await pilot.pause()
        assert not (run_dir / STOP_FILE).exists()
        await pilot.press("l")
        assert app.screen.query_one(LossPlot).chosen == "sft"


def test_run_view_ignores_unknown_events_and_torn_lines(tmp_path: Path) -> None:
    view = RunView()
    view.apply_all([{"type": "from_the_future", "x": 1}, {"type": "loss", "stage": "sft", "step": 1, "loss": None}])
    assert view.events_seen == 2 and view.losses == {} and view.strict_pass is None


def test_nvml_failures_become_na_never_a_crash() -> None:
    class BrokenNvml:
        def nvmlInit(self) -> None:  # noqa: N802 - NVML's own names
            pass

        def nvmlDeviceGetCount(self) -> int:  # noqa: N802
            return 1

        def nvmlDeviceGetHandleByIndex(self, index: int) -> object:  # noqa: N802
            return object()

        def nvmlDeviceGetName(self, handle: object) -> bytes:  # noqa: N802
            return b"Tesla V100-SXM2-32GB"

        def nvmlDeviceGetMemoryInfo(self, handle: object) -> object:  # noqa: N802
            raise RuntimeError("GPU is lost")

    reading = NvmlSampler(loader=BrokenNvml).read()
    assert reading.gpus[0].name == "Tesla V100-SXM2-32GB" and reading.gpus[0].used_gb is None

    def no_driver() -> object:
        raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    missing = NvmlSampler(loader=no_driver).read()
    assert not missing.available and "libnvidia-ml.so.1" in missing.note


def test_attach_rejects_a_folder_without_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attach", str(tmp_path)]) == 2
    assert "not a medllm run folder" in capsys.readouterr().err
    assert main(["attach", "--output-root", str(tmp_path)]) == 2
    assert "no runs under" in capsys.readouterr().err
