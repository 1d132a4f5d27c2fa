"""Fakes shared by the TUI tests: fixed hardware, clock and NVML, no real launches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from textual.app import App
from textual.geometry import Region

from medllm_core.kernel.hardware import GpuInfo, HardwareInfo
from medllm_core.library.env_file import EnvFileStatus
from medllm_tui.deps import TuiDeps
from medllm_tui.gpu import GpuMemory, GpuReading
from medllm_tui.launch import LaunchedRun

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "events"
FIXTURE_EVENTS = FIXTURES / "cpu_tiny_sft_only.jsonl"
FIXED_NOW = 1795828430.0  # ten seconds after the recorded run finished
# Every stage of cpu_tiny: attempt 1 stopped during DPO, attempt 2 resumed (see fixtures/events/README.md).
FIXTURE_RESUMED = FIXTURES / "cpu_tiny_stopped_then_resumed.jsonl"
RESUMED_RUN_ID = "20261203-073931-cpu_tiny-5593"

CPU = HardwareInfo(backend="cpu", cpu_count=2, cpu="x86_64")
RTX4090 = HardwareInfo(backend="cuda", gpus=[GpuInfo(0, "NVIDIA GeForce RTX 4090", 23.6, (8, 9))])


class RecordingLauncher:
    """Stands in for start_detached: records what would be started."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, Path, bool]] = []

    def __call__(self, profile_path: Path, output_root: Path, *, dry_run: bool = False) -> LaunchedRun:
        self.calls.append((profile_path, output_root, dry_run))
        log = output_root / "launch.log"
        log.write_text("", encoding="utf-8")
        return LaunchedRun(pid=999_999, log_path=log, output_root=output_root, command=("fake",))


def fake_deps(root: Path, *, hardware: HardwareInfo = CPU, gpus: GpuReading | None = None,
              launcher: RecordingLauncher | None = None, key_configured: bool = False) -> TuiDeps:
    status = EnvFileStatus(path=".env", exists=key_configured, api_key_configured=key_configured,
                           base_url_configured=key_configured)
    return TuiDeps(
        output_root=root,
        user_dirs=(root / "profiles" / "user",),
        save_dir=root / "profiles" / "user",
        probe=lambda: hardware,
        gpu_reader=lambda: gpus or GpuReading(note="no NVML: pynvml not installed"),
        env_status=lambda: status,
        launcher=launcher or RecordingLauncher(),
        alive=lambda pid: False,
        clock=lambda: FIXED_NOW,
        poll_s=0.1,
        gpu_poll_s=60.0,
    )


def recorded_run(root: Path, name: str = "20261128-011251-cpu_tiny-13383", lines: int | None = None,
                 fixture: Path = FIXTURE_EVENTS) -> Path:
    """Copy recorded events into a run folder under ``root`` (optionally only the first lines)."""
    run_dir = root / "reports" / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    if lines is None:
        shutil.copy(fixture, run_dir / "events.jsonl")
    else:
        kept = fixture.read_text(encoding="utf-8").splitlines(keepends=True)[:lines]
        (run_dir / "events.jsonl").write_text("".join(kept), encoding="utf-8")
    return run_dir


H100_PAIR = GpuReading((GpuMemory(0, "NVIDIA H100 80GB HBM3", 61.2, 79.6), GpuMemory(1, "NVIDIA H100 80GB HBM3",
                                                                                       None, None)))


def event_time(fixture: Path, line: int) -> float:
    """The timestamp of a fixture's line (1-based): a fixed "now" for a run replayed up to there."""
    return float(json.loads(fixture.read_text(encoding="utf-8").splitlines()[line - 1])["ts"])


def screen_lines(app: App) -> list[str]:
    """The whole terminal as text rows, as the user sees it (what an SVG snapshot draws)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]  # noqa: SLF001 (no public API)


def region_lines(app: App, region: Region) -> list[str]:
    """The text rows of one screen region (e.g. a box's content region)."""
    rows = screen_lines(app)[region.y:region.bottom]
    return [row[region.x:region.right] for row in rows]
